"""Tests of sentencepiece tokenizer training and the Tokenizer class."""

from pathlib import Path

import pytest

from ent.text.normalize import normalize_text
from ent.text.tokenizer import Tokenizer, read_token_list, train_tokenizer
from ent.utils.errors import DataError

RAW = [
    "The quick brown fox jumps over the lazy dog.",
    "I don't know what you're talking about!",
    "She sells sea shells by the sea shore.",
    "How much wood would a woodchuck chuck?",
    "Peter Piper picked a peck of pickled peppers.",
    "Hello world, this is a small test corpus.",
    "We will meet again in the morning.",
    "Are you angry or are you happy today?",
]
TEXTS = [normalize_text(t) for t in RAW]
OPTIONS = {"case": "lower", "keep_apostrophe": True, "remove_tags": True}


def _train(tmp_path: Path, token_type: str, nbpe: int = 60, **kw) -> Tokenizer:
    prefix = tmp_path / token_type
    train_tokenizer(TEXTS, prefix, token_type=token_type, nbpe=nbpe,
                    token_list_path=tmp_path / f"{token_type}.txt", **kw)
    return Tokenizer(f"{prefix}.model", tmp_path / f"{token_type}.txt", text_options=OPTIONS)


@pytest.mark.parametrize("token_type", ["char", "bpe", "unigram"])
def test_token_list_convention(tmp_path, token_type):
    tok = _train(tmp_path, token_type)
    tokens = read_token_list(tmp_path / f"{token_type}.txt")
    assert tokens[0] == "<blank>" and tokens[1] == "<unk>" and tokens[-1] == "<sos/eos>"
    assert len(set(tokens)) == len(tokens)
    assert tok.vocab_size == len(tokens)
    assert tok.blank_id == 0 and tok.unk_id == 1 and tok.sos_eos_id == len(tokens) - 1


def test_char_vocabulary_is_the_characters(tmp_path):
    tok = _train(tmp_path, "char")
    chars = {c for t in TEXTS for c in t if c != " "}
    assert set(tok.token_list[2:-1]) == chars | {"\u2581"}


@pytest.mark.parametrize("token_type", ["char", "bpe", "unigram"])
def test_round_trip_on_training_text(tmp_path, token_type):
    tok = _train(tmp_path, token_type)
    for raw, norm in zip(RAW, TEXTS):
        ids = tok.encode(raw)  # normalizes first
        assert ids, raw
        assert 0 not in ids and tok.sos_eos_id not in ids and tok.unk_id not in ids
        assert tok.decode(ids) == norm


@pytest.mark.parametrize("token_type", ["char", "bpe", "unigram"])
def test_word_starts(tmp_path, token_type):
    tok = _train(tmp_path, token_type)
    for norm in TEXTS:
        ids = tok.encode(norm)
        starts = [tok.is_word_start(i) for i in ids]
        assert starts[0]
        assert sum(starts) == len(norm.split())
        assert all(t.startswith("\u2581") == s for t, s in zip(tok.tokens(ids), starts))


@pytest.mark.parametrize("token_type", ["char", "bpe", "unigram"])
def test_deterministic(tmp_path, token_type):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    train_tokenizer(TEXTS, a / "m", token_type=token_type, nbpe=50)
    train_tokenizer(list(TEXTS), b / "m", token_type=token_type, nbpe=50)
    assert (a / "tokens.txt").read_bytes() == (b / "tokens.txt").read_bytes()
    assert (a / "m.model").read_bytes() == (b / "m.model").read_bytes()


@pytest.mark.parametrize("token_type", ["char", "bpe", "unigram"])
def test_unknown_character_is_unk(tmp_path, token_type):
    tok = _train(tmp_path, token_type)
    ids = tok.encode("hello жж world")
    assert tok.unk_id in ids
    assert 0 not in ids
    text = tok.decode(ids)
    assert "<unk>" in text and text.startswith("hello ") and text.endswith(" world")


def test_bpe_vocab_size_and_hard_limit(tmp_path):
    tokens = train_tokenizer(TEXTS, tmp_path / "m", token_type="bpe", nbpe=40)
    assert len(tokens) == 40 + 2  # sentencepiece's 40 (its <unk> included) + <blank> + <sos/eos>
    with pytest.raises(ValueError, match="sentencepiece"):
        train_tokenizer(TEXTS, tmp_path / "n", token_type="bpe", nbpe=5000, hard_vocab_limit=True)


def test_user_defined_symbols(tmp_path):
    texts = TEXTS + ["yes <noise> no"]
    train_tokenizer(texts, tmp_path / "m", token_type="bpe", nbpe=60, user_defined_symbols=["<noise>"])
    tok = Tokenizer(tmp_path / "m.model", tmp_path / "tokens.txt", text_options=OPTIONS)
    assert tok.token_list[2] == "<noise>"
    ids = tok.encode("Yes <noise> no [laughter]")
    assert 2 in ids
    assert tok.decode(ids) == "yes <noise> no"


def test_decode_skips_blank_and_sos(tmp_path):
    tok = _train(tmp_path, "char")
    ids = tok.encode("the dog")
    assert tok.decode([0] + ids + [tok.sos_eos_id, 0]) == "the dog"
    with pytest.raises(IndexError):
        tok.tokens([tok.vocab_size])


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="token_type"):
        train_tokenizer(TEXTS, tmp_path / "m", token_type="word")
    with pytest.raises(ValueError, match="no training text"):
        train_tokenizer(["", "  "], tmp_path / "m", token_type="char")
    bad = tmp_path / "bad.txt"
    bad.write_text("<unk>\n<blank>\na\n<sos/eos>\n", encoding="utf-8")
    with pytest.raises(DataError, match="bad.txt"):
        read_token_list(bad)
    dup = tmp_path / "dup.txt"
    dup.write_text("<blank>\n<unk>\na\na\n<sos/eos>\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"dup.txt:4: duplicate"):
        read_token_list(dup)
