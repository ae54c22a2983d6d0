"""Normalization of transcripts into training targets.

:func:`normalize_text` applies these rules, in this order:

====  ======================================  =========================================
step  rule                                    example
====  ======================================  =========================================
1     Unicode NFKC (compatibility forms,      ``"ﬁne ２"`` → ``"fine 2"``
      full-width characters, ligatures)
2     typographic apostrophes (’ ‘ ʼ ` ´)     ``"don’t"`` → ``"don't"``
      become ``'``
3     bracketed non-speech tags are removed   ``"yes [laughter] <noise> ok"`` →
      with their content (``[...]``,           ``"yes ok"``
      ``<...>``, ``{...}``; when
      ``remove_tags``)
4     case mapping: ``lower``, ``upper`` or   ``"Hello"`` → ``"hello"``
      ``keep`` (then NFKC again)
5     an apostrophe is kept only between two  ``"'tis rock'n'roll'"`` →
      letters or digits (``keep_apostrophe``); ``"tis rock'n'roll"``
      without ``keep_apostrophe`` in-word
      apostrophes are deleted (the word
      stays joined)                           ``"don't"`` → ``"dont"``
6     every other punctuation (Unicode        ``"well-known, right?"`` →
      categories P*) and symbol (S*)          ``"well known right"``
      character, and control/format
      characters (C*), become a space
7     whitespace runs collapse to one space,  ``"  a \\t b "`` → ``"a b"``
      leading/trailing whitespace goes
====  ======================================  =========================================

Letters, digits and combining marks are kept as they are. ``keep`` lists
symbols (for example sentencepiece user-defined symbols such as ``<noise>``)
that are protected from steps 3-6 and survive verbatim as separate words.

The function is idempotent: normalizing a normalized text returns it
unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from typing import List, Sequence

CASES = ("lower", "upper", "keep")

_APOSTROPHES = {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"}
_APOSTROPHE_TABLE = str.maketrans(_APOSTROPHES)
_TAG_RE = re.compile(r"\[[^\[\]]*\]|<[^<>]*>|\{[^{}]*\}")
_SPACE_RE = re.compile(r"\s+")


def _is_word_char(ch: str) -> bool:
    """Letters, digits and combining marks."""
    return unicodedata.category(ch)[0] in ("L", "N", "M")


def _apply_case(text: str, case: str) -> str:
    if case == "lower":
        return unicodedata.normalize("NFKC", text.lower())
    if case == "upper":
        return unicodedata.normalize("NFKC", text.upper())
    return text


def _clean_chunk(text: str, case: str, keep_apostrophe: bool, remove_tags: bool) -> str:
    """Steps 2-6 on a piece of text that holds no protected symbol."""
    text = text.translate(_APOSTROPHE_TABLE)
    if remove_tags:
        text = _TAG_RE.sub(" ", text)
    text = _apply_case(text, case)
    out: List[str] = []
    n = len(text)
    for i, ch in enumerate(text):
        if ch == "'":
            inside = 0 < i < n - 1 and _is_word_char(text[i - 1]) and _is_word_char(text[i + 1])
            if inside:
                if keep_apostrophe:
                    out.append(ch)
                # else: delete, the word stays joined
            else:
                out.append(" ")
            continue
        major = unicodedata.category(ch)[0]
        if major in ("P", "S", "C", "Z"):
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def normalize_text(
    text: str,
    case: str = "lower",
    keep_apostrophe: bool = True,
    remove_tags: bool = True,
    keep: Sequence[str] = (),
) -> str:
    """Normalize a transcript into a training target (rules in the module docstring).

    Args:
        text: Raw transcript.
        case: ``"lower"``, ``"upper"`` or ``"keep"``.
        keep_apostrophe: Keep apostrophes inside words (``don't``); when
            false they are deleted (``dont``).
        remove_tags: Remove bracketed non-speech tags such as ``[laughter]``
            and ``<noise>`` with their content.
        keep: Symbols kept verbatim as separate words (e.g. ``<noise>`` when it
            is a user-defined token); they are not removed as tags.

    Returns:
        The normalized text: words separated by single spaces, possibly empty.

    Raises:
        ValueError: If ``case`` is not one of ``lower``, ``upper``, ``keep``.
    """
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}, not {case!r}")
    text = unicodedata.normalize("NFKC", text)
    protected = [unicodedata.normalize("NFKC", s) for s in keep if s]
    if protected:
        pattern = "(" + "|".join(re.escape(s) for s in sorted(protected, key=len, reverse=True)) + ")"
        parts = re.split(pattern, text)
    else:
        parts = [text]
    pieces: List[str] = []
    for idx, part in enumerate(parts):
        if idx % 2 == 1:  # a protected symbol (re.split keeps the captured separators)
            pieces.append(f" {part} ")
        else:
            pieces.append(_clean_chunk(part, case, keep_apostrophe, remove_tags))
    return _SPACE_RE.sub(" ", "".join(pieces)).strip()
