"""Tests of ``python -m ent.bin.train_tokenizer``."""

import subprocess
import sys

import pytest
import yaml

from ent.bin.train_tokenizer import main
from ent.text.tokenizer import Tokenizer

TEXT = """\
utt1 The quick brown fox jumps over the lazy dog.
utt2 I DON'T know what you're talking about [laughter]
utt3 She sells sea shells by the sea shore.
utt4 How much wood would a woodchuck chuck?
utt5 Hello world, this is a small test corpus.
"""


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_writes_outputs_and_config(tmp_path, text_file):
    out = tmp_path / "bpe30"
    main(["--text", str(text_file), "--token-type", "bpe", "--nbpe", "30", "--out-dir", str(out)])
    assert (out / "bpe.model").is_file() and (out / "tokens.txt").is_file()
    conf = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert conf["token_type"] == "bpe" and conf["nbpe"] == 30 and conf["case"] == "lower"
    assert conf["vocab_size"] == len((out / "tokens.txt").read_text(encoding="utf-8").splitlines())
    tok = Tokenizer.from_dir(out)
    assert tok.decode(tok.encode("I DON'T know [laughter]")) == "i don't know"


def test_skips_when_done_and_refuses_other_options(tmp_path, text_file, caplog):
    out = tmp_path / "char"
    args = ["--text", str(text_file), "--token-type", "char", "--out-dir", str(out)]
    main(args)
    before = (out / "bpe.model").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        main(args)
    assert "skipping" in caplog.text
    assert (out / "bpe.model").stat().st_mtime_ns == before
    with pytest.raises(SystemExit):
        main(args[:-2] + ["--out-dir", str(out), "--case", "upper"])
    main(args + ["--case", "upper", "--force"])
    tokens = (out / "tokens.txt").read_text(encoding="utf-8").split()
    assert "Q" in tokens and "q" not in tokens


def test_the_text_is_compared_by_content_not_by_path(tmp_path, text_file, caplog):
    out = tmp_path / "char"
    main(["--text", str(text_file), "--token-type", "char", "--out-dir", str(out)])
    before = (out / "bpe.model").stat().st_mtime_ns
    copy = tmp_path / "copy" / "text"
    copy.parent.mkdir()
    copy.write_bytes(text_file.read_bytes())
    with caplog.at_level("INFO"):
        main(["--text", str(copy), "--token-type", "char", "--out-dir", str(out)])  # the same text elsewhere
    assert "skipping" in caplog.text and (out / "bpe.model").stat().st_mtime_ns == before
    copy.write_text(text_file.read_text(encoding="utf-8") + "utt9 quite other words\n", encoding="utf-8")
    caplog.clear()
    with pytest.raises(SystemExit), caplog.at_level("ERROR"):
        main(["--text", str(copy), "--token-type", "char", "--out-dir", str(out)])
    assert "other options (text)" in caplog.text


def test_empty_text_is_an_error(tmp_path):
    path = tmp_path / "text"
    path.write_text("utt1 [noise]\nutt2 ?!\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["--text", str(path), "--out-dir", str(tmp_path / "o")])
    assert not (tmp_path / "o" / "config.yaml").exists()


def test_help_runs_as_module():
    res = subprocess.run([sys.executable, "-m", "ent.bin.train_tokenizer", "--help"],
                         capture_output=True, text=True, check=True)
    assert "--token-type" in res.stdout and "--nbpe" in res.stdout
