"""Score recognition, emotion and emotion diarization outputs against a data directory.

Usage::

    python -m ent.bin.score --ref-dir data/test --hyp-dir exp/x/decode_test \\
        [--emotions neutral,happy,angry,sad] [--diarization] \\
        [--results RESULTS.md --exp-name NAME --dataset test] [--out-dir DIR]
    python -m ent.bin.score --print-summary RESULTS.md [--dataset test]

What is scored depends on the files present:

==============================  ====================================  =====================
reference (``--ref-dir``)       hypothesis (``--hyp-dir``)            writes (``--out-dir``)
==============================  ====================================  =====================
``text``                        ``text``                              ``score_asr.txt``
``utt2emo``                     ``utt2emo``                           ``score_emotion.txt``,
                                                                      ``confusion.png``
``emo_segments`` + ``utt2dur``  ``frame_emotions`` or ``emo_segments``  ``score_diarization.txt``
(with ``--diarization``)
==============================  ====================================  =====================

``frame_emotions`` lines are ``<utt> <frame_shift_s> <emo_0> <emo_1> ...``:
one emotion name per encoder frame, frame ``i`` covering
``[i * frame_shift_s, (i + 1) * frame_shift_s)`` seconds; it is preferred over a
hypothesis ``emo_segments`` when both exist. All scores also go to
``scores.json``; ``--results`` records them in an ESPnet-style ``RESULTS.md``.
See :mod:`ent.scoring` for the exact metric definitions.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from ent.data.emotions import DEFAULT_EMOTIONS, parse_emotion_list
from ent.scoring.asr import format_asr_report, score_text_files
from ent.scoring.diarization import (
    FRAME_SHIFT,
    format_diarization_report,
    read_emo_segments,
    read_frame_emotions,
    read_utt2dur,
    score_diarization,
)
from ent.scoring.emotion import format_emotion_report, plot_confusion_matrix, score_utt2emo_files
from ent.scoring.results import (
    ExperimentInfo,
    format_summary_table,
    read_results,
    summary_rows,
    update_results,
)
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write

logger = logging.getLogger("ent.bin.score")


def get_parser() -> argparse.ArgumentParser:
    """Command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.score",
        description="Score ASR (WER/CER), utterance emotion (WA/UA/macro-F1, confusion matrix) and "
        "emotion diarization (EDER, frame accuracy) of a decoding directory against a reference "
        "data directory. Only what both directories provide is scored.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--ref-dir", type=Path, help="reference data directory (text, utt2emo, "
                        "emo_segments, utt2dur)")
    parser.add_argument("--hyp-dir", type=Path, help="decoding directory (text, utt2emo, "
                        "frame_emotions or emo_segments)")
    parser.add_argument("--out-dir", type=Path, default=None, help="where score files go (default: --hyp-dir)")
    parser.add_argument("--emotions", default=",".join(DEFAULT_EMOTIONS),
                        help="comma-separated emotion classes; the first is the no-emotion (neutral) class")
    parser.add_argument("--diarization", action="store_true",
                        help="also score emotion diarization (needs ref emo_segments + utt2dur and hyp "
                        "frame_emotions or emo_segments)")
    parser.add_argument("--frame-shift", type=float, default=FRAME_SHIFT,
                        help="frame grid (s) of the diarization frame accuracy (ZED: 0.02)")
    parser.add_argument("--normalize-confusion", action="store_true",
                        help="colour confusion.png by row-normalised fractions instead of counts")
    parser.add_argument("--results", type=Path, default=None, help="RESULTS.md to create/update")
    parser.add_argument("--exp-name", default=None,
                        help="experiment (section) name in --results (default: parent of --hyp-dir)")
    parser.add_argument("--dataset", default=None,
                        help="dataset row label (default: name of --ref-dir); with --print-summary, "
                        "the dataset to show (default: all)")
    parser.add_argument("--model-dir", default=None, help="model dir shown in --results (default: parent of "
                        "--hyp-dir)")
    parser.add_argument("--config", default=None, help="training config shown in --results")
    parser.add_argument("--print-summary", type=Path, default=None, metavar="RESULTS_MD",
                        help="only print the experiment x (WER, UA, WA, F1, EDER) table of this RESULTS.md")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def _write(path: Path, text: str) -> None:
    with atomic_write(path) as fh:
        fh.write(text)
    logger.info("wrote %s", path)


def score_dirs(
    ref_dir: Path,
    hyp_dir: Path,
    out_dir: Path,
    emotions: List[str],
    diarization: bool = False,
    frame_shift: float = FRAME_SHIFT,
    normalize_confusion: bool = False,
) -> Dict[str, Any]:
    """Score everything available and write the report files.

    Args:
        ref_dir: Reference data directory.
        hyp_dir: Decoding directory.
        out_dir: Output directory.
        emotions: Emotion classes (first = neutral).
        diarization: Score emotion diarization.
        frame_shift: Frame-accuracy grid in seconds.
        normalize_confusion: Row-normalised ``confusion.png``.

    Returns:
        The ``scores.json`` content.

    Raises:
        DataError: On bad input files, when nothing can be scored, or when
            diarization is requested but its files are missing.
    """
    if not ref_dir.is_dir():
        raise DataError(ref_dir, None, "reference directory not found")
    if not hyp_dir.is_dir():
        raise DataError(hyp_dir, None, "hypothesis directory not found")
    scores: Dict[str, Any] = {"ref_dir": str(ref_dir), "hyp_dir": str(hyp_dir)}

    if (ref_dir / "text").is_file() and (hyp_dir / "text").is_file():
        asr = score_text_files(ref_dir / "text", hyp_dir / "text")
        _write(out_dir / "score_asr.txt", format_asr_report(asr))
        scores["asr"] = asr.to_dict()
    else:
        logger.info("no text in both %s and %s: ASR not scored", ref_dir, hyp_dir)

    if (ref_dir / "utt2emo").is_file() and (hyp_dir / "utt2emo").is_file():
        emo = score_utt2emo_files(ref_dir / "utt2emo", hyp_dir / "utt2emo", emotions)
        _write(out_dir / "score_emotion.txt", format_emotion_report(emo))
        plot_confusion_matrix(
            emo.confusion, emotions, out_dir / "confusion.png", normalize=normalize_confusion,
            title=f"WA {100 * emo.wa:.1f}%  UA {100 * emo.ua:.1f}%",
        )
        logger.info("wrote %s", out_dir / "confusion.png")
        scores["emotion"] = emo.to_dict()
    else:
        logger.info("no utt2emo in both %s and %s: emotion not scored", ref_dir, hyp_dir)

    if diarization:
        utt2dur = read_utt2dur(ref_dir / "utt2dur")
        ref_segs = read_emo_segments(ref_dir / "emo_segments", emotions, utt2dur)
        frames_path, segs_path = hyp_dir / "frame_emotions", hyp_dir / "emo_segments"
        if frames_path.is_file():
            if segs_path.is_file():
                logger.info("both %s and %s exist: scoring frame_emotions", frames_path, segs_path)
            dia = score_diarization(
                ref_segs, utt2dur, hyp_frames=read_frame_emotions(frames_path, emotions),
                background=emotions[0], frame_shift=frame_shift, hyp_path=frames_path,
            )
        elif segs_path.is_file():
            dia = score_diarization(
                ref_segs, utt2dur, hyp_segments=read_emo_segments(segs_path, emotions, utt2dur),
                background=emotions[0], frame_shift=frame_shift, hyp_path=segs_path,
            )
        else:
            raise DataError(hyp_dir, None, "--diarization needs frame_emotions or emo_segments here")
        _write(out_dir / "score_diarization.txt", format_diarization_report(dia))
        scores["diarization"] = dia.to_dict()

    if not any(k in scores for k in ("asr", "emotion", "diarization")):
        raise DataError(hyp_dir, None, f"nothing to score against {ref_dir} (no text or utt2emo in both)")
    with atomic_write(out_dir / "scores.json") as fh:
        json.dump(scores, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    logger.info("wrote %s", out_dir / "scores.json")
    return scores


def format_scores(scores: Dict[str, Any]) -> str:
    """Short human-readable summary of a ``scores.json`` mapping."""
    lines = []
    if "asr" in scores:
        w, c = scores["asr"]["wer"], scores["asr"]["cer"]
        lines.append(
            f"WER {100 * w['error_rate']:.2f} % [{w['errors']} / {w['n_ref']}: {w['substitutions']} sub, "
            f"{w['deletions']} del, {w['insertions']} ins]  CER {100 * c['error_rate']:.2f} %"
            + (f"  ({scores['asr']['n_missing']} missing hypotheses)" if scores["asr"]["n_missing"] else "")
        )
    if "emotion" in scores:
        e = scores["emotion"]
        lines.append(
            f"emotion: WA {100 * e['wa']:.2f} %  UA {100 * e['ua']:.2f} %  macro-F1 {100 * e['macro_f1']:.2f} % "
            f"({e['n_utts']} utts" + (f", {e['n_missing']} missing)" if e["n_missing"] else ")")
        )
    if "diarization" in scores:
        d = scores["diarization"]
        lines.append(
            f"diarization: EDER {100 * d['eder']:.2f} %  frame acc {100 * d['frame_accuracy']:.2f} % "
            f"({d['n_utts']} utts" + (f", {d['n_missing']} missing)" if d["n_missing"] else ")")
        )
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.score``."""
    parser = get_parser()
    args = parser.parse_args(argv)
    setup_logging(getattr(logging, args.log_level))
    try:
        if args.print_summary is not None:
            records = read_results(args.print_summary)
            sys.stdout.write(format_summary_table(summary_rows(records, args.dataset)))
            return
        if args.ref_dir is None or args.hyp_dir is None:
            parser.error("--ref-dir and --hyp-dir are required (unless --print-summary)")
        try:
            emotions = parse_emotion_list(args.emotions)
        except ValueError as exc:
            parser.error(f"--emotions: {exc}")
        out_dir = args.out_dir if args.out_dir is not None else args.hyp_dir
        scores = score_dirs(
            args.ref_dir, args.hyp_dir, out_dir, emotions, args.diarization, args.frame_shift,
            args.normalize_confusion,
        )
        sys.stdout.write(format_scores(scores))
        if args.results is not None:
            model_dir = args.model_dir or str(args.hyp_dir.parent)
            exp_name = args.exp_name or args.hyp_dir.resolve().parent.name
            dataset = args.dataset or args.ref_dir.resolve().name
            info = ExperimentInfo(exp_name, model_dir=model_dir, config=args.config)
            update_results(args.results, info, dataset, scores)
            logger.info("updated %s (experiment %s, dataset %s)", args.results, exp_name, dataset)
    except DataError as exc:
        logger.error("%s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
