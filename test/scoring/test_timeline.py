"""Tests of ent.scoring.timeline: the emotion timeline picture of one utterance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ent.scoring.timeline import PALETTE, TimedWord, emotion_colours, plot_timeline

EMOTIONS = ["neutral", "happy", "angry", "sad"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def pixels(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 pixels of a PNG, after checking that it is one."""
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def count_colour(img: np.ndarray, hex_colour: str) -> int:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int(np.all(img == rgb, axis=-1).sum())


def test_colours_are_fixed_by_the_emotion_order() -> None:
    assert emotion_colours(EMOTIONS) == ["#d9d9d9", PALETTE[0], PALETTE[1], PALETTE[2]]
    assert emotion_colours(["calm"] + ["x"] * 12)[-1] == PALETTE[11 % len(PALETTE)]


def test_full_picture_shows_the_emotions_where_they_are(tmp_path: Path) -> None:
    words = [TimedWord("say", 0.1, 0.4), TimedWord("the", 0.45, 0.6), TimedWord("word", 0.7, 1.1)]
    wave = np.sin(np.linspace(0, 300, 32000)).astype(np.float32) * 0.5
    full = tmp_path / "deep" / "full.png"
    plot_timeline(full, 2.0, EMOTIONS, ref_intervals=[(0.5, 1.5, "sad")],
                  hyp_frames=["neutral"] * 10 + ["sad"] * 30 + ["neutral"] * 10, frame_shift=0.04,
                  words=words, title="utt1  EDER 10.0 %", wave=wave)
    all_neutral = tmp_path / "neutral.png"
    plot_timeline(all_neutral, 2.0, EMOTIONS, ref_intervals=[], hyp_frames=["neutral"] * 50, frame_shift=0.04,
                  words=words, wave=wave)
    img, img0 = pixels(full), pixels(all_neutral)
    assert img.shape == img0.shape
    sad = PALETTE[2]
    # two bands of about half the utterance in sad, against the legend's patch alone
    assert count_colour(img, sad) > 20 * count_colour(img0, sad) > 0
    assert count_colour(img0, "#d9d9d9") > count_colour(img, "#d9d9d9")
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically


def test_without_words_or_reference_the_picture_has_fewer_rows(tmp_path: Path) -> None:
    hyp = ["happy"] * 25
    plot_timeline(tmp_path / "words.png", 1.0, EMOTIONS, ref_intervals=[(0.2, 0.6, "happy")], hyp_frames=hyp,
                  frame_shift=0.04, words=[("hi", 0.1, 0.5)])
    plot_timeline(tmp_path / "nowords.png", 1.0, EMOTIONS, ref_intervals=[(0.2, 0.6, "happy")],
                  hyp_frames=hyp, frame_shift=0.04)
    plot_timeline(tmp_path / "hyponly.png", 1.0, EMOTIONS, hyp_frames=hyp, frame_shift=0.04)
    plot_timeline(tmp_path / "refonly.png", 1.0, EMOTIONS, ref_intervals=[(0.2, 0.6, "happy")])
    plot_timeline(tmp_path / "intervals.png", 1.0, EMOTIONS, ref_intervals=[],
                  hyp_intervals=[(0.2, 0.6, "angry")])
    plot_timeline(tmp_path / "noframes.png", 1.0, EMOTIONS, ref_intervals=[], hyp_frames=[], frame_shift=0.04)
    heights = {p.stem: pixels(p).shape[0] for p in tmp_path.glob("*.png")}
    assert heights["words"] > heights["nowords"] > heights["hyponly"]
    assert heights["hyponly"] == heights["refonly"]
    assert count_colour(pixels(tmp_path / "intervals.png"), PALETTE[1]) > 1000  # the angry hypothesis band


def test_long_utterances_with_many_words_cap_the_width(tmp_path: Path) -> None:
    words = [(f"word{i}", 0.3 * i, 0.3 * i + 0.25) for i in range(60)]
    plot_timeline(tmp_path / "long.png", 18.0, EMOTIONS, hyp_frames=["sad"] * 450, frame_shift=0.04, words=words)
    assert pixels(tmp_path / "long.png").shape[1] == 2000  # 20 inches at 100 dpi (the widest)


@pytest.mark.parametrize("kwargs, message", [
    ({"duration": 0.0, "hyp_frames": ["neutral"], "frame_shift": 0.04}, "duration must be positive"),
    ({"duration": 1.0}, "nothing to draw"),
    ({"duration": 1.0, "hyp_frames": ["neutral"]}, "need a positive frame_shift"),
    ({"duration": 1.0, "hyp_frames": ["neutral"], "frame_shift": 0.04, "hyp_intervals": []}, "at most one"),
    ({"duration": 1.0, "hyp_frames": ["bored"], "frame_shift": 0.04}, "hypothesis emotion 'bored'"),
    ({"duration": 1.0, "ref_intervals": [(0.1, 0.2, "bored")]}, "reference emotion 'bored'"),
])
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plot_timeline(tmp_path / "x.png", emotions=EMOTIONS, **kwargs)
    assert not (tmp_path / "x.png").exists()
