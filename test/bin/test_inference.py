"""inference -> score -> pack_model -> ent-transcribe on a tiny trained model."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from ent.bin import inference, pack_model, score, transcribe


@pytest.mark.parametrize("search", ["greedy", "modified_beam_search"])
def test_inference_writes_every_output(tiny_recipe: dict, tmp_path: Path, search: str) -> None:
    out = tmp_path / "decode"
    inference.main(["--model-dir", str(tiny_recipe["model_dir"]), "--data-dir", str(tiny_recipe["data"]),
                    "--out-dir", str(out), "--search", search, "--batch-size", "4"])
    utts = sorted(line.split()[0] for line in (tiny_recipe["data"] / "utt2emo").read_text().splitlines())
    for name in ("text", "utt2emo", "frame_emotions", "token"):
        keys = [line.split()[0] for line in (out / name).read_text().splitlines()]
        assert keys == utts, name
    frames = {l.split()[0]: l.split()[2:] for l in (out / "frame_emotions").read_text().splitlines()}
    durations = {l.split()[0]: float(l.split()[1]) for l in (tiny_recipe["data"] / "utt2dur").read_text().splitlines()}
    for utt, emos in frames.items():
        # one emotion per 40 ms encoder frame covering the utterance
        assert abs(len(emos) * 0.04 - durations[utt]) < 0.1
    records = [json.loads(l) for l in (out / "result.jsonl").read_text().splitlines()]
    assert [r["utt"] for r in records] == utts
    score.main(["--ref-dir", str(tiny_recipe["data"]), "--hyp-dir", str(out), "--diarization"])
    scores = json.loads((out / "scores.json").read_text())
    assert {"asr", "emotion", "diarization"} <= set(scores)
    assert len(list((out / "timeline").glob("*.png"))) == len(utts)


def test_decoding_records_the_token_lists_normalization_and_score_uses_it(tiny_recipe: dict,
                                                                          tmp_path: Path) -> None:
    from ent.scoring.text_normalization import RECORD_NAME, TextNormalization

    out = tmp_path / "decode"
    inference.main(["--model-dir", str(tiny_recipe["model_dir"]), "--data-dir", str(tiny_recipe["data"]),
                    "--out-dir", str(out), "--search", "greedy"])
    record = json.loads((out / RECORD_NAME).read_text())
    assert record == TextNormalization.from_token_dir(tiny_recipe["tokens"]).options()
    assert record["token_dir"] == str(tiny_recipe["tokens"].resolve()) and record["case"] == "lower"
    # the recipe's references are upper case ("HELLO WORLD"); a model trained on this token list writes
    # lower case (the 1-epoch model writes nothing, so its perfect output is put in its place)
    perfect = "".join(f"{line.lower()}\n" for line in (tiny_recipe["data"] / "text").read_text().splitlines())
    (out / "text").write_text(perfect)
    score.main(["--ref-dir", str(tiny_recipe["data"]), "--hyp-dir", str(out)])
    scores = json.loads((out / "scores.json").read_text())
    assert scores["asr"]["text_normalization"]["source"] == str(out / RECORD_NAME)
    assert scores["asr"]["wer"]["errors"] == 0 and scores["asr"]["wer"]["n_ref"] > 0
    score.main(["--ref-dir", str(tiny_recipe["data"]), "--hyp-dir", str(out), "--no-normalize"])
    wer = json.loads((out / "scores.json").read_text())["asr"]["wer"]
    assert wer["errors"] == wer["n_ref"]


def test_missing_model_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ent.bin.inference", "--model-dir", str(tmp_path), "--data-dir", str(tmp_path),
         "--out-dir", str(tmp_path / "o")], capture_output=True, text=True,
    )
    assert proc.returncode == 1
    assert f"{tmp_path}/config.yaml: not found" in proc.stderr


def test_a_config_or_checkpoint_this_version_cannot_build_is_one_clear_line(tiny_recipe: dict, tmp_path: Path) -> None:
    import shutil

    import torch
    import yaml

    from ent.decoding.recognizer import EmotionRecognizer
    from ent.utils.errors import DataError

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_recipe["model_dir"], model_dir)
    config = yaml.safe_load((model_dir / "config.yaml").read_text())
    config["frontend_conf"] = {**(config.get("frontend_conf") or {}), "cache_mb": 64}  # an option since removed
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(DataError, match=r"config.yaml: cannot build the model from this config: .*cache_mb"):
        EmotionRecognizer.from_model_dir(model_dir, "1epoch.pth")
    shutil.copy(tiny_recipe["model_dir"] / "config.yaml", model_dir / "config.yaml")
    state = torch.load(model_dir / "1epoch.pth", map_location="cpu")
    state["head.extra.weight"] = torch.zeros(1)
    torch.save(state, model_dir / "odd.pth")
    with pytest.raises(DataError, match=r"odd.pth: does not fit the model of config.yaml"):
        EmotionRecognizer.from_model_dir(model_dir, "odd.pth")


def test_packed_model_transcribes_from_anywhere(tiny_recipe: dict, tmp_path: Path, capsys, monkeypatch) -> None:
    packed = tmp_path / "packed"
    pack_model.main(["--model-dir", str(tiny_recipe["model_dir"]), "--out-dir", str(packed)])
    assert sorted(p.name for p in packed.iterdir()) == ["config.yaml", "feats_stats.npz", "model.pth", "tokens"]
    monkeypatch.chdir(tmp_path)  # relative paths of the training run do not resolve here
    wav = sorted((tiny_recipe["root"] / "audio").rglob("*.wav"))[0]
    transcribe.main(["--model", str(packed), str(wav)])
    out = capsys.readouterr().out
    assert out.startswith(f"{wav}: [") and "emotion timeline: 0.00-" in out
    transcribe.main(["--model", str(packed), "--json", str(wav)])
    record = json.loads(capsys.readouterr().out)
    assert record["file"] == str(wav) and record["emotion"] in ("neutral", "happy", "angry", "sad")


def test_lm_is_trained_fused_packed_and_used_by_transcribe(tiny_recipe: dict, tmp_path: Path, capsys,
                                                          monkeypatch, caplog) -> None:
    from ent.bin import train_lm
    from ent.lm.ngram import NgramLM

    arpa = tmp_path / "lm" / "lm.arpa"
    train_lm.main(["--token-dir", str(tiny_recipe["tokens"]), "--text", str(tiny_recipe["data"] / "text"),
                   "--order", "3", "--out", str(arpa)])
    assert NgramLM.read_arpa(arpa).order == 3
    decode_yaml = tmp_path / "decode.yaml"
    decode_yaml.write_text("search: modified_beam_search\nbeam: 3\nmax_symbols_per_frame: 2\n"
                           "lm_weight: 0.5\ntoken_bonus: 0.5\n")
    common = ["--model-dir", str(tiny_recipe["model_dir"]), "--data-dir", str(tiny_recipe["data"]),
              "--config", str(decode_yaml)]
    # lm_weight > 0 without an LM: one clear line
    proc = subprocess.run([sys.executable, "-m", "ent.bin.inference", *common, "--out-dir", str(tmp_path / "x")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "lm_weight > 0 needs a language model" in proc.stderr
    inference.main([*common, "--out-dir", str(tmp_path / "fused"), "--lm", str(arpa)])
    assert len((tmp_path / "fused" / "text").read_text().splitlines()) == 6
    # greedy with an LM weight is refused (fusion needs beam search), naming the config
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit):
        inference.main([*common, "--out-dir", str(tmp_path / "g"), "--lm", str(arpa), "--search", "greedy"])
    assert f"{decode_yaml}: lm_weight and token_bonus need search: modified_beam_search" in caplog.text

    packed = tmp_path / "packed"
    pack_model.main(["--model-dir", str(tiny_recipe["model_dir"]), "--out-dir", str(packed),
                     "--decode-config", str(decode_yaml), "--lm", str(arpa)])
    assert {"decode.yaml", "lm.arpa"} <= {p.name for p in packed.iterdir()}
    monkeypatch.chdir(tmp_path)
    wav = sorted((tiny_recipe["root"] / "audio").rglob("*.wav"))[0]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        transcribe.main(["--model", str(packed), "--verbose", str(wav)])
    assert "loaded the 3-gram LM" in caplog.text and "weight 0.5" in caplog.text
    assert capsys.readouterr().out.startswith(f"{wav}: [")
    # --search greedy turns the packed LM off instead of failing
    transcribe.main(["--model", str(packed), "--search", "greedy", str(wav)])
    assert capsys.readouterr().out.startswith(f"{wav}: [")


def test_dense_output_warns_only_for_one_symbol_per_frame_beam_search(caplog) -> None:
    from ent.decoding.recognizer import DecodeOptions

    one = DecodeOptions(search="modified_beam_search", max_symbols_per_frame=1)
    with caplog.at_level(logging.WARNING):
        inference._warn_if_dense(one, 65, 100)
    assert "0.65 per frame" in caplog.text and "max_symbols_per_frame" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        inference._warn_if_dense(DecodeOptions(search="greedy"), 65, 100)
        inference._warn_if_dense(DecodeOptions(search="modified_beam_search", max_symbols_per_frame=2), 65, 100)
        inference._warn_if_dense(one, 30, 100)
        inference._warn_if_dense(one, 0, 0)
    assert caplog.text == ""


def test_speaker_cmvn_model_trains_and_decodes_with_each_sets_speakers(tiny_recipe: dict, tmp_path: Path,
                                                                        capsys) -> None:
    import shutil

    import numpy as np

    from ent.bin import train
    from ent.data.datadir import DataDir
    from ent.decoding.recognizer import DecodeOptions, EmotionRecognizer

    data = tmp_path / "data"
    shutil.copytree(tiny_recipe["data"], data)
    utts = sorted(line.split()[0] for line in (data / "utt2emo").read_text().splitlines())
    (data / "utt2spk").write_text("".join(f"{u} spk{i % 2}\n" for i, u in enumerate(utts)))
    model_dir = tmp_path / "exp"
    train.main([
        "--config", str(tiny_recipe["config"]), "--train_data_dir", str(data), "--valid_data_dir", str(data),
        "--token_dir", str(tiny_recipe["tokens"]), "--normalize_conf", f"stats_file={tiny_recipe['stats']}",
        "--output_dir", str(model_dir), "--max_epoch", "1", "--speaker_cmvn", "true",
    ])
    assert (data / "spk_cmvn.npz").is_file()  # the training set's statistics, cached
    out = tmp_path / "decode"
    inference.main(["--model-dir", str(model_dir), "--data-dir", str(data), "--out-dir", str(out),
                    "--search", "greedy", "--model-file", "1epoch.pth"])
    recognizer = EmotionRecognizer.from_model_dir(model_dir, "1epoch.pth", DecodeOptions(search="greedy"))
    assert recognizer.speaker_cmvn
    dd = DataDir.load(data)
    stats = recognizer.speaker_stats(dd, utts)
    assert np.array_equal(stats[utts[0]].cmvn, stats[utts[2]].cmvn)
    assert not np.array_equal(stats[utts[0]].cmvn, stats[utts[1]].cmvn)
    assert all(s.prosody is None for s in stats.values())  # no prosody expert, no prosody statistics
    waves = [dd.load_audio(u) for u in utts]
    with_stats = recognizer.decode(utts, waves, cmvn=[stats[u] for u in utts])
    written = {r["utt"]: r for r in map(json.loads, (out / "result.jsonl").read_text().splitlines())}
    for r in with_stats:  # the CLI used the speaker statistics of the set
        assert written[r.utt]["emotion_scores"] == pytest.approx(r.emotion_scores, abs=1e-5)
    fallback = recognizer.decode(utts, waves)  # no statistics: the global CMVN
    recognizer.speaker_cmvn = False
    plain = recognizer.decode(utts, waves)
    assert [r.emotion_scores for r in fallback] == [r.emotion_scores for r in plain]
    assert fallback[0].emotion_scores != pytest.approx(with_stats[0].emotion_scores, abs=1e-5)

