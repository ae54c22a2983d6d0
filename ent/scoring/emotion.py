"""Utterance-level speech emotion recognition scores.

Definitions (``C`` the confusion matrix of counts, rows = reference class,
columns = hypothesis class; ``n_c`` the number of reference utterances of
class ``c``; ``TP_c = C[c, c]``):

* **WA** (weighted accuracy) = overall accuracy = ``sum_c TP_c / sum_c n_c``.
* **UA** (unweighted accuracy) = mean over the classes present in the
  reference (``n_c > 0``) of the recall ``TP_c / n_c``. Classes absent from
  the reference are left out (their recall is undefined).
* **macro F1** = mean over the classes present in the reference *or* the
  hypothesis of ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)`` (``FP_c`` = column
  sum minus ``TP_c``, ``FN_c = n_c - TP_c``). A class never predicted has
  ``F1 = 0`` (precision 0/0 counted as 0), as does a class predicted but not
  in the reference. This equals ``sklearn.metrics.f1_score(...,
  average="macro")`` with its default label set and ``zero_division=0``.

A reference utterance without a hypothesis counts as wrong: it adds to
``n_c`` (so to the WA/UA denominators and to ``FN_c``) but to no column; it is
listed in ``missing`` and logged. A hypothesis id not in the reference or a
label outside the emotion list is a :class:`~ent.utils.errors.DataError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ent.data.emotions import DEFAULT_EMOTIONS, emotion_to_index
from ent.scoring import read_keyed_table
from ent.utils.errors import DataError
from ent.utils.fileio import TableLine, atomic_write

PathLike = Union[str, Path]

logger = logging.getLogger(__name__)


@dataclass
class EmotionScores:
    """Emotion recognition scores of a test set.

    Attributes:
        emotions: Class names; index order of the matrix.
        confusion: (C, C) int64 counts, rows = reference, cols = hypothesis.
        missing_per_class: (C,) int64 reference utterances of each class
            without a hypothesis.
        missing: Ids of those utterances.
    """

    emotions: List[str]
    confusion: np.ndarray
    missing_per_class: np.ndarray
    missing: List[str] = field(default_factory=list)

    @property
    def ref_counts(self) -> np.ndarray:
        """(C,) reference utterances per class (``n_c``, missing included)."""
        return self.confusion.sum(axis=1) + self.missing_per_class

    @property
    def hyp_counts(self) -> np.ndarray:
        """(C,) hypothesis utterances per class."""
        return self.confusion.sum(axis=0)

    @property
    def n_utts(self) -> int:
        """Number of reference utterances."""
        return int(self.ref_counts.sum())

    @property
    def n_missing(self) -> int:
        """Number of reference utterances without a hypothesis."""
        return len(self.missing)

    @property
    def n_correct(self) -> int:
        """Correctly classified utterances."""
        return int(np.trace(self.confusion))

    @property
    def wa(self) -> float:
        """Weighted accuracy (overall accuracy)."""
        return self.n_correct / self.n_utts if self.n_utts else 0.0

    def recall(self) -> Dict[str, Optional[float]]:
        """Per-class recall; ``None`` for classes absent from the reference."""
        tp = np.diag(self.confusion)
        ref = self.ref_counts
        return {e: (float(tp[i] / ref[i]) if ref[i] else None) for i, e in enumerate(self.emotions)}

    def precision(self) -> Dict[str, Optional[float]]:
        """Per-class precision; ``None`` for classes never predicted."""
        tp = np.diag(self.confusion)
        hyp = self.hyp_counts
        return {e: (float(tp[i] / hyp[i]) if hyp[i] else None) for i, e in enumerate(self.emotions)}

    def f1(self) -> Dict[str, Optional[float]]:
        """Per-class F1 ``2TP / (2TP + FP + FN)``; ``None`` for classes in
        neither the reference nor the hypothesis."""
        tp = np.diag(self.confusion)
        ref = self.ref_counts
        hyp = self.hyp_counts
        out: Dict[str, Optional[float]] = {}
        for i, e in enumerate(self.emotions):
            den = ref[i] + hyp[i]  # = 2TP + FP + FN
            out[e] = float(2 * tp[i] / den) if den else None
        return out

    @property
    def ua(self) -> float:
        """Unweighted accuracy: mean recall over classes in the reference."""
        vals = [r for r in self.recall().values() if r is not None]
        return float(np.mean(vals)) if vals else 0.0

    @property
    def macro_f1(self) -> float:
        """Mean F1 over classes in the reference or the hypothesis."""
        vals = [f for f in self.f1().values() if f is not None]
        return float(np.mean(vals)) if vals else 0.0

    def to_dict(self) -> Dict[str, Any]:
        """Summary for ``scores.json``."""
        return {
            "n_utts": self.n_utts,
            "n_correct": self.n_correct,
            "wa": self.wa,
            "ua": self.ua,
            "macro_f1": self.macro_f1,
            "emotions": list(self.emotions),
            "confusion": self.confusion.tolist(),
            "recall": self.recall(),
            "precision": self.precision(),
            "f1": self.f1(),
            "n_missing": self.n_missing,
            "missing": list(self.missing),
            "missing_per_class": self.missing_per_class.tolist(),
        }


def confusion_matrix(
    ref_labels: Sequence[str], hyp_labels: Sequence[str], emotions: Sequence[str] = DEFAULT_EMOTIONS
) -> np.ndarray:
    """Count matrix of paired labels.

    Args:
        ref_labels: Reference labels, length N.
        hyp_labels: Hypothesis labels, length N.
        emotions: Class names (index order).

    Returns:
        (C, C) int64, ``[i, j]`` = utterances of reference class ``i``
        predicted as class ``j``.

    Raises:
        ValueError: On a length mismatch or a label not in ``emotions``.
    """
    if len(ref_labels) != len(hyp_labels):
        raise ValueError(f"{len(ref_labels)} reference labels but {len(hyp_labels)} hypothesis labels")
    index = emotion_to_index(emotions)
    out = np.zeros((len(emotions), len(emotions)), dtype=np.int64)
    for r, h in zip(ref_labels, hyp_labels):
        if r not in index or h not in index:
            raise ValueError(f"label pair ({r!r}, {h!r}) not in the emotion list {list(emotions)}")
        out[index[r], index[h]] += 1
    return out


def score_emotions(
    refs: Mapping[str, str], hyps: Mapping[str, str], emotions: Sequence[str] = DEFAULT_EMOTIONS
) -> EmotionScores:
    """Score utterance emotions keyed by utterance id.

    Args:
        refs: utt -> reference emotion (the test set).
        hyps: utt -> predicted emotion; every key must be in ``refs``.
        emotions: Class names.

    Raises:
        ValueError: On unknown ids or labels (:func:`score_utt2emo_files`
            raises DataError with file and line instead).
    """
    if not refs:
        raise ValueError("no reference utterances")
    unknown = [u for u in hyps if u not in refs]
    if unknown:
        raise ValueError(f"{len(unknown)} hypothesis ids are not in the reference, e.g. '{unknown[0]}'")
    index = emotion_to_index(emotions)
    scored = [u for u in refs if u in hyps]
    missing = [u for u in refs if u not in hyps]
    conf = confusion_matrix([refs[u] for u in scored], [hyps[u] for u in scored], emotions)
    missing_per_class = np.zeros(len(emotions), dtype=np.int64)
    for u in missing:
        if refs[u] not in index:
            raise ValueError(f"reference label {refs[u]!r} of '{u}' not in {list(emotions)}")
        missing_per_class[index[refs[u]]] += 1
    if missing:
        logger.warning(
            "%d of %d reference utterances have no emotion hypothesis (counted as errors), e.g. '%s'",
            len(missing), len(refs), missing[0],
        )
    return EmotionScores(list(emotions), conf, missing_per_class, missing)


def read_utt2emo(path: PathLike, emotions: Sequence[str] = DEFAULT_EMOTIONS) -> Dict[str, str]:
    """Read an ``utt2emo`` file, checking every label.

    Raises:
        DataError: On a malformed file, a repeated id, a line with more than
            one label, or a label not in ``emotions`` (file:line).
    """
    return {utt: entry.value for utt, entry in _read_utt2emo_entries(path, emotions).items()}


def _read_utt2emo_entries(path: PathLike, emotions: Sequence[str]) -> Dict[str, TableLine]:
    """:func:`read_utt2emo` keeping line numbers."""
    index = emotion_to_index(emotions)
    out: Dict[str, TableLine] = {}
    for utt, entry in read_keyed_table(path).items():
        if len(entry.value.split()) != 1:
            raise DataError(path, entry.lineno, f"expected '<utt> <emotion>', got '{utt} {entry.value}'")
        if entry.value not in index:
            raise DataError(
                path, entry.lineno, f"unknown emotion '{entry.value}' (expected one of {', '.join(emotions)})"
            )
        out[utt] = entry
    return out


def score_utt2emo_files(
    ref_path: PathLike, hyp_path: PathLike, emotions: Sequence[str] = DEFAULT_EMOTIONS
) -> EmotionScores:
    """Score a hypothesis ``utt2emo`` against a reference ``utt2emo``.

    Raises:
        DataError: On malformed files, unknown labels or a hypothesis id not
            in the reference (naming the file and line).
    """
    refs = read_utt2emo(ref_path, emotions)
    hyps = _read_utt2emo_entries(hyp_path, emotions)
    for utt, entry in hyps.items():
        if utt not in refs:
            raise DataError(hyp_path, entry.lineno, f"utterance '{utt}' is not in the reference {ref_path}")
    return score_emotions(refs, {u: e.value for u, e in hyps.items()}, emotions)


def row_normalize(confusion: np.ndarray) -> np.ndarray:
    """Divide each row by its sum (rows summing to 0 stay 0).

    Args:
        confusion: (C, C) counts.

    Returns:
        (C, C) float64 fractions; row ``i`` = distribution of the predictions
        for reference class ``i``.
    """
    conf = np.asarray(confusion, dtype=np.float64)
    sums = conf.sum(axis=1, keepdims=True)
    return np.divide(conf, sums, out=np.zeros_like(conf), where=sums > 0)


def format_confusion_matrix(
    confusion: np.ndarray,
    emotions: Sequence[str],
    normalize: bool = False,
    missing_per_class: Optional[np.ndarray] = None,
) -> str:
    """Aligned text table of a confusion matrix.

    Args:
        confusion: (C, C) counts, rows = reference, cols = hypothesis.
        emotions: Class names.
        normalize: Show row fractions in percent instead of counts.
        missing_per_class: (C,) optional counts shown as a ``<missing>``
            column when any is non-zero.

    Returns:
        The table, one line per reference class after a header line.
    """
    conf = np.asarray(confusion)
    show_missing = missing_per_class is not None and int(np.sum(missing_per_class)) > 0
    cols = list(emotions) + (["<missing>"] if show_missing else [])
    if show_missing:
        assert missing_per_class is not None
        mat = np.concatenate([conf, np.asarray(missing_per_class).reshape(-1, 1)], axis=1)
    else:
        mat = conf
    if normalize:
        cells = [[f"{100.0 * v:.1f}" for v in row] for row in row_normalize(mat)]
    else:
        cells = [[str(int(v)) for v in row] for row in mat]
    corner = "ref \\ hyp"
    first_w = max(len(corner), *(len(e) for e in emotions))
    widths = [max(len(c), *(len(cells[i][j]) for i in range(len(emotions)))) for j, c in enumerate(cols)]
    lines = [corner.ljust(first_w) + "  " + "  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    for i, e in enumerate(emotions):
        lines.append(e.ljust(first_w) + "  " + "  ".join(cells[i][j].rjust(w) for j, w in enumerate(widths)))
    return "\n".join(lines) + "\n"


def plot_confusion_matrix(
    confusion: np.ndarray,
    emotions: Sequence[str],
    path: PathLike,
    normalize: bool = False,
    title: Optional[str] = None,
) -> None:
    """Save a confusion matrix as an annotated PNG (matplotlib, Agg backend).

    Args:
        confusion: (C, C) counts, rows = reference, cols = hypothesis.
        emotions: Class names.
        path: Output PNG, written atomically.
        normalize: Colour and annotate row fractions (percent, count in
            parentheses) instead of raw counts.
        title: Figure title.
    """
    # The Agg canvas is used directly (no pyplot): no global backend change.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    conf = np.asarray(confusion)
    if conf.shape != (len(emotions), len(emotions)):
        raise ValueError(f"confusion matrix of shape {conf.shape} for {len(emotions)} emotions")
    values = row_normalize(conf) if normalize else conf.astype(np.float64)
    n = len(emotions)
    size = 1.2 + 0.9 * n
    fig = Figure(figsize=(size + 1.2, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    vmax = 1.0 if normalize else max(1.0, float(values.max()))
    im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(emotions, rotation=45, ha="right")
    ax.set_yticklabels(emotions)
    ax.set_xlabel("hypothesis")
    ax.set_ylabel("reference")
    if title:
        ax.set_title(title)
    for i in range(n):
        for j in range(n):
            text = f"{100.0 * values[i, j]:.1f}%\n({int(conf[i, j])})" if normalize else str(int(conf[i, j]))
            color = "white" if values[i, j] > 0.6 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=9)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)


def format_emotion_report(scores: EmotionScores) -> str:
    """Text report: WA/UA/macro-F1, per-class table and confusion matrices."""

    def pct(v: Optional[float]) -> str:
        return "-" if v is None else f"{100.0 * v:.2f}"

    lines = [
        f"WA {pct(scores.wa)} % ({scores.n_correct} / {scores.n_utts})",
        f"UA {pct(scores.ua)} %",
        f"macro-F1 {pct(scores.macro_f1)} %",
        f"Scored {scores.n_utts} utterances, {scores.n_missing} without hypothesis.",
        "",
        "|emotion|ref|hyp|recall|precision|F1|",
        "|---|---|---|---|---|---|",
    ]
    rec, prec, f1 = scores.recall(), scores.precision(), scores.f1()
    for i, e in enumerate(scores.emotions):
        lines.append(
            f"|{e}|{int(scores.ref_counts[i])}|{int(scores.hyp_counts[i])}|"
            f"{pct(rec[e])}|{pct(prec[e])}|{pct(f1[e])}|"
        )
    lines += ["", "Confusion matrix (counts, rows = reference, columns = hypothesis):"]
    lines.append(format_confusion_matrix(scores.confusion, scores.emotions, False, scores.missing_per_class))
    lines.append("Confusion matrix (row percent):")
    lines.append(format_confusion_matrix(scores.confusion, scores.emotions, True, scores.missing_per_class))
    if scores.missing:
        lines.append("Utterances without hypothesis: " + " ".join(scores.missing))
    return "\n".join(lines).rstrip("\n") + "\n"
