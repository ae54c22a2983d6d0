"""Decoding hypotheses and what is derived from them: words, utterance emotion, segments.

A :class:`Hypothesis` is one decoded path of the Emotion Neural Transducer
through its alignment lattice, with the emotion read off the emotion lattice
along that path (see :mod:`ent.decoding.greedy` for the exact rule):

* ``token_emotions[i]``: emotion at the node ``(t_i, i)`` where token ``i`` was
  emitted (``t_i = token_frames[i]``);
* ``frame_emotions[t]``: emotion at the node where the path leaves frame ``t``,
  i.e. ``(t, u_t)`` with ``u_t`` the number of tokens emitted at frames
  ``<= t``.

From a hypothesis this module derives word timings and word emotions
(:func:`words_with_times`), the utterance emotion (:func:`utterance_emotion`,
from the utterance head or pooled from the lattice) and emotional segments
(:func:`frames_to_segments`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Iterator, List, NamedTuple, Optional, Protocol, Sequence, Tuple

import torch
from torch import Tensor

from ent.data.emotions import DEFAULT_EMOTIONS, NEUTRAL

#: Where the utterance emotion comes from (see :func:`utterance_emotion`).
UTT_EMOTION_SOURCES: Tuple[str, ...] = ("head", "lattice")
#: Pooling rules of the lattice utterance emotion (see :func:`lattice_utterance_emotion`).
LATTICE_RULES: Tuple[str, ...] = ("max", "mean")


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode without gradients, then restore its mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


class TokenizerLike(Protocol):
    """What decoding needs from a tokenizer (:class:`ent.text.tokenizer.Tokenizer` has it)."""

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> text (word boundaries "▁" become spaces)."""
        ...

    def tokens(self, ids: Iterable[int]) -> List[str]:
        """Token ids -> token strings (pieces)."""
        ...

    def is_word_start(self, token_id: int) -> bool:
        """Whether the token begins a word (its text starts with "▁")."""
        ...


@dataclass
class Hypothesis:
    """One decoded path of one utterance.

    Attributes:
        tokens: Emitted token ids (never blank), length U.
        token_frames: Encoder frame where each token was emitted, length U,
            non-decreasing.
        token_emotions: Emotion class id of each token, length U.
        frame_emotions: Emotion class id of each encoder frame, length T_b.
        frame_posteriors: Emotion posteriors of each frame. (T_b, C)
        score: Log-probability of the path: the sum of the log-probabilities
            of the emitted symbols (tokens and blanks). Modified beam search
            adds the probabilities of the merged paths that give the same
            tokens (log-add).
        token_posteriors: Emotion posteriors of each token, (U, C), or
            ``None`` when unknown (hand-made hypotheses).
    """

    tokens: List[int]
    token_frames: List[int]
    token_emotions: List[int]
    frame_emotions: List[int]
    frame_posteriors: Tensor
    score: float
    token_posteriors: Optional[Tensor] = None

    def __post_init__(self) -> None:
        n = len(self.tokens)
        if len(self.token_frames) != n or len(self.token_emotions) != n:
            raise ValueError(
                f"tokens ({n}), token_frames ({len(self.token_frames)}) and token_emotions "
                f"({len(self.token_emotions)}) must have the same length"
            )
        frames = self.token_frames
        if any(not 0 <= f < len(self.frame_emotions) for f in frames) or any(
            a > b for a, b in zip(frames, frames[1:])
        ):
            raise ValueError(
                f"token_frames must be non-decreasing frame indices in [0, {len(self.frame_emotions)}), "
                f"got {list(frames)}"
            )
        if self.frame_posteriors.dim() != 2 or self.frame_posteriors.size(0) != len(self.frame_emotions):
            raise ValueError(
                f"frame_posteriors must have shape ({len(self.frame_emotions)}, C), "
                f"got {tuple(self.frame_posteriors.shape)}"
            )
        if self.token_posteriors is not None and (
            self.token_posteriors.dim() != 2 or self.token_posteriors.size(0) != n
        ):
            raise ValueError(
                f"token_posteriors must have shape ({n}, C), got {tuple(self.token_posteriors.shape)}"
            )

    @property
    def num_frames(self) -> int:
        """T_b, the number of encoder frames of the utterance."""
        return len(self.frame_emotions)


@dataclass
class Word:
    """A recognised word with its time span and emotion.

    Attributes:
        text: The word (its tokens decoded).
        start: Start time in seconds (first token's frame x frame shift).
        end: End time in seconds ((last token's frame + 1) x frame shift).
        emotion: Emotion name.
        emotion_id: Emotion class id.
        tokens: Token ids of the word.
    """

    text: str
    start: float
    end: float
    emotion: str
    emotion_id: int
    tokens: List[int]


class Segment(NamedTuple):
    """An emotional time interval ``[start, end)`` in seconds."""

    start: float
    end: float
    emotion: str


class UttEmotion(NamedTuple):
    """Utterance-level emotion.

    Attributes:
        emotion_id: Class id.
        emotion: Class name.
        scores: Per-class scores (C,): head posteriors, or the pooled frame
            posteriors of the lattice rule.
    """

    emotion_id: int
    emotion: str
    scores: Tensor


def with_frame_emotions(
    hyp: Hypothesis, frame_emotions: Sequence[int], frame_posteriors: Optional[Tensor] = None
) -> Hypothesis:
    """``hyp`` with other frame emotions; each token takes the emotion of its frame.

    Args:
        hyp: A hypothesis of T frames.
        frame_emotions: T emotion ids.
        frame_posteriors: (T, C) posteriors that come with them; the tokens
            then take those of their frames too. None: the hypothesis keeps
            its frame and token posteriors.

    Returns:
        A new hypothesis; tokens, token frames and score are unchanged.
    """
    if len(frame_emotions) != hyp.num_frames:
        raise ValueError(f"{len(frame_emotions)} frame emotions for a hypothesis of {hyp.num_frames} frames")
    frames = list(hyp.token_frames)
    token_emotions = [int(frame_emotions[f]) for f in frames]
    if frame_posteriors is None:
        return dataclasses.replace(hyp, frame_emotions=list(frame_emotions), token_emotions=token_emotions)
    if frame_posteriors.size(0) != hyp.num_frames:
        raise ValueError(f"{frame_posteriors.size(0)} frame posteriors for a hypothesis of {hyp.num_frames} frames")
    return dataclasses.replace(
        hyp,
        frame_emotions=list(frame_emotions),
        frame_posteriors=frame_posteriors,
        token_emotions=token_emotions,
        token_posteriors=frame_posteriors[frames] if frames else frame_posteriors[:0],
    )


# ------------------------------------------------------------------ words
def _token_posteriors(hyp: Hypothesis) -> Tensor:
    """Per-token posteriors (U, C); the frame posteriors at the token frames when unknown."""
    if hyp.token_posteriors is not None:
        return hyp.token_posteriors
    if hyp.frame_posteriors.size(0) == 0:
        return torch.zeros(len(hyp.tokens), 0)
    return hyp.frame_posteriors[torch.tensor(hyp.token_frames, dtype=torch.long)]


def vote_emotion(emotions: Sequence[int], posteriors: Optional[Tensor] = None) -> int:
    """Majority emotion of a group of tokens.

    Args:
        emotions: Emotion ids of the tokens (non-empty).
        posteriors: Their emotion posteriors (N, C), used to break ties: among
            the most frequent ids the one with the largest summed posterior
            wins; remaining ties (or no posteriors) go to the smallest id.

    Returns:
        The winning emotion id.
    """
    if not emotions:
        raise ValueError("cannot vote on an empty group of tokens")
    counts = Counter(int(e) for e in emotions)
    best = max(counts.values())
    tied = sorted(e for e, c in counts.items() if c == best)
    if len(tied) == 1 or posteriors is None or posteriors.numel() == 0:
        return tied[0]
    summed = posteriors.double().sum(dim=0)
    return max(tied, key=lambda e: (float(summed[e]), -e))


def words_with_times(
    hyp: Hypothesis,
    tokenizer: TokenizerLike,
    frame_shift: float,
    emotions: Sequence[str] = DEFAULT_EMOTIONS,
) -> List[Word]:
    """Group a hypothesis' tokens into words with times and emotions.

    A word starts at every token for which ``tokenizer.is_word_start`` is true
    (sentencepiece "▁" prefix) and at the first token. Its time span is
    ``[first token's frame * frame_shift, (last token's frame + 1) *
    frame_shift)``; its emotion is the most frequent emotion of its tokens,
    ties going to the largest summed token posterior (:func:`vote_emotion`).
    Groups whose decoded text is empty (e.g. a lone "▁" piece followed by
    another word start) are dropped.

    Args:
        hyp: The hypothesis.
        tokenizer: Gives the text of a token group and the word starts.
        frame_shift: Seconds per encoder frame.
        emotions: Emotion names by class id.

    Returns:
        The words in order.
    """
    if not frame_shift > 0:
        raise ValueError(f"frame_shift must be positive, got {frame_shift}")
    groups: List[List[int]] = []
    for i, tok in enumerate(hyp.tokens):
        if not groups or tokenizer.is_word_start(tok):
            groups.append([i])
        else:
            groups[-1].append(i)
    posteriors = _token_posteriors(hyp)
    words: List[Word] = []
    for idx in groups:
        ids = [hyp.tokens[i] for i in idx]
        text = tokenizer.decode(ids).strip()
        if not text:
            continue
        group_post = posteriors[idx] if posteriors.numel() else None
        emo = vote_emotion([hyp.token_emotions[i] for i in idx], group_post)
        words.append(
            Word(
                text=text,
                start=hyp.token_frames[idx[0]] * frame_shift,
                end=(hyp.token_frames[idx[-1]] + 1) * frame_shift,
                emotion=emotions[emo],
                emotion_id=emo,
                tokens=ids,
            )
        )
    return words


# ------------------------------------------------------------ utterance level
def lattice_utterance_emotion(
    frame_posteriors: Tensor,
    neutral_id: int = 0,
    rule: str = "max",
    threshold: float = 0.5,
) -> Tuple[int, Tensor]:
    """Utterance emotion pooled from the frame posteriors of the decoded path.

    Rules:

    * ``"max"`` (default; the decision counterpart of lattice max pooling,
      which trains the most emotional node of an emotional utterance): each
      class is scored by its largest posterior over the frames. The
      non-neutral class with the largest score wins if that score reaches
      ``threshold``; otherwise the utterance is neutral.
    * ``"mean"``: the class with the largest mean posterior over the frames.

    Args:
        frame_posteriors: Emotion posteriors of the frames. (T_b, C)
        neutral_id: The neutral class.
        rule: ``"max"`` or ``"mean"``.
        threshold: Minimum peak posterior of an emotion (``"max"`` only).

    Returns:
        The class id and the pooled scores (C,) (max or mean over frames).
        An utterance without frames is neutral with zero scores.
    """
    if rule not in LATTICE_RULES:
        raise ValueError(f"unknown lattice rule {rule!r}; valid: {list(LATTICE_RULES)}")
    if frame_posteriors.dim() != 2:
        raise ValueError(f"frame_posteriors must have shape (T, C), got {tuple(frame_posteriors.shape)}")
    num_classes = frame_posteriors.size(1)
    if not 0 <= neutral_id < num_classes:
        raise ValueError(f"neutral_id {neutral_id} outside [0, {num_classes})")
    post = frame_posteriors.detach().float().cpu()
    if post.size(0) == 0:
        return neutral_id, torch.zeros(num_classes)
    if rule == "mean":
        pooled = post.mean(dim=0)
        return int(pooled.argmax()), pooled
    pooled = post.max(dim=0).values
    others = pooled.clone()
    others[neutral_id] = float("-inf")
    best = int(others.argmax())
    if num_classes > 1 and float(pooled[best]) >= threshold:
        return best, pooled
    return neutral_id, pooled


def head_utterance_posteriors(
    model: torch.nn.Module,
    hyps: Sequence[Hypothesis],
    enc_out: Tensor,
    enc_lens: Tensor,
    prosody: Optional[Tensor] = None,
) -> Tensor:
    """Utterance emotion posteriors of the model's head given the decoded tokens.

    Runs ``model.predict`` on the hypotheses' tokens (padded with -1) and
    ``model.head`` on the encoder and emotion-branch predictor outputs.

    Args:
        model: An :class:`~ent.models.transducer.EmotionTransducer`.
        hyps: One hypothesis per utterance (B).
        enc_out: The encoder outputs the head reads
            (:attr:`~ent.models.encoder_output.EncoderOutput.blank`). (B, T, D_e)
        enc_lens: Encoder lengths. (B,)
        prosody: Normalized prosody functionals, for a head with a prosody
            expert (:meth:`~ent.models.transducer.EmotionTransducer.encode_with_prosody`). (B, K)

    Returns:
        Posteriors. (B, C)
    """
    if len(hyps) != enc_out.size(0):
        raise ValueError(f"{len(hyps)} hypotheses for a batch of {enc_out.size(0)}")
    device = enc_out.device
    max_u = max((len(h.tokens) for h in hyps), default=0)
    text = torch.full((len(hyps), max_u), -1, dtype=torch.long, device=device)
    for b, h in enumerate(hyps):
        if h.tokens:
            text[b, : len(h.tokens)] = torch.tensor(h.tokens, dtype=torch.long, device=device)
    label_lens = torch.tensor([len(h.tokens) for h in hyps], dtype=torch.long, device=device)
    with evaluating(model):
        _, emo_pred = model.predict(text)
        logits = model.head(enc_out, enc_lens.to(device), emo_pred, label_lens,
                            None if prosody is None else prosody.to(device))
    return torch.softmax(logits.float(), dim=-1)


def utterance_emotion(
    model: torch.nn.Module,
    hyps: Sequence[Hypothesis],
    enc_out: Optional[Tensor] = None,
    enc_lens: Optional[Tensor] = None,
    utt_emotion_from: str = "head",
    lattice_rule: str = "max",
    threshold: float = 0.5,
    prosody: Optional[Tensor] = None,
) -> List[UttEmotion]:
    """Utterance emotions of decoded hypotheses.

    Args:
        model: The EmotionTransducer (gives ``emotions``, ``neutral_id`` and,
            for ``"head"``, the head).
        hyps: One hypothesis per utterance (B).
        enc_out: The encoder outputs the head reads (B, T, D_e)
            (:attr:`~ent.models.encoder_output.EncoderOutput.blank`); needed for ``"head"``.
        enc_lens: Encoder lengths (B,); needed for ``"head"``.
        utt_emotion_from: ``"head"``: argmax of the utterance head run on the
            encoder output and the decoded tokens (what the model was trained
            to predict with cross entropy). ``"lattice"``: pooled from the
            hypothesis' frame posteriors by :func:`lattice_utterance_emotion`.
        lattice_rule: ``"max"`` or ``"mean"`` (lattice only).
        threshold: Peak posterior an emotion needs under the ``"max"`` rule.
        prosody: Normalized prosody functionals (B, K), for ``"head"`` with a
            head that has a prosody expert.

    Returns:
        One :class:`UttEmotion` per hypothesis.
    """
    if utt_emotion_from not in UTT_EMOTION_SOURCES:
        raise ValueError(
            f"unknown utterance emotion source {utt_emotion_from!r}; valid: {list(UTT_EMOTION_SOURCES)}"
        )
    names: List[str] = list(model.emotions)
    if utt_emotion_from == "lattice":
        out = []
        for h in hyps:
            emo, scores = lattice_utterance_emotion(
                h.frame_posteriors, model.neutral_id, lattice_rule, threshold
            )
            out.append(UttEmotion(emo, names[emo], scores))
        return out
    if enc_out is None or enc_lens is None:
        raise ValueError("utt_emotion_from='head' needs enc_out and enc_lens")
    post = head_utterance_posteriors(model, hyps, enc_out, enc_lens, prosody).cpu()
    return [UttEmotion(int(p.argmax()), names[int(p.argmax())], p) for p in post]


# ------------------------------------------------------------------ segments
def frames_to_segments(
    frame_emotions: Sequence[int],
    frame_shift: float,
    emotions: Sequence[str] = DEFAULT_EMOTIONS,
    neutral: str = NEUTRAL,
) -> List[Segment]:
    """Emotional segments of per-frame emotions (the ``emo_segments`` format).

    Runs of equal adjacent frames are merged; frame ``i`` covers
    ``[i * frame_shift, (i + 1) * frame_shift)``; neutral runs are dropped.

    Args:
        frame_emotions: Emotion id of each frame.
        frame_shift: Seconds per frame.
        emotions: Emotion names by class id.
        neutral: Name of the class left out.

    Returns:
        Segments in time order, e.g. ids ``[0, 1, 1, 0, 2]`` with 0.04 s and
        ``neutral happy angry`` -> ``[(0.04, 0.12, "happy"), (0.16, 0.2, "angry")]``.
    """
    if not frame_shift > 0:
        raise ValueError(f"frame_shift must be positive, got {frame_shift}")
    out: List[Segment] = []
    start = 0
    n = len(frame_emotions)
    for i in range(1, n + 1):
        if i == n or frame_emotions[i] != frame_emotions[start]:
            name = emotions[int(frame_emotions[start])]
            if name != neutral:
                out.append(Segment(start * frame_shift, i * frame_shift, name))
            start = i
    return out
