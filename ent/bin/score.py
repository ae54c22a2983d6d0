"""Score recognition, emotion and emotion diarization outputs against a data directory.

Usage::

    python -m ent.bin.score --ref-dir data/test --hyp-dir exp/x/decode_test \\
        [--emotions neutral,happy,angry,sad] [--diarization [--plot-utts 8]] \\
        [--token-dir DIR | --no-normalize] \\
        [--results RESULTS.md --exp-name NAME --dataset test [--config conf/train.yaml]] \\
        [--out-dir DIR]
    python -m ent.bin.score --print-summary RESULTS.md [--dataset test]

What is scored depends on the files present:

===============================  ======================================  ==========================
reference (``--ref-dir``)        hypothesis (``--hyp-dir``)              writes (``--out-dir``)
===============================  ======================================  ==========================
``text``                         ``text``                                ``score_asr.txt``
``utt2emo``                      ``utt2emo``                             ``score_emotion.txt``,
                                                                         ``confusion.png``
``emo_segments`` + ``utt2dur``   ``frame_emotions`` or ``emo_segments``  ``score_diarization.txt``,
or ``wav.scp`` (``segments``)    (+ ``result.jsonl`` for the words)      ``timeline/<utt>.png``
(with ``--diarization``)
===============================  ======================================  ==========================

**Text normalization.** Reference and hypothesis transcripts are normalized
alike before WER/CER, with the options of the model's token list (case,
apostrophes, bracketed tags, protected user symbols; see
:mod:`ent.text.normalize`), so that ``SAY THE WORD "BITE", [NOISE] PLEASE.``
scores against ``say the word bite please`` as the model was trained. They
come from ``--token-dir``, else the ``text_normalization.json`` that
``ent.bin.inference`` writes into the decoding directory, else the token dir
of a model config one or two levels above ``--hyp-dir``, else
:func:`~ent.text.normalize.normalize_text`'s defaults (with a warning); see
:mod:`ent.scoring.text_normalization`. The choice is logged, stated in
``score_asr.txt`` and stored in ``scores.json`` (``asr.text_normalization``);
``--no-normalize`` scores the texts as they are.

**Diarization.** ``frame_emotions`` lines are ``<utt> <frame_shift_s> <emo_0>
<emo_1> ...``: one emotion name per encoder frame, frame ``i`` covering
``[i * frame_shift_s, (i + 1) * frame_shift_s)`` seconds; it is preferred over a
hypothesis ``emo_segments`` when both exist. The utterances and their
durations are those of the reference ``utt2dur``; without one, of ``segments``
(``end - start``) or else of the ``wav.scp`` recordings, from the audio file
headers (:func:`~ent.scoring.diarization.durations_from_audio`). The first
``--plot-utts`` utterances (sorted ids) get a timeline picture
(:mod:`ent.scoring.timeline`): reference and hypothesis emotion bands, the
words of ``result.jsonl`` at their times, and with ``--plot-wave`` the
waveform envelope.

All scores also go to ``scores.json``; ``--results`` records them in an
ESPnet-style ``RESULTS.md``, under a header naming the model dir, the training
config (``--config``) and the git revision of the ENT checkout that scored
(``git describe --always --dirty``; left out when it is not a git checkout). See :mod:`ent.scoring` for the exact metric
definitions.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ent.data.emotions import DEFAULT_EMOTIONS, parse_emotion_list
from ent.scoring.asr import format_asr_report, score_text_files
from ent.scoring.diarization import (
    FRAME_SHIFT,
    DiarizationScores,
    FrameLabels,
    Interval,
    durations_from_audio,
    format_diarization_report,
    interval_labelled,
    read_emo_segments,
    read_frame_emotions,
    read_utt2dur,
    score_diarization,
)
from ent.scoring.emotion import format_emotion_report, plot_confusion_matrix, read_utt2emo, score_utt2emo_files
from ent.scoring.results import (
    ExperimentInfo,
    format_summary_table,
    git_revision,
    read_results,
    summary_rows,
    update_results,
)
from ent.scoring.text_normalization import find_normalization
from ent.scoring.timeline import TimedWord, plot_timeline
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write
from ent.utils.jsonio import dump as json_dump

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
                        help="also score emotion diarization (needs ref emo_segments, and utt2dur or the audio "
                        "of wav.scp (+ segments) for the durations; hyp frame_emotions or emo_segments)")
    parser.add_argument("--frame-shift", type=float, default=FRAME_SHIFT,
                        help="frame grid (s) of the diarization frame accuracy (ZED: 0.02)")
    parser.add_argument("--plot-utts", type=int, default=8, metavar="N",
                        help="with --diarization: timeline PNGs of the first N utterances (sorted ids) in "
                        "<out-dir>/timeline/ (0: none)")
    parser.add_argument("--plot-wave", action="store_true",
                        help="draw the waveform envelope in the timeline PNGs (reads the utterances' audio)")
    norm = parser.add_mutually_exclusive_group()
    norm.add_argument("--token-dir", type=Path, default=None,
                      help="normalize transcripts as this token list's config.yaml says (default: the "
                      "text_normalization.json of --hyp-dir, else the model config above it, else the "
                      "toolkit defaults)")
    norm.add_argument("--no-normalize", action="store_true",
                      help="score the transcripts as they are (only whitespace is collapsed)")
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
    parser.add_argument("--config", default=None, help="training config of the model, shown in --results")
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
    token_dir: Optional[Path] = None,
    normalize_text: bool = True,
    plot_utts: int = 0,
    plot_wave: bool = False,
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
        token_dir: Token dir whose text normalization applies (default:
            :func:`~ent.scoring.text_normalization.find_normalization`).
        normalize_text: Normalize transcripts before WER/CER (false: score
            them as they are).
        plot_utts: With ``diarization``, timeline PNGs of this many
            utterances (first sorted ids) in ``out_dir/timeline``.
        plot_wave: Draw the waveform envelope in them (reads the audio).

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
        if normalize_text:
            norm = find_normalization(hyp_dir, token_dir)
            asr = score_text_files(ref_dir / "text", hyp_dir / "text", norm)
            description, record = norm.describe(), norm.to_dict()
        else:
            logger.info("--no-normalize: scoring the transcripts as they are")
            asr = score_text_files(ref_dir / "text", hyp_dir / "text")
            description, record = "none (--no-normalize)", None
        _write(out_dir / "score_asr.txt", format_asr_report(asr, description))
        scores["asr"] = asr.to_dict()
        scores["asr"]["text_normalization"] = record
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
        if (ref_dir / "utt2dur").is_file():
            utt2dur, durations_from = read_utt2dur(ref_dir / "utt2dur"), "utt2dur"
        else:
            utt2dur = durations_from_audio(ref_dir)
            durations_from = "segments" if (ref_dir / "segments").is_file() else "audio"
            logger.info("no %s: durations of %d utterances from %s", ref_dir / "utt2dur", len(utt2dur),
                        f"{ref_dir / 'segments'} (and the audio headers of wav.scp for open ends)"
                        if durations_from == "segments" else f"the audio headers of {ref_dir / 'wav.scp'}")
        ref_segs = read_emo_segments(ref_dir / "emo_segments", emotions, utt2dur)
        utt2emo = read_utt2emo(ref_dir / "utt2emo", emotions) if (ref_dir / "utt2emo").is_file() else {}
        durations = utt2dur
        utt2dur, left_out = interval_labelled(durations, ref_segs, utt2emo, emotions[0])
        if left_out:
            logger.info("diarization: %d utterances of %s have an emotional utt2emo label and no emo_segments "
                        "lines (utterance-labelled, e.g. '%s'): left out, %d scored",
                        len(left_out), ref_dir, left_out[0], len(utt2dur))
        if not utt2dur:
            raise DataError(ref_dir / "emo_segments", None, "no utterance with known emotion intervals to score")
        frames_path, segs_path = hyp_dir / "frame_emotions", hyp_dir / "emo_segments"
        hyp_frames: Optional[Dict[str, FrameLabels]] = None
        hyp_segs: Optional[Dict[str, List[Interval]]] = None
        if frames_path.is_file():
            if segs_path.is_file():
                logger.info("both %s and %s exist: scoring frame_emotions", frames_path, segs_path)
            hyp_frames = {u: f for u, f in read_frame_emotions(frames_path, emotions).items() if u not in left_out}
            dia = score_diarization(
                ref_segs, utt2dur, hyp_frames=hyp_frames,
                background=emotions[0], frame_shift=frame_shift, hyp_path=frames_path,
            )
        elif segs_path.is_file():
            hyp_segs = {u: v for u, v in read_emo_segments(segs_path, emotions, durations).items()
                        if u not in left_out}
            dia = score_diarization(
                ref_segs, utt2dur, hyp_segments=hyp_segs,
                background=emotions[0], frame_shift=frame_shift, hyp_path=segs_path,
            )
        else:
            raise DataError(hyp_dir, None, "--diarization needs frame_emotions or emo_segments here")
        _write(out_dir / "score_diarization.txt", format_diarization_report(dia))
        scores["diarization"] = dia.to_dict()
        scores["diarization"]["durations_from"] = durations_from
        scores["diarization"]["n_left_out"] = len(left_out)
        if plot_utts > 0:
            plots = plot_timelines(
                out_dir / "timeline", sorted(utt2dur)[:plot_utts], utt2dur, emotions, ref_segs, dia,
                hyp_frames=hyp_frames, hyp_segments=hyp_segs, words=read_result_words(hyp_dir / "result.jsonl"),
                ref_dir=ref_dir if plot_wave else None,
            )
            scores["diarization"]["timelines"] = [str(p.relative_to(out_dir)) for p in plots]

    if not any(k in scores for k in ("asr", "emotion", "diarization")):
        raise DataError(hyp_dir, None, f"nothing to score against {ref_dir} (no text or utt2emo in both)")
    with atomic_write(out_dir / "scores.json") as fh:
        json_dump(scores, fh, indent=2, ensure_ascii=False)  # NaN -> null
        fh.write("\n")
    logger.info("wrote %s", out_dir / "scores.json")
    return scores


def read_result_words(path: Path) -> Optional[Dict[str, List[TimedWord]]]:
    """The words with times of every utterance of a ``result.jsonl`` (format: :mod:`ent.decoding.writer`).

    Returns:
        utt -> words, or ``None`` when the file does not exist.

    Raises:
        DataError: On a line that is not a JSON object with ``utt`` and a
            list of ``words`` holding ``word``, ``start`` and ``end``.
    """
    if not path.is_file():
        logger.info("no %s: timelines without words", path)
        return None
    out: Dict[str, List[TimedWord]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                words = [TimedWord(str(w["word"]), float(w["start"]), float(w["end"])) for w in record["words"]]
                out[str(record["utt"])] = words
            except json.JSONDecodeError as exc:
                raise DataError(path, lineno, f"not valid JSON: {exc.msg}") from None
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(path, lineno, "expected an object with 'utt' and 'words' (each with 'word', "
                                f"'start', 'end'): {type(exc).__name__} {exc}") from None
    return out


def _png_name(utt: str) -> str:
    """A file name for an utterance id (characters other than letters, digits, ``.``, ``_``, ``-`` become ``_``)."""
    return re.sub(r"[^\w.\-]", "_", utt) + ".png"


def plot_timelines(
    out_dir: Path,
    utts: Sequence[str],
    utt2dur: Mapping[str, float],
    emotions: Sequence[str],
    ref_segments: Mapping[str, Sequence[Interval]],
    scores: DiarizationScores,
    hyp_frames: Optional[Mapping[str, FrameLabels]] = None,
    hyp_segments: Optional[Mapping[str, Sequence[Interval]]] = None,
    words: Optional[Mapping[str, Sequence[TimedWord]]] = None,
    ref_dir: Optional[Path] = None,
) -> List[Path]:
    """Draw ``<out_dir>/<utt>.png`` timelines (:func:`~ent.scoring.timeline.plot_timeline`).

    PNGs of earlier runs that are not redrawn are removed, so the folder
    shows exactly this scoring's sample.

    Args:
        out_dir: The ``timeline`` folder.
        utts: Utterances to draw.
        utt2dur: Their durations (s).
        emotions: Emotion classes (first = neutral).
        ref_segments: utt -> reference emotional intervals.
        scores: The diarization scores (EDER in the titles).
        hyp_frames: utt -> frame emotions of the hypothesis, or
        hyp_segments: utt -> hypothesis emotional intervals.
        words: utt -> hypothesis words with times (optional).
        ref_dir: Reference data dir whose audio gives the waveform envelope
            (``None``: no envelope).

    Returns:
        The written PNG paths.
    """
    eder = {u.utt: u for u in scores.utts}
    data = None
    if ref_dir is not None:
        from ent.data.datadir import DataDir

        data = DataDir.load(ref_dir, require=("wav.scp",), allow_empty_text=True)
    written: List[Path] = []
    for utt in utts:
        result = eder.get(utt)
        title = f"{utt}   EDER {100.0 * result.eder:.1f} %" if result is not None else utt
        frames = hyp_frames.get(utt) if hyp_frames is not None else None
        if hyp_frames is not None and frames is None:
            title += "   (no hypothesis)"
        path = out_dir / _png_name(utt)
        plot_timeline(
            path, utt2dur[utt], emotions,
            ref_intervals=[tuple(iv) for iv in ref_segments.get(utt, [])],
            hyp_frames=frames.labels if frames is not None else None,
            frame_shift=frames.frame_shift if frames is not None else None,
            hyp_intervals=[tuple(iv) for iv in hyp_segments.get(utt, [])] if hyp_segments is not None else None,
            words=list(words.get(utt, [])) if words is not None else (),
            title=title,
            wave=data.load_audio(utt) if data is not None else None,
        )
        written.append(path)
    keep = {p.name for p in written}
    for old in out_dir.glob("*.png"):
        if old.name not in keep:
            old.unlink()
    logger.info("wrote %d timeline pictures in %s", len(written), out_dir)
    return written


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
        recall = d.get("frame_recall", {})
        lines.append(
            f"diarization: EDER {100 * d['eder']:.2f} %  frame acc {100 * d['frame_accuracy']:.2f} %  "
            + "".join(f"{k} recall {100 * recall[k]:.1f} %  " for k in ("neutral", "emotional") if k in recall)
            + f"({d['n_utts']} utts" + (f", {d['n_missing']} missing)" if d["n_missing"] else ")")
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
        if args.plot_utts < 0:
            parser.error("--plot-utts must be >= 0")
        scores = score_dirs(
            args.ref_dir, args.hyp_dir, out_dir, emotions, args.diarization, args.frame_shift,
            args.normalize_confusion, token_dir=args.token_dir, normalize_text=not args.no_normalize,
            plot_utts=args.plot_utts, plot_wave=args.plot_wave,
        )
        sys.stdout.write(format_scores(scores))
        if args.results is not None:
            model_dir = args.model_dir or str(args.hyp_dir.parent)
            exp_name = args.exp_name or args.hyp_dir.resolve().parent.name
            dataset = args.dataset or args.ref_dir.resolve().name
            info = ExperimentInfo(exp_name, model_dir=model_dir, config=args.config, revision=git_revision())
            update_results(args.results, info, dataset, scores)
            logger.info("updated %s (experiment %s, dataset %s)", args.results, exp_name, dataset)
    except DataError as exc:
        logger.error("%s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
