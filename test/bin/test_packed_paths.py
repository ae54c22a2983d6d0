"""A packed model reads its own token list and statistics, whatever lies in the current directory."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from ent.bin import pack_model
from ent.decoding.recognizer import EmotionRecognizer
from ent.utils.errors import DataError


def test_files_in_the_current_directory_do_not_replace_the_packs_own(tiny_recipe: dict, tmp_path: Path,
                                                                     monkeypatch) -> None:
    packed = tmp_path / "packed"
    pack_model.main(["--model-dir", str(tiny_recipe["model_dir"]), "--out-dir", str(packed)])
    here = tmp_path / "elsewhere"
    shutil.copytree(packed / "tokens", here / "tokens")  # a decoy token list of another model
    tokens = (here / "tokens" / "tokens.txt").read_text().splitlines()
    (here / "tokens" / "tokens.txt").write_text("\n".join(tokens[:2] + ["x", "y"] + tokens[-1:]) + "\n")
    np.savez(here / "feats_stats.npz", count=np.int64(1), sum=np.zeros(80), sum_square=np.ones(80))
    monkeypatch.chdir(here)
    rec = EmotionRecognizer.from_model_dir(packed, "model.pth")
    assert rec.tokenizer.token_list == (packed / "tokens" / "tokens.txt").read_text().split()
    assert Path(rec.model.normalize.stats_file) == packed / "feats_stats.npz"
    # a pack without its token list is an error naming the pack, not a silent use of ./tokens
    shutil.rmtree(packed / "tokens")
    with pytest.raises(DataError, match=rf"'tokens' not found \(looked in {packed}\)"):
        EmotionRecognizer.from_model_dir(packed, "model.pth")

