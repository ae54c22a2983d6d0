"""Tests of ent.scoring.text_normalization: the record, token dirs and where the scorer finds them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from ent.bin import train_tokenizer
from ent.scoring.text_normalization import (
    RECORD_NAME,
    TextNormalization,
    find_normalization,
    write_normalization_record,
)
from ent.text.normalize import normalize_text
from ent.text.tokenizer import Tokenizer
from ent.utils.errors import DataError

RAW = "SAY THE WORD \"BITE\", [NOISE] <noise> DON'T Stop."


@pytest.fixture(scope="module")
def token_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A char token list trained without apostrophes and with <noise> as a user symbol."""
    root = tmp_path_factory.mktemp("tok")
    text = root / "text"
    text.write_text("u1 say the word bite\nu2 don't stop <noise> please\n", encoding="utf-8")
    out = root / "char"
    train_tokenizer.main(["--text", str(text), "--token-type", "char", "--out-dir", str(out), "--no-apostrophe",
                          "--user-defined-symbols", "<noise>"])
    return out


def test_token_dir_normalization_equals_the_tokenizers(token_dir: Path) -> None:
    norm = TextNormalization.from_token_dir(token_dir)
    assert (norm.case, norm.keep_apostrophe, norm.remove_tags) == ("lower", False, True)
    assert norm.user_defined_symbols == ("<noise>",)
    assert norm.token_dir == str(token_dir.resolve())
    assert norm(RAW) == Tokenizer.from_dir(token_dir).normalize(RAW) == "say the word bite <noise> dont stop"


def test_record_round_trip_and_content(token_dir: Path, tmp_path: Path) -> None:
    path = write_normalization_record(tmp_path / "decode", token_dir)
    assert path == tmp_path / "decode" / RECORD_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == {"case": "lower", "keep_apostrophe": False, "remove_tags": True,
                    "user_defined_symbols": ["<noise>"], "token_dir": str(token_dir.resolve())}
    back = TextNormalization.read(path)
    assert back == TextNormalization.from_token_dir(token_dir) and back.source == str(path)


def test_defaults_are_normalize_texts() -> None:
    assert TextNormalization()(RAW) == normalize_text(RAW) == "say the word bite don't stop"


@pytest.mark.parametrize("content, message", [
    ("{not json", r"text_normalization.json:1: not valid JSON"),
    ("[1, 2]", r"text_normalization.json: expected a JSON object"),
    ('{"case": "title"}', r"text_normalization.json: case 'title' is not one of lower, upper, keep"),
    ('{"remove_tags": "yes"}', r"text_normalization.json: remove_tags must be true or false"),
    ('{"user_defined_symbols": [""]}', r"text_normalization.json: user_defined_symbols must be a list"),
])
def test_bad_records_are_one_line(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / RECORD_NAME).write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        find_normalization(tmp_path)


def test_find_order_token_dir_record_model_config_default(token_dir: Path, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    model_dir = tmp_path / "exp" / "model"
    hyp = model_dir / "decode_x" / "test"
    hyp.mkdir(parents=True)
    # nothing found: the defaults, with a warning
    with caplog.at_level(logging.INFO):
        norm = find_normalization(hyp)
    assert norm == TextNormalization() and norm.source == "default"
    assert "scoring with the default text normalization" in caplog.text
    # a model config two levels up names the token dir
    (model_dir / "config.yaml").write_text(yaml.safe_dump({"token_dir": str(token_dir), "encoder": "x"}))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        norm = find_normalization(hyp)
    assert not norm.keep_apostrophe and f"named by {model_dir / 'config.yaml'}" in norm.source
    assert "text normalization of the model's token dir" in caplog.text
    # the decoding's record wins over the model config
    TextNormalization(case="upper").write(hyp / RECORD_NAME)
    assert find_normalization(hyp).case == "upper"
    # an explicit token dir wins over everything
    norm = find_normalization(hyp, token_dir)
    assert (norm.case, norm.keep_apostrophe) == ("lower", False)
    assert norm.source == str(token_dir / "config.yaml")


def test_a_packed_models_relative_token_dir_is_found(token_dir: Path, tmp_path: Path) -> None:
    import shutil

    packed = tmp_path / "packed"
    shutil.copytree(token_dir, packed / "tokens")
    (packed / "config.yaml").write_text("token_dir: tokens\n")
    norm = find_normalization(packed / "decode")  # one level below the model dir
    assert norm.token_dir == str((packed / "tokens").resolve()) and not norm.keep_apostrophe


def test_explicit_token_dir_without_config_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"config.yaml: tokenizer config not found"):
        find_normalization(tmp_path, tmp_path / "nowhere")
