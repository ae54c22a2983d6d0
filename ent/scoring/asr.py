"""Word and character error rates of recognition results.

Definitions (corpus level, as ESPnet's sclite-based ``RESULTS.md``):

* Tokens: for WER the whitespace-separated words of the transcript; for CER
  the characters of the words joined by single spaces, the space itself
  being a token (ESPnet's ``<space>``). The scoring functions take an
  optional ``normalize`` callable (``str -> str``) applied to reference and
  hypothesis alike before tokenization; without it no other normalisation
  (case, punctuation) is applied. ``ent.bin.score`` passes the normalization
  of the model's token list
  (:class:`~ent.scoring.text_normalization.TextNormalization`).
* Every utterance is aligned on its own (Levenshtein, via ``jiwer``) and the
  counts are summed: ``N`` reference tokens, ``H`` hits (correct), ``S``
  substitutions, ``D`` deletions, ``I`` insertions, ``N = H + S + D``.
* ``error rate = (S + D + I) / N`` (total errors over total reference
  tokens, not an average of per-utterance rates); ``Corr = H / N``.
* A reference utterance without a hypothesis line counts as fully deleted
  (``D += N_utt``) and is reported in ``n_missing`` (and logged) rather than
  dropped. A hypothesis line holding the id only is an empty result (also
  fully deleted, but not "missing"). A hypothesis id absent from the
  reference is an error (:class:`~ent.utils.errors.DataError`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import jiwer

from ent.scoring import read_keyed_table
from ent.utils.errors import DataError

PathLike = Union[str, Path]
#: A transcript normalization applied before scoring (``str -> str``).
Normalizer = Callable[[str], str]

logger = logging.getLogger(__name__)


@dataclass
class ErrorCounts:
    """Summed alignment counts of a set of utterances.

    Attributes:
        n_sentences: Number of reference utterances (``Snt``).
        n_ref: Number of reference tokens (``Wrd``), ``hits + substitutions
            + deletions``.
        hits: Correct tokens.
        substitutions: Substituted tokens.
        deletions: Deleted reference tokens.
        insertions: Inserted hypothesis tokens.
        n_sentence_errors: Utterances with at least one error.
    """

    n_sentences: int = 0
    n_ref: int = 0
    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    n_sentence_errors: int = 0

    @property
    def errors(self) -> int:
        """``S + D + I``."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def error_rate(self) -> float:
        """``(S + D + I) / N``; ``inf`` if there are errors but no reference
        token, ``0`` if there is neither."""
        if self.n_ref == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.n_ref

    def add(self, other: "ErrorCounts") -> None:
        """Accumulate ``other`` into these counts."""
        self.n_sentences += other.n_sentences
        self.n_ref += other.n_ref
        self.hits += other.hits
        self.substitutions += other.substitutions
        self.deletions += other.deletions
        self.insertions += other.insertions
        self.n_sentence_errors += other.n_sentence_errors

    def to_dict(self) -> Dict[str, Any]:
        """Counts plus ``errors`` and ``error_rate`` (JSON-friendly)."""
        out: Dict[str, Any] = asdict(self)
        out["errors"] = self.errors
        out["error_rate"] = self.error_rate
        return out


@dataclass
class UttResult:
    """Alignment counts of one utterance for WER and CER.

    Attributes:
        utt: Utterance id.
        ref: Reference transcript (words joined by single spaces).
        hyp: Hypothesis transcript ("" when empty or missing).
        words: Word counts of this utterance.
        chars: Character counts of this utterance.
        missing: True when the hypothesis file had no line for it.
    """

    utt: str
    ref: str
    hyp: str
    words: ErrorCounts
    chars: ErrorCounts
    missing: bool = False


@dataclass
class AsrScores:
    """WER/CER of a test set.

    Attributes:
        wer: Word counts summed over utterances.
        cer: Character counts summed over utterances.
        missing: Reference utterances without a hypothesis line.
        utts: Per-utterance results in reference order.
    """

    wer: ErrorCounts
    cer: ErrorCounts
    missing: List[str] = field(default_factory=list)
    utts: List[UttResult] = field(default_factory=list)

    @property
    def n_missing(self) -> int:
        """Number of reference utterances without a hypothesis."""
        return len(self.missing)

    def to_dict(self) -> Dict[str, Any]:
        """Summary for ``scores.json`` (no per-utterance details)."""
        return {
            "wer": self.wer.to_dict(),
            "cer": self.cer.to_dict(),
            "n_missing": self.n_missing,
            "missing": list(self.missing),
        }


def _normalize(transcript: str, normalize: Optional[Normalizer] = None) -> str:
    """Apply ``normalize`` (if any), then collapse whitespace: the token sequence is ``transcript.split()``."""
    if normalize is not None:
        transcript = normalize(transcript)
    return " ".join(transcript.split())


def _counts_from_alignment(chunks: Sequence[Any], n_ref: int) -> ErrorCounts:
    """Turn jiwer alignment chunks of one utterance into :class:`ErrorCounts`."""
    out = ErrorCounts(n_sentences=1, n_ref=n_ref)
    for chunk in chunks:
        n_ref_span = chunk.ref_end_idx - chunk.ref_start_idx
        if chunk.type == "equal":
            out.hits += n_ref_span
        elif chunk.type == "substitute":
            out.substitutions += n_ref_span
        elif chunk.type == "delete":
            out.deletions += n_ref_span
        elif chunk.type == "insert":
            out.insertions += chunk.hyp_end_idx - chunk.hyp_start_idx
        else:  # pragma: no cover - jiwer has exactly these four types
            raise RuntimeError(f"unknown jiwer alignment type {chunk.type!r}")
    out.n_sentence_errors = int(out.errors > 0)
    if out.hits + out.substitutions + out.deletions != n_ref:  # pragma: no cover - sanity
        raise RuntimeError("inconsistent jiwer alignment")
    return out


def _align(refs: List[str], hyps: List[str], chars: bool) -> List[ErrorCounts]:
    """Per-utterance counts of normalised transcripts (word or char tokens)."""
    if chars:
        out = jiwer.process_characters(refs, hyps)
    else:
        out = jiwer.process_words(refs, hyps)
    return [
        _counts_from_alignment(chunks, len(ref_tokens))
        for chunks, ref_tokens in zip(out.alignments, out.references)
    ]


def word_error_counts(
    refs: Sequence[str], hyps: Sequence[str], normalize: Optional[Normalizer] = None
) -> ErrorCounts:
    """Corpus-level word counts of paired transcripts.

    Args:
        refs: Reference transcripts.
        hyps: Hypothesis transcripts (may be empty strings), same length.
        normalize: Applied to both sides first (default: none).
    """
    return _sum_counts(_align([_normalize(r, normalize) for r in refs], [_normalize(h, normalize) for h in hyps],
                              False))


def char_error_counts(
    refs: Sequence[str], hyps: Sequence[str], normalize: Optional[Normalizer] = None
) -> ErrorCounts:
    """Corpus-level character counts (spaces between words count); ``normalize`` as :func:`word_error_counts`."""
    return _sum_counts(_align([_normalize(r, normalize) for r in refs], [_normalize(h, normalize) for h in hyps],
                              True))


def _sum_counts(per_utt: Sequence[ErrorCounts]) -> ErrorCounts:
    total = ErrorCounts()
    for counts in per_utt:
        total.add(counts)
    return total


def score_transcripts(
    refs: Mapping[str, str], hyps: Mapping[str, str], normalize: Optional[Normalizer] = None
) -> AsrScores:
    """Score hypotheses against references, both keyed by utterance id.

    Args:
        refs: utt -> reference transcript (the test set; order kept).
        hyps: utt -> hypothesis transcript; every key must be in ``refs``.
            Reference utterances absent here count as fully deleted.
        normalize: Applied to every reference and hypothesis first (e.g. a
            :class:`~ent.scoring.text_normalization.TextNormalization`);
            default: whitespace is collapsed, nothing else. The per-utterance
            results hold the normalized texts.

    Raises:
        ValueError: If ``refs`` is empty or ``hyps`` has unknown ids (the
            file-reading :func:`score_text_files` raises DataError instead).
    """
    if not refs:
        raise ValueError("no reference utterances")
    unknown = [u for u in hyps if u not in refs]
    if unknown:
        raise ValueError(f"{len(unknown)} hypothesis ids are not in the reference, e.g. '{unknown[0]}'")
    utts = list(refs)
    ref_texts = [_normalize(refs[u], normalize) for u in utts]
    hyp_texts = [_normalize(hyps.get(u, ""), normalize) for u in utts]
    word_counts = _align(ref_texts, hyp_texts, chars=False)
    char_counts = _align(ref_texts, hyp_texts, chars=True)
    missing = [u for u in utts if u not in hyps]
    results = [
        UttResult(u, r, h, w, c, missing=u not in hyps)
        for u, r, h, w, c in zip(utts, ref_texts, hyp_texts, word_counts, char_counts)
    ]
    if missing:
        logger.warning(
            "%d of %d reference utterances have no hypothesis (counted as deletions), e.g. '%s'",
            len(missing), len(utts), missing[0],
        )
    return AsrScores(_sum_counts(word_counts), _sum_counts(char_counts), missing, results)


def score_text_files(ref_path: PathLike, hyp_path: PathLike, normalize: Optional[Normalizer] = None) -> AsrScores:
    """Score a hypothesis ``text`` file against a reference ``text`` file.

    Args:
        ref_path: Reference ``<utt> <transcript>`` (transcripts non-empty).
        hyp_path: Hypothesis ``<utt> [<transcript>]`` (a line may hold the
            id only: empty recognition result).
        normalize: See :func:`score_transcripts`.

    Raises:
        DataError: On malformed files, repeated ids, or a hypothesis id not
            in the reference (naming the hypothesis file and line).
    """
    refs = read_keyed_table(ref_path)
    hyps = read_keyed_table(hyp_path, allow_empty_value=True)
    for utt, entry in hyps.items():
        if utt not in refs:
            raise DataError(hyp_path, entry.lineno, f"utterance '{utt}' is not in the reference {ref_path}")
    return score_transcripts({u: e.value for u, e in refs.items()}, {u: e.value for u, e in hyps.items()}, normalize)


def _percent(num: int, den: int) -> str:
    return f"{100.0 * num / den:.1f}" if den else "-"


def format_counts_line(name: str, counts: ErrorCounts) -> str:
    """One summary line, e.g. ``%WER 12.50 [ 5 / 40, 1 ins, 2 del, 2 sub ]``
    (Kaldi ``compute-wer`` style)."""
    rate = counts.error_rate
    rate_str = f"{100.0 * rate:.2f}" if rate != float("inf") else "inf"
    return (
        f"%{name} {rate_str} [ {counts.errors} / {counts.n_ref}, {counts.insertions} ins, "
        f"{counts.deletions} del, {counts.substitutions} sub ]"
    )


def format_asr_report(scores: AsrScores, normalization: Optional[str] = None) -> str:
    """Text report: totals, sclite-like percentages and per-utterance errors.

    Utterances are listed with ``S D I`` word counts, reference and
    hypothesis, only when they have an error or a missing hypothesis.

    Args:
        scores: The scores.
        normalization: Description of the text normalization applied before
            scoring, reported after the totals (``None``: no line).
    """
    lines: List[str] = []
    for name, counts in (("WER", scores.wer), ("CER", scores.cer)):
        lines.append(format_counts_line(name, counts))
    lines.append(
        f"%SER {_percent(scores.wer.n_sentence_errors, scores.wer.n_sentences)} "
        f"[ {scores.wer.n_sentence_errors} / {scores.wer.n_sentences} ]"
    )
    lines.append(f"Scored {scores.wer.n_sentences} sentences, {scores.n_missing} without hypothesis.")
    if normalization is not None:
        lines.append(f"Text normalization: {normalization}")
    lines.append("")
    header = "|unit|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|"
    lines.append(header)
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for name, c in (("word", scores.wer), ("char", scores.cer)):
        lines.append(
            f"|{name}|{c.n_sentences}|{c.n_ref}|{_percent(c.hits, c.n_ref)}|"
            f"{_percent(c.substitutions, c.n_ref)}|{_percent(c.deletions, c.n_ref)}|"
            f"{_percent(c.insertions, c.n_ref)}|{_percent(c.errors, c.n_ref)}|"
            f"{_percent(c.n_sentence_errors, c.n_sentences)}|"
        )
    errs = [u for u in scores.utts if u.words.errors > 0 or u.missing]
    if errs:
        lines.append("")
        lines.append("Utterances with word errors (S D I):")
        for u in errs:
            tag = " (missing hypothesis)" if u.missing else ""
            lines.append(f"{u.utt} S={u.words.substitutions} D={u.words.deletions} I={u.words.insertions}{tag}")
            lines.append(f"  REF: {u.ref}")
            lines.append(f"  HYP: {u.hyp}")
    return "\n".join(lines) + "\n"
