"""Combining (and subsetting) Kaldi-style data directories.

:func:`combine_data_dirs` writes the union of several data directories into a
new one, optionally keeping only the utterances of chosen speakers. Lines are
copied verbatim (no number is re-formatted); every table is re-sorted in
C-locale order and ``spk2utt`` is regenerated from ``utt2spk``.

Unlike Kaldi's ``combine_data.sh``, which drops a file that some sources lack,
inconsistencies are errors: an utterance id in two sources, a recording id
with two different paths, or a per-utterance file (``utt2dur``,
``segments``, ...) present in some sources but not in others.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ent.data.datadir import OPTIONAL_FILES, REQUIRED_FILES
from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write, read_table, write_table

PathLike = Union[str, Path]

logger = logging.getLogger(__name__)

#: Files keyed by utterance id with one line per utterance.
_UTT_FILES: Tuple[str, ...] = ("text", "utt2spk", "utt2emo", "utt2dur", "segments")
#: Every file :func:`combine_data_dirs` writes (``spk2utt`` is derived).
COMBINED_FILES: Tuple[str, ...] = REQUIRED_FILES + OPTIONAL_FILES + ("spk2utt",)


def spk2utt_table(utt2spk: Mapping[str, str]) -> Dict[str, str]:
    """``spk2utt`` entries (speaker -> space-separated sorted utterance ids)."""
    by_spk: Dict[str, List[str]] = defaultdict(list)
    for utt in sorted(utt2spk):
        by_spk[utt2spk[utt]].append(utt)
    return {spk: " ".join(utts) for spk, utts in by_spk.items()}


def combine_data_dirs(
    srcs: Sequence[PathLike],
    dst: PathLike,
    keep_speaker: Optional[Callable[[str], bool]] = None,
) -> int:
    """Write the union of data directories (optionally a speaker subset) to ``dst``.

    Args:
        srcs: Source data directories (at least one); ``dst`` must not be
            among them.
        dst: Output directory (created; table files of an earlier run that
            the sources do not provide are removed).
        keep_speaker: Keep only utterances whose speaker passes this test
            (``None``: keep all).

    Returns:
        The number of utterances written.

    Raises:
        DataError: On a missing source or required file, a malformed line,
            an utterance id in two sources, a recording id with two paths, a
            per-utterance file present in only some sources, or when no
            utterance is left.
    """
    if not srcs:
        raise ValueError("combine_data_dirs needs at least one source")
    dst = Path(dst)
    src_paths = [Path(s) for s in srcs]
    if any(s.resolve() == dst.resolve() for s in src_paths if s.exists()):
        raise ValueError(f"{dst} is also a source")
    for src in src_paths:
        if not src.is_dir():
            raise DataError(src, None, "data directory not found")
        for name in REQUIRED_FILES:
            if not (src / name).is_file():
                raise DataError(src / name, None, "required file not found")
    present = {name: [s for s in src_paths if (s / name).is_file()] for name in _UTT_FILES + ("emo_segments",)}
    for name in _UTT_FILES:
        have = present[name]
        if have and len(have) != len(src_paths):
            lacking = next(s for s in src_paths if s not in have)
            raise DataError(lacking / name, None, f"not found, but {have[0] / name} exists: cannot combine")

    tables: Dict[str, Dict[str, str]] = {name: {} for name in _UTT_FILES + ("wav.scp",)}
    origin: Dict[str, Tuple[Path, int]] = {}  # utt -> (file, line) of its text entry
    emo_lines: Dict[str, List[str]] = defaultdict(list)
    for src in src_paths:
        for name in ("wav.scp",) + _UTT_FILES:
            if not (src / name).is_file():
                continue
            for e in read_table(src / name):
                table = tables[name]
                if name == "text":
                    if e.key in origin:
                        first = origin[e.key]
                        raise DataError(src / name, e.lineno,
                                        f"utterance '{e.key}' also in {first[0]}:{first[1]}")
                    origin[e.key] = (src / name, e.lineno)
                elif e.key in table and table[e.key] != e.value:
                    raise DataError(src / name, e.lineno, f"'{e.key}' appears twice with different values")
                table[e.key] = e.value
        if (src / "emo_segments").is_file():
            for e in read_table(src / "emo_segments"):
                emo_lines[e.key].append(e.value)

    utt2spk = tables["utt2spk"]
    missing = sorted(u for u in tables["text"] if u not in utt2spk)
    if missing:
        raise DataError(src_paths[0] / "utt2spk", None, f"no speaker for '{missing[0]}' ({len(missing)} such)")
    kept = sorted(u for u in tables["text"] if keep_speaker is None or keep_speaker(utt2spk[u]))
    if not kept:
        raise DataError(dst, None, f"no utterance left after combining {len(src_paths)} data dirs")
    kept_set = set(kept)

    recordings: Set[str]
    if tables["segments"]:
        recordings = {tables["segments"][u].split()[0] for u in kept if u in tables["segments"]}
    else:
        recordings = kept_set
    lost = sorted(recordings - tables["wav.scp"].keys())
    if lost:
        raise DataError(src_paths[0] / "wav.scp", None,
                        f"recording '{lost[0]}' is in no source's wav.scp ({len(lost)} such)")
    dst.mkdir(parents=True, exist_ok=True)
    write_table(dst / "wav.scp", {r: p for r, p in tables["wav.scp"].items() if r in recordings})
    written = {"wav.scp", "spk2utt"}
    for name in _UTT_FILES:
        if present[name]:
            write_table(dst / name, {u: v for u, v in tables[name].items() if u in kept_set})
            written.add(name)
    if present["emo_segments"]:
        with atomic_write(dst / "emo_segments") as fh:
            for utt in kept:
                for value in emo_lines.get(utt, []):
                    fh.write(f"{utt} {value}\n")
        written.add("emo_segments")
    write_table(dst / "spk2utt", spk2utt_table({u: utt2spk[u] for u in kept}))
    for name in COMBINED_FILES:
        if name not in written and (dst / name).is_file():
            (dst / name).unlink()
    logger.info("wrote %s: %d utterances from %d data dirs", dst, len(kept), len(src_paths))
    return len(kept)
