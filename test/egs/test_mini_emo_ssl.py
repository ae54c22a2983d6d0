"""The mini_emo wav2vec 2.0 recipe configs train on mini_emo speech.

A tiny randomly initialized wav2vec 2.0 model stands in for wav2vec2-base
(nothing is downloaded); the recipe configs are used as they are, except for a
smaller encoder that keeps the test fast.
"""

import sys
from pathlib import Path

import pytest
import torch

TEST = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TEST / "features"))
from ssl_factory import save_tiny_ssl  # noqa: E402

from ent.bin import train_tokenizer  # noqa: E402
from ent.data.datadir import DataDir  # noqa: E402
from ent.data.dataset import EmotionASRDataset, collate_espnet  # noqa: E402
from ent.synth import espeak  # noqa: E402
from ent.synth.mini_emo import ORACLE_INTERVALS, CorpusOptions, generate_corpus  # noqa: E402
from ent.tasks.ent_task import ENTTask  # noqa: E402
from ent.text.tokenizer import Tokenizer  # noqa: E402

RECIPE = TEST.parent / "egs" / "mini_emo" / "ent1"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not espeak.ctypes_backend_available():
        pytest.skip("espeakng-loader is not installed")
    root = tmp_path_factory.mktemp("mini_emo_ssl")
    options = CorpusOptions(seed=5, num_train=4, num_dev=1, num_test=4, num_test_sed=1)
    generate_corpus(root / "data", options, wav_dir=root / "wav", abs_paths=True)
    # The oracle intervals as emo_segments, so that the supervised lattice loss runs too.
    train = root / "data" / "train"
    (train / "emo_segments").write_text((train / ORACLE_INTERVALS).read_text())
    train_tokenizer.main(["--text", str(root / "data" / "train" / "text"), "--token-type", "char",
                          "--out-dir", str(root / "tok")])
    return root


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_recipe_config_trains_on_mini_emo(corpus: Path, tmp_path: Path, variant: str) -> None:
    model_dir = save_tiny_ssl(tmp_path, "wav2vec2")
    args = ENTTask.get_parser().parse_args([
        "--config", str(RECIPE / "conf" / f"train_{variant}_wav2vec2.yaml"),
        "--frontend_conf", f"model_dir={model_dir}",
        "--token_dir", str(corpus / "tok"), "--train_data_dir", "x", "--valid_data_dir", "x",
        "--normalize_conf", "stats_file=unused.npz",
        "--encoder_conf", "num_blocks=1", "--encoder_conf", "hidden_size=64",
        "--encoder_conf", "linear_size=128",
    ])
    torch.manual_seed(0)
    model = ENTTask.build_model(args)
    assert model.variant == variant and (model.blank_branch is not None) == (variant == "fent")
    data = DataDir.load(corpus / "data" / "train")
    dataset = EmotionASRDataset(data, Tokenizer.from_dir(corpus / "tok"))
    _, batch = collate_espnet([dataset[u] for u in data.utt_ids])
    assert batch["emo_intervals_lengths"].tolist() == [1, 1, 1, 1]  # the oracle intervals
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    model.train()
    for _ in range(10):
        loss, stats, _ = model(**batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < 0.7 * losses[0], losses
    assert all(p.grad is None for p in model.frontend.ssl_model.parameters())  # frozen
