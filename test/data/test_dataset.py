"""Tests of the joint ASR + emotion dataset and its collate functions."""

import numpy as np
import pytest
import torch

from ent.data.audio import write_audio
from ent.data.dataset import EmotionASRDataset, collate, collate_espnet
from ent.text.tokenizer import Tokenizer, train_tokenizer
from ent.utils.errors import DataError

SR = 16000
UTTS = {  # utt: (seconds, transcript, emotion)
    "u1": (0.5, "Hello there!", "happy"),
    "u2": (0.8, "I'm angry [laughter]", "angry"),
    "u3": (0.3, "so sad", "sad"),
}


def _make_data_dir(root, utts=UTTS, emo_segments="u2 0.1 0.4 angry\nu2 0.5 0.7 happy\n"):
    d = root / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    wav, text, spk, emo = [], [], [], []
    for utt, (sec, trans, label) in sorted(utts.items()):
        write_audio(root / f"{utt}.wav", (0.1 * rng.standard_normal(int(sec * SR))).astype(np.float32))
        wav.append(f"{utt} {root / (utt + '.wav')}")
        text.append(f"{utt} {trans}")
        spk.append(f"{utt} spk")
        emo.append(f"{utt} {label}")
    for name, lines in [("wav.scp", wav), ("text", text), ("utt2spk", spk), ("utt2emo", emo)]:
        (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if emo_segments:
        (d / "emo_segments").write_text(emo_segments, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    train_tokenizer(["hello there", "i'm angry", "so sad"], root / "bpe", token_type="char")
    return Tokenizer(root / "bpe.model", root / "tokens.txt",
                     text_options={"case": "lower", "keep_apostrophe": True, "remove_tags": True})


def test_items(tmp_path, tokenizer):
    ds = EmotionASRDataset(_make_data_dir(tmp_path), tokenizer)
    assert len(ds) == 3 and ds.utt_ids == ["u1", "u2", "u3"]
    item = ds["u2"]
    assert item["utt_id"] == "u2"
    assert item["speech"].dtype == np.float32 and item["speech"].shape == (int(0.8 * SR),)
    assert item["text"].dtype == np.int64
    assert tokenizer.decode(item["text"]) == "i'm angry"
    assert item["emotion"] == 2  # neutral happy angry sad
    np.testing.assert_allclose(item["emo_intervals"], [[0.1, 0.4, 2], [0.5, 0.7, 1]])
    assert ds[0]["utt_id"] == "u1"
    assert ds[0]["emo_intervals"].shape == (0, 3)
    assert np.array_equal(ds.token_ids("u2"), item["text"])


def test_collate_shapes_and_padding(tmp_path, tokenizer):
    ds = EmotionASRDataset(_make_data_dir(tmp_path), tokenizer)
    items = [ds[i] for i in range(3)]
    b = collate(items)
    n = [len(it["speech"]) for it in items]
    u = [len(it["text"]) for it in items]
    assert b["speech"].shape == (3, max(n)) and b["speech"].dtype == torch.float32
    assert b["speech_lengths"].tolist() == n
    assert b["text"].shape == (3, max(u)) and b["text"].dtype == torch.long
    assert b["text_lengths"].tolist() == u
    assert b["emotion"].tolist() == [1, 2, 3]
    assert b["emo_intervals"].shape == (3, 2, 3)
    assert b["emo_intervals_lengths"].tolist() == [0, 2, 0]
    assert b["utt_id"] == ["u1", "u2", "u3"]
    for i, it in enumerate(items):
        assert torch.equal(b["speech"][i, : n[i]], torch.from_numpy(it["speech"]))
        assert torch.all(b["speech"][i, n[i]:] == 0)
        assert torch.equal(b["text"][i, : u[i]], torch.from_numpy(it["text"]))
        assert torch.all(b["text"][i, u[i]:] == -1)
    assert torch.all(b["emo_intervals"][0] == -1) and torch.all(b["emo_intervals"][2] == -1)
    assert torch.equal(b["emo_intervals"][1], torch.tensor([[0.1, 0.4, 2.0], [0.5, 0.7, 1.0]]))


def test_collate_without_intervals_and_espnet_form(tmp_path, tokenizer):
    ds = EmotionASRDataset(_make_data_dir(tmp_path, emo_segments=None), tokenizer)
    utt_ids, b = collate_espnet([ds["u3"], ds["u1"]])
    assert utt_ids == ["u3", "u1"]
    assert "utt_id" not in b
    assert b["emo_intervals"].shape == (2, 0, 3)
    assert all(isinstance(v, torch.Tensor) for v in b.values())


def test_intervals_can_be_ignored(tmp_path, tokenizer):
    ds = EmotionASRDataset(_make_data_dir(tmp_path), tokenizer, use_intervals=False)
    assert ds["u2"]["emo_intervals"].shape == (0, 3) and ds["u2"]["emotion"] == 2
    assert collate([ds[i] for i in range(3)])["emo_intervals"].shape == (3, 0, 3)


def test_works_with_dataloader_and_keys(tmp_path, tokenizer):
    ds = EmotionASRDataset(_make_data_dir(tmp_path), tokenizer)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=[("u3", "u1"), ("u2",)], collate_fn=collate)
    assert [b["utt_id"] for b in loader] == [["u3", "u1"], ["u2"]]


@pytest.mark.parametrize("bad", ["[noise]", "?!", "<unk>"])
def test_empty_transcript_names_file_and_line(tmp_path, tokenizer, bad):
    utts = dict(UTTS)
    utts["u2"] = (0.8, bad, "angry")
    d = _make_data_dir(tmp_path, utts)
    with pytest.raises(DataError) as err:
        EmotionASRDataset(d, tokenizer)
    assert str(err.value).startswith(f"{d / 'text'}:2: ")
    assert "u2" in str(err.value) and "empty" in str(err.value)


def test_unknown_emotions(tmp_path, tokenizer):
    d = _make_data_dir(tmp_path)
    (d / "utt2emo").write_text("u1 happy\nu2 frustrated\nu3 sad\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"utt2emo:2: unknown emotion 'frustrated'"):
        EmotionASRDataset(d, tokenizer)
    ds = EmotionASRDataset(d, tokenizer, emotions=["neutral", "happy", "frustrated", "sad", "angry"])
    assert ds["u2"]["emotion"] == 2
    assert ds["u2"]["emo_intervals"][:, 2].tolist() == [4, 1]
    (d / "utt2emo").write_text("u1 happy\nu2 angry\nu3 sad\n", encoding="utf-8")
    (d / "emo_segments").write_text("u2 0.1 0.4 angry\nu2 0.5 0.7 bored\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"emo_segments:2: unknown emotion 'bored'"):
        EmotionASRDataset(d, tokenizer)


def test_subset_and_unknown_utt(tmp_path, tokenizer):
    d = _make_data_dir(tmp_path)
    ds = EmotionASRDataset(d, tokenizer, utt_ids=["u3", "u1"])
    assert len(ds) == 2 and ds[0]["utt_id"] == "u3"
    with pytest.raises(KeyError):
        ds["u2"]
    with pytest.raises(DataError, match="'nope' not found"):
        EmotionASRDataset(d, tokenizer, utt_ids=["nope"])


def test_speaker_cmvn_rows_are_collated(tmp_path, tokenizer):
    d = _make_data_dir(tmp_path)
    utts = sorted(UTTS)
    stats = {utt: np.full((2, 4), i, dtype=np.float32) for i, utt in enumerate(utts)}
    ds = EmotionASRDataset(d, tokenizer, speaker_cmvn=stats)
    item = ds["u2"]
    np.testing.assert_array_equal(item["speech_cmvn"], stats["u2"])
    out = collate([ds[0], ds[1]])
    assert out["speech_cmvn"].shape == (2, 2, 4) and out["speech_cmvn"].dtype == torch.float32
    assert "speech_cmvn" not in collate([EmotionASRDataset(d, tokenizer)[0]])
    with pytest.raises(ValueError, match="some items"):
        collate([ds[0], EmotionASRDataset(d, tokenizer)[1]])
    with pytest.raises(ValueError, match="no speaker CMVN"):
        EmotionASRDataset(d, tokenizer, speaker_cmvn={"u1": stats["u1"]})
