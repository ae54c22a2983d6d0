"""Tests of the Viterbi smoothing of frame emotions."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from ent.bin import inference
from ent.decoding.emotion_smoothing import EPS, smooth_frame_emotions, smooth_hypothesis
from ent.decoding.hypothesis import Hypothesis
from ent.decoding.recognizer import DecodeOptions


def _posteriors(num_frames: int, num_classes: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(2.0 * torch.randn(num_frames, num_classes, generator=gen), dim=-1)


def _path_score(post: torch.Tensor, path, penalty: float) -> float:
    logp = np.log(np.clip(post.double().numpy(), EPS, None))
    switches = sum(a != b for a, b in zip(path, path[1:]))
    return float(sum(logp[t, c] for t, c in enumerate(path)) - penalty * switches)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("penalty", [0.3, 1.0, 3.0])
def test_viterbi_equals_brute_force(seed: int, penalty: float) -> None:
    post = _posteriors(6, 3, seed)
    path = smooth_frame_emotions(post, penalty)
    best = max(_path_score(post, p, penalty) for p in itertools.product(range(3), repeat=6))
    assert len(path) == 6
    assert _path_score(post, path, penalty) == pytest.approx(best, abs=1e-12)


def test_zero_penalty_is_the_argmax_and_a_huge_one_a_single_emotion() -> None:
    post = _posteriors(50, 4, 0)
    assert smooth_frame_emotions(post, 0.0) == post.argmax(dim=1).tolist()
    constant = smooth_frame_emotions(post, 1e6)
    expected = int(torch.log(post).sum(dim=0).argmax())
    assert constant == [expected] * 50
    assert smooth_frame_emotions(torch.zeros(0, 4), 1.0) == []


def test_short_flickers_are_removed_long_changes_kept() -> None:
    labels = [0] * 20 + [2] + [0] * 10 + [1] * 20
    post = torch.full((len(labels), 3), 0.2)
    post[torch.arange(len(labels)), labels] = 0.6
    # one frame of class 2 gains log(3) = 1.1 nats, less than two switches of 1 nat
    assert smooth_frame_emotions(post, 1.0) == [0] * 31 + [1] * 20


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="switch_penalty"):
        smooth_frame_emotions(torch.ones(3, 2) / 2, -1.0)
    with pytest.raises(ValueError, match="shape"):
        smooth_frame_emotions(torch.ones(3), 1.0)
    with pytest.raises(ValueError, match="frame_switch_penalty"):
        DecodeOptions(frame_switch_penalty=-0.5)


def test_tokens_take_the_smoothed_emotion_of_their_frame() -> None:
    post = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.1, 0.9]])
    hyp = Hypothesis(tokens=[5, 6], token_frames=[1, 4], token_emotions=[1, 1],
                     frame_emotions=[0, 1, 0, 1, 1, 1], frame_posteriors=post, score=-1.0)
    smoothed = smooth_hypothesis(hyp, 1.0)
    assert smoothed.frame_emotions == [0, 0, 0, 1, 1, 1]
    assert smoothed.token_emotions == [0, 1]
    assert smoothed.tokens == hyp.tokens and smoothed.score == hyp.score


def test_inference_option_smooths_the_written_frames(tiny_recipe: dict, tmp_path: Path) -> None:
    outs = {}
    for penalty in (0.0, 1e6):
        out = tmp_path / f"p{penalty}"
        inference.main(["--model-dir", str(tiny_recipe["model_dir"]), "--data-dir", str(tiny_recipe["data"]),
                        "--out-dir", str(out), "--search", "greedy", "--frame-switch-penalty", str(penalty)])
        outs[penalty] = {l.split()[0]: l.split()[2:] for l in (out / "frame_emotions").read_text().splitlines()}
        assert (out / "text").read_text() == (tmp_path / "p0.0" / "text").read_text()  # words unchanged
    for utt, frames in outs[1e6].items():
        assert len(set(frames)) == 1 and len(frames) == len(outs[0.0][utt])
