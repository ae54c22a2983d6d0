"""Cross-validation summaries and side-by-side tables of ``scores.json`` files.

The inputs are ``scores.json`` mappings written by ``python -m ent.bin.score``
(see :mod:`ent.scoring.results` for their keys). From each, :func:`metrics_of`
takes these metrics (fractions; ``None`` when not scored):

======== =====================================================
WA       weighted accuracy (overall utterance emotion accuracy)
UA       unweighted accuracy (mean per-class recall)
F1       macro F1 over emotion classes
WER      word error rate (errors / reference words)
CER      character error rate
EDER     emotion diarization error rate (mean over utterances)
FrameAcc frame accuracy of emotion diarization
======== =====================================================

Across folds, :func:`mean_std` gives the **mean of the per-fold values** and
their **sample standard deviation** (``ddof = 1``; undefined for one fold),
as customary for IEMOCAP's leave-one-session-out protocol. :func:`pooled_metrics`
also gives the pooled values: WA/UA/F1 from the summed confusion matrices and
WER/CER from the summed error counts, i.e. the scores of all test utterances
of all folds taken as one test set.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ent.scoring.asr import ErrorCounts
from ent.scoring.emotion import EmotionScores
from ent.scoring.results import summary_values

#: Every metric name, in table order.
METRICS: Tuple[str, ...] = ("WA", "UA", "F1", "WER", "CER", "EDER", "FrameAcc")
#: Metrics of the utterance-level SER + ASR protocol (IEMOCAP).
CV_METRICS: Tuple[str, ...] = ("WA", "UA", "F1", "WER", "CER")
_HEADERS = {"F1": "macro-F1", "FrameAcc": "frame acc"}

Scores = Mapping[str, Any]


def _error_rate(counts: Mapping[str, Any]) -> Optional[float]:
    n = counts["n_ref"]
    errs = counts["substitutions"] + counts["deletions"] + counts["insertions"]
    return errs / n if n else None


def metrics_of(scores: Scores) -> Dict[str, Optional[float]]:
    """The metrics of one ``scores.json`` mapping (fractions, ``None`` if not scored)."""
    base = summary_values(scores)
    asr = scores.get("asr")
    dia = scores.get("diarization")
    return {
        "WA": base["WA"],
        "UA": base["UA"],
        "F1": base["F1"],
        "WER": base["WER"],
        "CER": _error_rate(asr["cer"]) if asr else None,
        "EDER": base["EDER"],
        "FrameAcc": dia["frame_accuracy"] if dia else None,
    }


def mean_std(values: Sequence[Optional[float]]) -> Tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation (``ddof=1``) of the defined values.

    Returns:
        ``(None, None)`` without values; the std is ``None`` for one value.
    """
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    mean = float(np.mean(vals))
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
    return mean, std


def pooled_metrics(scores_list: Sequence[Scores]) -> Dict[str, Optional[float]]:
    """WA/UA/F1 from summed confusion matrices and WER/CER from summed counts.

    Diarization metrics are not pooled (``None``). An emotion or ASR metric is
    ``None`` unless every input has it.

    Raises:
        ValueError: When the inputs disagree on the emotion classes.
    """
    out: Dict[str, Optional[float]] = {m: None for m in METRICS}
    emos = [s.get("emotion") for s in scores_list]
    if scores_list and all(e and "confusion" in e for e in emos):
        names = list(emos[0]["emotions"])
        if any(list(e["emotions"]) != names for e in emos):
            raise ValueError("the folds were scored with different emotion classes")
        confusion = sum(np.asarray(e["confusion"], dtype=np.int64) for e in emos)
        missing = sum(np.asarray(e.get("missing_per_class", [0] * len(names)), dtype=np.int64) for e in emos)
        pooled = EmotionScores(names, confusion, missing)
        out["WA"], out["UA"], out["F1"] = pooled.wa, pooled.ua, pooled.macro_f1
    asrs = [s.get("asr") for s in scores_list]
    if scores_list and all(asrs):
        for unit, key in (("wer", "WER"), ("cer", "CER")):
            total = ErrorCounts()
            for a in asrs:
                c = a[unit]
                total.add(ErrorCounts(c["n_sentences"], c["n_ref"], c["hits"], c["substitutions"],
                                      c["deletions"], c["insertions"]))
            out[key] = total.error_rate if total.n_ref else None
    return out


def _pct(value: Optional[float]) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def _pct_pm(mean: Optional[float], std: Optional[float]) -> str:
    if mean is None:
        return "-"
    return _pct(mean) + (f" ± {100 * std:.2f}" if std is not None else "")


def _n_utts(scores: Scores) -> str:
    for key in ("emotion", "diarization"):
        if scores.get(key):
            return str(scores[key]["n_utts"])
    if scores.get("asr"):
        return str(scores["asr"]["wer"]["n_sentences"])
    return "-"


def _header(metrics: Sequence[str]) -> List[str]:
    return [_HEADERS.get(m, m) for m in metrics]


def _row(cells: Sequence[str]) -> str:
    return "|" + "|".join(cells) + "|"


def format_fold_table(folds: Sequence[Tuple[str, Scores]], metrics: Sequence[str] = CV_METRICS) -> str:
    """Markdown table: one row per fold, then ``mean ± std`` and ``pooled`` rows (percent).

    Args:
        folds: ``(fold label, scores)`` pairs.
        metrics: Columns (names of :data:`METRICS`).
    """
    values = [metrics_of(s) for _, s in folds]
    lines = [_row(["fold", "Snt"] + _header(metrics)), _row(["---"] * (len(metrics) + 2))]
    for (label, scores), vals in zip(folds, values):
        lines.append(_row([label, _n_utts(scores)] + [_pct(vals[m]) for m in metrics]))
    stats = {m: mean_std([v[m] for v in values]) for m in metrics}
    label = f"mean ± std ({len(folds)} fold{'s' if len(folds) != 1 else ''})"
    lines.append(_row([label, ""] + [_pct_pm(*stats[m]) for m in metrics]))
    pooled = pooled_metrics([s for _, s in folds])
    total = sum(int(n) for n in (_n_utts(s) for _, s in folds) if n.isdigit())
    lines.append(_row(["pooled", str(total)] + [_pct(pooled[m]) for m in metrics]))
    return "\n".join(lines) + "\n"


def format_summary_table(
    models: Mapping[str, Sequence[Tuple[str, Scores]]], metrics: Sequence[str] = CV_METRICS
) -> str:
    """Markdown table: one row per model with ``mean ± std`` over its folds (percent)."""
    lines = [_row(["model", "folds"] + _header(metrics)), _row(["---"] * (len(metrics) + 2))]
    for model, folds in models.items():
        values = [metrics_of(s) for _, s in folds]
        cells = [_pct_pm(*mean_std([v[m] for v in values])) for m in metrics]
        lines.append(_row([model, str(len(folds))] + cells))
    return "\n".join(lines) + "\n"


def format_cv_results(
    models: Mapping[str, Sequence[Tuple[str, Scores]]],
    title: str,
    notes: Sequence[str] = (),
    metrics: Sequence[str] = CV_METRICS,
) -> str:
    """A complete ``RESULTS.md``: summary over models, then each model's fold table.

    Args:
        models: Model name -> ``(fold label, scores)`` pairs.
        title: The ``#`` title.
        notes: Lines printed as a bullet list under the title.
        metrics: Columns.
    """
    parts = [f"# {title}", ""]
    parts += [f"- {n}" for n in notes]
    if notes:
        parts.append("")
    summary = format_summary_table(models, metrics).rstrip("\n")
    parts += ["## Summary (mean ± sample std over folds, %)", "", summary, ""]
    for model, folds in models.items():
        parts += [f"## {model}", "", format_fold_table(folds, metrics).rstrip("\n"), ""]
    return "\n".join(parts)


def format_comparison(rows: Sequence[Tuple[str, Scores]], metrics: Sequence[str] = METRICS) -> str:
    """Markdown table: one row per labelled ``scores.json`` (percent), side by side."""
    lines = [_row(["model", "Snt"] + _header(metrics)), _row(["---"] * (len(metrics) + 2))]
    for label, scores in rows:
        vals = metrics_of(scores)
        lines.append(_row([label, _n_utts(scores)] + [_pct(vals[m]) for m in metrics]))
    return "\n".join(lines) + "\n"
