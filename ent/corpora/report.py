"""What a corpus preparation read, kept and dropped, and why.

A :class:`PrepReport` is filled while a corpus is parsed and written next to
the prepared data directories (``*.txt`` for people, ``*.json`` for tools).
It keeps apart four kinds of events:

* **ignored lines**: lines skipped by design (annotator lines of an
  evaluation file, comment headers, blank lines, transcription lines of ids
  that are not utterances); counted per reason.
* **unparseable lines**: lines that match no known form. In strict mode the
  first one is a :class:`~ent.utils.errors.DataError` naming ``file:line``;
  otherwise they are counted and the first few are listed.
* **dropped utterances**: utterances left out of the output (a label outside
  the protocol, missing audio, no transcription, ...); counted per reason
  with a few example ids.
* **notes**: facts worth knowing that drop nothing (a transcription without
  a label, audio that will be resampled on load, ...).

Kept utterances are counted per output set and per emotion.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ent.utils.errors import DataError, format_location
from ent.utils.fileio import atomic_write

PathLike = Union[str, Path]

logger = logging.getLogger(__name__)

#: How many examples are kept per reason.
MAX_EXAMPLES = 5


@dataclass
class PrepReport:
    """Counts of a corpus preparation (see the module docstring).

    Attributes:
        corpus: Corpus name shown in the report title.
        strict: Unparseable lines raise instead of being counted.
        files_read: Annotation files read.
        lines_read: Lines (or JSON entries) read.
        ignored: Reason -> number of lines skipped by design.
        unparseable: Number of unparseable lines.
        unparseable_examples: ``file:line: message`` of the first ones.
        dropped: Reason -> number of utterances dropped.
        notes: Reason -> count of events that drop nothing.
        examples: Reason (of ``dropped`` or ``notes``) -> first example ids.
        kept_per_set: Output set -> number of utterances kept.
        kept_per_emotion: Emotion -> number of utterances kept.
    """

    corpus: str
    strict: bool = False
    files_read: int = 0
    lines_read: int = 0
    ignored: Counter = field(default_factory=Counter)
    unparseable: int = 0
    unparseable_examples: List[str] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    examples: Dict[str, List[str]] = field(default_factory=dict)
    kept_per_set: Counter = field(default_factory=Counter)
    kept_per_emotion: Counter = field(default_factory=Counter)

    # ---------------------------------------------------------------- events
    def ignore(self, reason: str) -> None:
        """Count a line skipped by design."""
        self.ignored[reason] += 1

    def bad_line(self, path: PathLike, lineno: Optional[int], message: str) -> None:
        """Record an unparseable line (or entry).

        Raises:
            DataError: In strict mode, naming ``path:lineno``.
        """
        if self.strict:
            raise DataError(path, lineno, message)
        self.unparseable += 1
        if len(self.unparseable_examples) < MAX_EXAMPLES:
            self.unparseable_examples.append(format_location(path, lineno, message))

    def drop(self, reason: str, example: str) -> None:
        """Count an utterance left out of the output."""
        self.dropped[reason] += 1
        self._example(reason, example)

    def note(self, reason: str, example: Optional[str] = None) -> None:
        """Count an event that drops nothing."""
        self.notes[reason] += 1
        if example is not None:
            self._example(reason, example)

    def keep(self, set_name: str, emotion: str) -> None:
        """Count a kept utterance."""
        self.kept_per_set[set_name] += 1
        self.kept_per_emotion[emotion] += 1

    def _example(self, reason: str, example: str) -> None:
        ex = self.examples.setdefault(reason, [])
        if len(ex) < MAX_EXAMPLES:
            ex.append(example)

    # --------------------------------------------------------------- queries
    @property
    def kept(self) -> int:
        """Number of utterances kept."""
        return sum(self.kept_per_set.values())

    @property
    def num_dropped(self) -> int:
        """Number of utterances dropped."""
        return sum(self.dropped.values())

    def check_not_empty(self, where: PathLike) -> None:
        """Raise when nothing was kept.

        Raises:
            DataError: Naming ``where`` and the main drop reasons.
        """
        if self.kept:
            return
        reasons = ", ".join(f"{r}: {n}" for r, n in self.dropped.most_common(4)) or "nothing found"
        raise DataError(where, None, f"no {self.corpus} utterance kept ({reasons}; "
                        f"{self.unparseable} unparseable lines)")

    # ---------------------------------------------------------------- output
    def format(self) -> str:
        """Human-readable multi-line report."""
        lines = [f"{self.corpus} preparation report",
                 f"  files read: {self.files_read}, lines read: {self.lines_read}"]
        per_set = ", ".join(f"{k}: {v}" for k, v in sorted(self.kept_per_set.items()))
        lines.append(f"  kept: {self.kept} utterances" + (f" ({per_set})" if per_set else ""))
        if self.kept_per_emotion:
            lines.append("  kept per emotion: "
                         + ", ".join(f"{k} {v}" for k, v in self.kept_per_emotion.most_common()))
        lines.append(f"  dropped: {self.num_dropped} utterances")
        lines += self._counter_lines(self.dropped)
        lines.append(f"  unparseable lines: {self.unparseable}")
        lines += [f"    {ex}" for ex in self.unparseable_examples]
        if self.ignored:
            lines.append("  lines ignored by design: "
                         + ", ".join(f"{k} {v}" for k, v in sorted(self.ignored.items())))
        if self.notes:
            lines.append("  notes:")
            lines += self._counter_lines(self.notes)
        return "\n".join(lines) + "\n"

    def _counter_lines(self, counter: Counter) -> List[str]:
        out = []
        for reason, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])):
            ex = self.examples.get(reason)
            out.append(f"    {reason}: {n}" + (f" (e.g. {', '.join(ex)})" if ex else ""))
        return out

    def emit(self) -> None:
        """Print :meth:`format` to stdout and warn when unparseable lines were skipped."""
        sys.stdout.write(self.format())
        sys.stdout.flush()
        if self.unparseable:
            logger.warning("%d unparseable lines or entries were skipped (see the report; strict mode "
                           "stops at the first)", self.unparseable)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly content."""
        return {
            "corpus": self.corpus,
            "strict": self.strict,
            "files_read": self.files_read,
            "lines_read": self.lines_read,
            "kept": self.kept,
            "kept_per_set": dict(sorted(self.kept_per_set.items())),
            "kept_per_emotion": dict(sorted(self.kept_per_emotion.items())),
            "dropped": dict(sorted(self.dropped.items())),
            "unparseable": self.unparseable,
            "unparseable_examples": list(self.unparseable_examples),
            "ignored": dict(sorted(self.ignored.items())),
            "notes": dict(sorted(self.notes.items())),
            "examples": {k: list(v) for k, v in sorted(self.examples.items())},
        }

    def write(self, stem: PathLike) -> None:
        """Write ``<stem>.txt`` (:meth:`format`) and ``<stem>.json`` (:meth:`to_dict`)."""
        stem = Path(stem)
        with atomic_write(stem.with_name(stem.name + ".txt")) as fh:
            fh.write(self.format())
        with atomic_write(stem.with_name(stem.name + ".json")) as fh:
            json.dump(self.to_dict(), fh, indent=2, ensure_ascii=False, allow_nan=False)
            fh.write("\n")
