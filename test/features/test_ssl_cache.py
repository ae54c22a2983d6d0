"""SSL feature cache: extraction (CLI), cached features equal recomputed ones, checks."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from datadir_factory import make_data_dir  # noqa: E402
from ssl_factory import save_tiny_ssl  # noqa: E402

from ent.bin import extract_ssl_features  # noqa: E402
from ent.data.datadir import DataDir  # noqa: E402
from ent.features.ssl import SSLFrontend  # noqa: E402
from ent.features.ssl_cache import MANIFEST, SSLFeatureCache, waveform_key  # noqa: E402
from ent.utils.errors import DataError  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny model, a 3-utterance data dir and a cache of it made through the CLI with a config."""
    root = tmp_path_factory.mktemp("ssl_cache")
    model = save_tiny_ssl(root, "wav2vec2")
    data = make_data_dir(root, n=3, durations=[0.6, 0.45, 0.3])
    cache = root / "cache"
    config = root / "train.yaml"
    config.write_text(f"frontend: ssl\nfrontend_conf:\n    model_dir: {model}\n    cache_dir: {cache}\n"
                      "    blank_weighting: true\n")
    extract_ssl_features.main(["--config", str(config), "--data-dir", str(data)])
    return {"root": root, "model": model, "data": data, "cache": cache, "config": config}


def batch_of(data: Path):
    """The data dir's utterances as the data loader pads them: (B, N), (B,)."""
    d = DataDir.load(data)
    waves = [torch.from_numpy(d.load_audio(u)) for u in d.utt_ids]
    return torch.nn.utils.rnn.pad_sequence(waves, batch_first=True), torch.tensor([len(w) for w in waves])


def test_cached_features_equal_recomputed_ones(setup: dict) -> None:
    manifest = json.loads((setup["cache"] / MANIFEST).read_text())
    assert len(manifest["entries"]) == 3
    for entry in manifest["entries"].values():
        assert entry["shape"][0] == 3 and entry["shape"][2] == 32 and len(entry["utt_ids"]) == 1
    computed = SSLFrontend(str(setup["model"]), blank_weighting=True)
    cached = SSLFrontend(str(setup["model"]), blank_weighting=True, cache_dir=str(setup["cache"]),
                         cache_miss="error")
    cached.load_state_dict(computed.state_dict())
    speech, lens = batch_of(setup["data"])
    (a1, a2), alens = computed.forward_weightings(speech, lens)
    (b1, b2), blens = cached.forward_weightings(speech, lens)
    assert torch.equal(alens, blens) and torch.equal(a1, b1) and torch.equal(a2, b2)
    # Gradients reach the layer weights through cached features too.
    b1.sum().backward()
    assert cached.weighting.weight_logits.grad is not None


def test_rerun_skips_cached_utterances(setup: dict, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    extract_ssl_features.main(["--config", str(setup["config"]), "--data-dir", str(setup["data"])])
    assert "3 utterances, 0 extracted, 3 already cached" in caplog.text


def test_cache_from_other_settings_is_refused(setup: dict) -> None:
    with pytest.raises(DataError, match="other settings.*normalize_waveform"):
        SSLFrontend(str(setup["model"]), normalize_waveform=True, cache_dir=str(setup["cache"]))
    with pytest.raises(DataError, match="extract it first"):
        SSLFrontend(str(setup["model"]), cache_dir=str(setup["root"] / "no_cache"), cache_miss="error")
    # cache_miss: compute (e.g. a packed model decoded elsewhere): no cache, computed.
    assert SSLFrontend(str(setup["model"]), cache_dir=str(setup["root"] / "no_cache")).cache is None
    with pytest.raises(ValueError, match="frozen"):
        SSLFrontend(str(setup["model"]), finetune=True, cache_dir=str(setup["cache"]))


def test_shapes_are_checked_on_load(setup: dict, tmp_path: Path) -> None:
    fe = SSLFrontend(str(setup["model"]))
    cache = SSLFeatureCache.open(setup["cache"], fe.cache_fingerprint())
    key = next(iter(cache.entries))
    entry = cache.entries[key]
    good = tuple(entry["shape"])
    assert cache.load(key, entry["num_samples"], good).shape == good
    with pytest.raises(DataError, match="samples"):
        cache.load(key, entry["num_samples"] + 1, good)
    with pytest.raises(DataError, match="expected"):
        cache.load(key, entry["num_samples"], (good[0], good[1] + 1, good[2]))
    # A file whose array does not match its manifest entry.
    copy = SSLFeatureCache(tmp_path, cache.fingerprint, {key: dict(entry)})
    (tmp_path / entry["file"]).parent.mkdir(parents=True)
    np.save(tmp_path / entry["file"], np.zeros((good[0], good[1] - 1, good[2]), dtype=np.float32))
    with pytest.raises(DataError, match="array shape"):
        copy.load(key, entry["num_samples"], good)


def test_cache_miss_is_computed_or_an_error(setup: dict) -> None:
    speech = torch.zeros(1, 4000)
    speech[0] = torch.linspace(-0.1, 0.1, 4000)
    lens = torch.tensor([4000])
    strict = SSLFrontend(str(setup["model"]), cache_dir=str(setup["cache"]), cache_miss="error")
    with pytest.raises(DataError, match="not in the SSL feature cache"):
        strict(speech, lens)
    lenient = SSLFrontend(str(setup["model"]), cache_dir=str(setup["cache"]))
    plain = SSLFrontend(str(setup["model"]))
    assert torch.equal(lenient(speech, lens)[0], plain(speech, lens)[0])
    assert waveform_key(speech[0]) not in lenient.cache


def test_cli_help_and_errors(setup: dict, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "ent.bin.extract_ssl_features", "--help"],
                         capture_output=True, text=True, check=True)
    assert "--data-dir" in out.stdout and "--config" in out.stdout
    with pytest.raises(SystemExit):
        extract_ssl_features.main(["--model-dir", str(setup["model"]), "--data-dir", str(setup["data"])])
    direct = tmp_path / "direct"
    extract_ssl_features.main(["--model-dir", str(setup["model"]), "--out-dir", str(direct),
                               "--data-dir", str(setup["data"])])
    assert len(json.loads((direct / MANIFEST).read_text())["entries"]) == 3
