"""Bad audio given to inference and ent-transcribe: one-line errors, --skip-bad-audio, digital silence."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ent.bin import inference, transcribe


def bad_copy(data: Path, out: Path, nan_utt: str, silent_utt: str) -> Path:
    """A copy of a data dir whose ``nan_utt`` has NaN samples and ``silent_utt`` is all zero."""
    shutil.copytree(data, out)
    lines = []
    for line in (data / "wav.scp").read_text().splitlines():
        key, path = line.split(maxsplit=1)
        if key in (nan_utt, silent_utt):
            wave, sr = sf.read(path, dtype="float32")
            wave = np.zeros_like(wave) if key == silent_utt else wave
            if key == nan_utt:
                wave[len(wave) // 2] = np.nan
            path = str(out / f"{key}.wav")
            sf.write(path, wave, sr, subtype="FLOAT")
        lines.append(f"{key} {path}")
    (out / "wav.scp").write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture()
def bad_data(tiny_recipe: dict, tmp_path: Path) -> dict:
    durs = dict(line.split() for line in (tiny_recipe["data"] / "utt2dur").read_text().splitlines())
    order = sorted(durs, key=lambda u: (-float(durs[u]), u))  # the decoding order
    nan_utt, silent_utt = order[-1], order[0]
    data = bad_copy(tiny_recipe["data"], tmp_path / "data", nan_utt, silent_utt)
    lineno = [line.split()[0] for line in (data / "wav.scp").read_text().splitlines()].index(nan_utt) + 1
    return {"data": data, "nan": nan_utt, "silent": silent_utt, "utts": sorted(durs), "line": lineno}


def decode(tiny_recipe: dict, data: Path, out: Path, *extra: str) -> None:
    inference.main(["--model-dir", str(tiny_recipe["model_dir"]), "--data-dir", str(data), "--out-dir", str(out),
                    "--search", "greedy", "--batch-size", "1", *extra])


def test_inference_stops_at_bad_audio_in_one_line_and_keeps_what_it_decoded(
        tiny_recipe: dict, bad_data: dict, tmp_path: Path, caplog) -> None:
    out = tmp_path / "decode"
    with pytest.raises(SystemExit) as exit_:
        decode(tiny_recipe, bad_data["data"], out)
    assert exit_.value.code == 1
    where = f"{bad_data['data']}/wav.scp:{bad_data['line']}: audio has 1 NaN samples (first at"
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith(where) and "\n" not in errors[0]
    assert not (out / "text").exists()
    others = [u for u in bad_data["utts"] if u != bad_data["nan"]]  # decoded before it (it is the last)
    assert [line.split()[0] for line in (out / "incomplete" / "text").read_text().splitlines()] == others
    assert (out / "incomplete" / "ERROR").read_text().startswith(f"DataError: {where}")


def test_inference_skips_bad_audio_when_asked_and_decodes_silence_as_empty(
        tiny_recipe: dict, bad_data: dict, tmp_path: Path, caplog) -> None:
    out = tmp_path / "decode"
    decode(tiny_recipe, bad_data["data"], out, "--skip_bad_audio")
    failed = (out / "failed").read_text().splitlines()
    assert len(failed) == 1 and failed[0].startswith(f"{bad_data['nan']} {bad_data['data']}/wav.scp:")
    texts = dict((line.split(maxsplit=1) + [""])[:2] for line in (out / "text").read_text().splitlines())
    assert sorted(texts) == [u for u in bad_data["utts"] if u != bad_data["nan"]]
    assert texts[bad_data["silent"]] == ""
    emos = dict(line.split() for line in (out / "utt2emo").read_text().splitlines())
    assert emos[bad_data["silent"]] == "neutral"
    records = {r["utt"]: r for r in map(json.loads, (out / "result.jsonl").read_text().splitlines())}
    silent = records[bad_data["silent"]]
    assert silent["words"] == [] and silent["segments"] == [] and silent["emotion_scores"] is None
    assert f"1 of {len(bad_data['utts'])} utterances failed and are left out" in caplog.text
    assert f"the audio of '{bad_data['silent']}' is digital silence (every sample 0)" in caplog.text
    assert not (out / "incomplete").exists()


def test_transcribe_bad_files_one_line_or_skipped(tiny_recipe: dict, bad_data: dict, capsys, caplog) -> None:
    data = bad_data["data"]
    nan_wav, silent_wav = str(data / f"{bad_data['nan']}.wav"), str(data / f"{bad_data['silent']}.wav")
    good = next(line.split()[1] for line in (data / "wav.scp").read_text().splitlines()
                if line.split()[0] not in (bad_data["nan"], bad_data["silent"]))
    model = ["--model", str(tiny_recipe["model_dir"]), "--search", "greedy"]
    with pytest.raises(SystemExit) as exit_:
        transcribe.main(model + [good, nan_wav])
    err = capsys.readouterr()
    assert exit_.value.code == 1 and err.out.startswith(f"{good}: [")  # the first file is printed
    assert err.err.strip().splitlines() == [f"ent-transcribe: {nan_wav}: audio has 1 NaN samples (first at "
                                            f"{err.err.split('(first at ')[1].split(')')[0]})"]
    transcribe.main(model + ["--json", "--skip-bad-audio", nan_wav, silent_wav, good])
    err = capsys.readouterr()
    objs = [json.loads(line) for line in err.out.splitlines()]
    assert objs[0]["file"] == nan_wav and objs[0]["error"].startswith(f"{nan_wav}: audio has 1 NaN samples")
    assert objs[1]["file"] == silent_wav and objs[1]["text"] == "" and objs[1]["emotion"] == "neutral"
    assert objs[2]["file"] == good
    assert f"ent-transcribe: 1 of 3 files failed and were skipped: {nan_wav}" in err.err
    assert f"{silent_wav}: the audio is digital silence (every sample 0): empty text, neutral" in caplog.text
