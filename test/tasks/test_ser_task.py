"""The SER task end to end: train a baseline (ESPnet Trainer), decode utt2emo/posteriors, score."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datadir_factory import make_data_dir  # noqa: E402

from ent.bin import score, ser_inference, train_ser, train_ser_functional, train_tokenizer  # noqa: E402

TINY_FCN = """\
model: attention_fcn
model_conf: {{input: {input}, channels: [4, 8, 8, 8, 8], attention_dim: 8, dropout: 0.0{fbank}}}
{cmvn}
max_frames_per_batch: 1000
optim: adam
optim_conf: {{lr: 0.005}}
max_epoch: 2
num_att_plot: 0
keep_nbest_models: 1
best_model_criterion: [[valid, acc_emo, max]]
use_tensorboard: false
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("ser")
    data = make_data_dir(root, n=8, name="train", durations=[0.8, 1.0, 0.9, 1.1] * 2)
    tokens = root / "tok"
    train_tokenizer.main(["--text", str(data / "text"), "--token-type", "char", "--out-dir", str(tokens)])
    return {"root": root, "data": data, "tokens": tokens}


def train_fcn(tiny: dict, out: Path, fbank: bool) -> None:
    config = out.parent / f"{out.name}.yaml"
    config.write_text(TINY_FCN.format(
        input="fbank" if fbank else "spectrogram",
        fbank=", fbank_conf: {n_mels: 40}" if fbank else "",
        cmvn="speaker_cmvn: true\nspeaker_cmvn_conf: {n_mels: 40}" if fbank else ""))
    train_ser.main(["--config", str(config), "--train_data_dir", str(tiny["data"]),
                    "--valid_data_dir", str(tiny["data"]), "--token_dir", str(tiny["tokens"]),
                    "--output_dir", str(out)])


@pytest.mark.parametrize("fbank", [False, True], ids=["spectrogram", "fbank_speaker_cmvn"])
def test_train_decode_score(tiny: dict, tmp_path: Path, fbank: bool) -> None:
    exp = tmp_path / "exp"
    train_fcn(tiny, exp, fbank)
    assert (exp / "2epoch.pth").is_file() and (exp / "valid.acc_emo.ave.pth").is_file()
    config = (exp / "config.yaml").read_text()
    assert "model: attention_fcn" in config and "emotions: neutral,happy,angry,sad" in config
    out = tmp_path / "decode"
    ser_inference.main(["--model-dir", str(exp), "--data-dir", str(tiny["data"]), "--out-dir", str(out),
                        "--batch-size", "3"])
    utt2emo = dict(line.split() for line in (out / "utt2emo").read_text().splitlines())
    assert sorted(utt2emo) == [f"utt{i:03d}" for i in range(1, 9)]
    post = {}
    for line in (out / "posteriors").read_text().splitlines():
        utt, *pairs = line.split()
        post[utt] = dict((k, float(v)) for k, v in (p.split(":") for p in pairs))
        assert list(post[utt]) == ["neutral", "happy", "angry", "sad"]
        assert sum(post[utt].values()) == pytest.approx(1.0, abs=1e-5)
        assert utt2emo[utt] == max(post[utt], key=post[utt].get)
    # the decoder's posteriors are the model's on each utterance alone (batching changes nothing)
    from ent.data.datadir import DataDir
    from ent.features.cmvn import speaker_cmvn
    from ent.features.fbank import Fbank
    from ent.tasks.ser_task import SERTask

    model, _ = SERTask.build_model_from_file(exp / "config.yaml", exp / "valid.acc_emo.ave.pth")
    model.eval()
    data = DataDir.load(tiny["data"])
    stats = speaker_cmvn(data, Fbank(n_mels=40)) if fbank else None
    for utt in ("utt001", "utt006"):
        wave = torch.from_numpy(data.load_audio(utt))[None]
        extra = {"speech_cmvn": torch.from_numpy(stats[utt].cmvn)[None]} if fbank else {}
        alone = model.posteriors(wave, torch.tensor([wave.shape[1]]), **extra)[0]
        assert np.allclose(alone.detach().numpy(), list(post[utt].values()), atol=1e-5)
    # scored like ENT's decodes: emotion only (no hypothesis text)
    score.main(["--ref-dir", str(tiny["data"]), "--hyp-dir", str(out), "--results", str(tmp_path / "RESULTS.md"),
                "--exp-name", "attention_fcn", "--dataset", "train"])
    scores = json.loads((out / "scores.json").read_text())
    assert "emotion" in scores and "asr" not in scores and scores["emotion"]["n_utts"] == 8
    results = (tmp_path / "RESULTS.md").read_text()
    assert "## attention_fcn" in results and "### Emotion" in results and "### WER" not in results


def test_functional_baseline_fits_decodes_and_scores(tiny: dict, tmp_path: Path) -> None:
    exp = tmp_path / "functional"
    train_ser_functional.main(["--train-data-dir", str(tiny["data"]), "--valid-data-dir", str(tiny["data"]),
                               "--out-dir", str(exp), "--cs", "0.1", "10"])
    record = json.loads((exp / "functional_classifier.json").read_text())
    assert record["C"] in (0.1, 10.0) and record["n_train"] == 8
    assert (tiny["data"] / "egemaps.npz").is_file()  # raw functionals cached beside the data
    out = tmp_path / "decode"
    ser_inference.main(["--model-dir", str(exp), "--data-dir", str(tiny["data"]), "--out-dir", str(out)])
    assert len((out / "utt2emo").read_text().splitlines()) == 8
    score.main(["--ref-dir", str(tiny["data"]), "--hyp-dir", str(out)])
    scores = json.loads((out / "scores.json").read_text())
    assert scores["emotion"]["ua"] == pytest.approx(record["dev_ua"][repr(record["C"])])  # dev = train here


def test_bad_model_name_and_option_are_one_line_errors(tiny: dict, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "bad.yaml"
    for text, message in (("model: resnet_lstm\n", "unknown SER model 'resnet_lstm'"),
                          ("model: attention_fcn\nmodel_conf: {chanels: [1, 2, 3, 4, 5]}\n",
                           "model_conf of attention_fcn: ")):
        config.write_text(text)
        with pytest.raises(SystemExit) as exc:
            train_ser.main(["--config", str(config), "--train_data_dir", str(tiny["data"]),
                            "--valid_data_dir", str(tiny["data"]), "--token_dir", str(tiny["tokens"]),
                            "--output_dir", str(tmp_path / "exp")])
        assert exc.value.code == 1
        assert f"{config}: " in caplog.text and message in caplog.text
        caplog.clear()
    with pytest.raises(SystemExit) as exc:
        ser_inference.main(["--model-dir", str(tmp_path / "nothing"), "--data-dir", str(tiny["data"]),
                            "--out-dir", str(tmp_path / "out")])
    assert exc.value.code == 1 and "config.yaml: not found" in caplog.text
