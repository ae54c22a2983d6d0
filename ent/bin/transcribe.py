"""Emotion-annotated transcription of audio files.

Prints, for every file, the transcript with the utterance emotion, each word
with its start/end time and emotion, and the emotion timeline (merged runs of
frame emotions). Any audio format libsndfile reads is accepted; audio is
resampled to 16 kHz mono.

Example::

    ent-transcribe --model exp/ent/packed recording.wav
    ent-transcribe --model exp/ent/packed --json a.wav b.flac > result.jsonl

A file longer than ``--long-audio-max`` seconds (default 30) is decoded in
pieces cut at pauses and stitched back in the file's time
(:mod:`ent.decoding.long_audio`), so memory does not grow with the file.

With ``--streaming`` (a streaming model) each file is fed in pieces of
``--chunk-ms`` as a live source would deliver it, and what every piece makes
new is printed at once: the transcript so far, the words completed with their
times and emotions, and the emotions of the frames just decided; then the
complete result as above. ``--realtime`` paces the pieces at the speed of
the audio::

    ent-transcribe --model exp/ent_streaming/packed --streaming --chunk-ms 320 call.wav

Bad audio (missing, unreadable, empty, NaN or infinite samples) stops the run
with one line naming the file (the files before it are printed already).
``--skip-bad-audio`` goes on past such files instead: each gets one line on
stderr (with ``--json`` also an object ``{"file", "error"}`` on stdout), and
a count ends the run (exit status 0). A file that is digital silence (every
sample 0) gives empty text, neutral, with a warning; 8 kHz audio is upsampled
with a warning (:mod:`ent.data.audio`). JSON output is strict: a score that
is not a finite number is ``null``.

``--plot FILE`` also draws each file's emotion timeline as a PNG
(:func:`ent.scoring.timeline.plot_timeline`: waveform envelope, the frame
emotions as a coloured band, the words at their times). With one audio file
FILE is the picture (an existing directory receives ``<name>.png``); with
several, FILE is a directory (created if needed) receiving ``<name>.png`` for
each file, ``<name>`` being the audio file name without its suffix (two
files of the same name are refused)::

    ent-transcribe --model exp/ent/packed --plot call.png call.wav
    ent-transcribe --model exp/ent/packed --plot timelines/ a.wav b.flac
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np

from ent.utils.cli import setup_logging
from ent.utils.errors import DataError
from ent.utils.jsonio import dumps as json_dumps

if TYPE_CHECKING:
    from ent.decoding.streaming import PartialResult, StreamingSession
    from ent.decoding.writer import DecodeResult


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="ent-transcribe", description="Transcribe audio files with words, times and emotions.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("audio", nargs="+", help="audio files")
    parser.add_argument("--model", required=True, type=Path,
                        help="model dir: a packed model (ent.bin.pack_model) or a training dir")
    parser.add_argument("--model-file", default=None,
                        help="checkpoint in --model (default: model.pth if present, else valid.loss.ave.pth)")
    parser.add_argument("--search", choices=("greedy", "modified_beam_search"), default=None,
                        help="default: the packed decode.yaml's, else modified_beam_search")
    parser.add_argument("--beam", type=int, default=None, help="default: the packed decode.yaml's, else 4")
    parser.add_argument("--long-audio-max", type=float, default=None, metavar="SECONDS",
                        help="a file longer than this is decoded in pieces of at most this length, cut at pauses, "
                        "and stitched (memory bounded by the piece); with --streaming the longest segment; "
                        "0: never split; default: the packed decode.yaml's, else 30")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file instead of text "
                        "(with --streaming: one per update; the last one has \"final\": true and the "
                        "file's object as \"result\")")
    parser.add_argument("--streaming", action="store_true",
                        help="decode chunk by chunk and show partial results (streaming model; greedy search)")
    parser.add_argument("--chunk-ms", type=float, default=320.0,
                        help="--streaming: chunk duration (rounded to whole encoder frames) and audio piece size")
    parser.add_argument("--realtime", action="store_true",
                        help="--streaming: feed the pieces at the speed of the audio")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE",
                        help="draw the emotion timeline (waveform, frame emotions, words) as a PNG; with one "
                        "audio file FILE is the PNG (an existing directory gets <name>.png), with several FILE "
                        "is a directory (created) that gets <name>.png per audio file")
    parser.add_argument("--skip-bad-audio", "--skip_bad_audio", action="store_true",
                        help="go on past files whose audio is missing, unreadable, empty or not finite "
                        "(one line each on stderr, and a count at the end)")
    parser.add_argument("--verbose", action="store_true", help="show log messages")
    return parser


def plot_paths(target: Path, audio: Sequence[str]) -> List[Path]:
    """Where ``--plot`` draws each audio file's timeline (rule in the module docstring).

    Raises:
        DataError: If several files are given and ``target`` is an existing
            non-directory, or two files share a name.
    """
    if len(audio) == 1 and not target.is_dir():
        return [target]
    if target.exists() and not target.is_dir():
        raise DataError(target, None, f"--plot with {len(audio)} audio files needs a directory "
                        "(it receives one <name>.png per file)")
    seen: Dict[str, str] = {}
    out: List[Path] = []
    for path in audio:
        name = Path(path).stem + ".png"
        if name in seen:
            raise DataError(path, None, f"--plot: has the same name as {seen[name]} (both would be {target / name})")
        seen[name] = path
        out.append(target / name)
    return out


def plot_result(path: Path, audio_path: str, result: "DecodeResult", wave: np.ndarray,
                emotions: Sequence[str], sample_rate: int) -> None:
    """Draw one file's timeline: envelope, frame emotions and words (no reference).

    Args:
        path: Output PNG.
        audio_path: The audio file (in the title).
        result: Its decoding result.
        wave: (N,) samples that were decoded.
        emotions: The model's emotion classes (first = neutral).
        sample_rate: Sample rate of ``wave``.
    """
    from ent.scoring.timeline import plot_timeline

    title = f"{audio_path}: [{result.emotion}] {result.text}"
    plot_timeline(
        path, max(len(wave), 1) / sample_rate, emotions, hyp_frames=result.frame_emotions,
        frame_shift=result.frame_shift, words=[(w.text, w.start, w.end) for w in result.words],
        title=title if len(title) <= 120 else title[:119] + "…", wave=wave, sample_rate=sample_rate,
    )
    logging.info(f"wrote {path}")


def format_result(path: str, result: "DecodeResult") -> str:
    """Human-readable form of one file's result."""
    lines = [f"{path}: [{result.emotion}] {result.text}"]
    for w in result.words:
        lines.append(f"  {w.start:7.2f} {w.end:7.2f}  {w.emotion:<8s} {w.text}")
    timeline = _timeline(result)
    lines.append("  emotion timeline: " + ", ".join(f"{s:.2f}-{e:.2f} {emo}" for s, e, emo in timeline))
    return "\n".join(lines)


def _timeline(result: "DecodeResult") -> List[tuple]:
    """Runs of equal frame emotions as ``(start, end, emotion)``, neutral included."""
    return _runs(result.frame_emotions, 0, result.frame_shift)


def _runs(emotions: Sequence[str], first_frame: int, shift: float) -> List[tuple]:
    """Runs of equal emotions of frames ``first_frame, first_frame + 1, ...`` as ``(start, end, emotion)``."""
    runs: List[tuple] = []
    for i, emo in enumerate(emotions, start=first_frame):
        if runs and runs[-1][2] == emo:
            runs[-1] = (runs[-1][0], (i + 1) * shift, emo)
        else:
            runs.append((i * shift, (i + 1) * shift, emo))
    return runs


def format_update(update: "PartialResult") -> str:
    """One line for a streaming update: time, transcript so far, new words, new frame emotions."""
    text = update.text + ("…" if update.partial_word is not None else "")
    parts = [f"  {update.audio_seconds:6.2f}s  {text}"]
    if update.words:
        parts.append("words: " + ", ".join(
            f"{w.text} [{w.emotion} {w.start:.2f}-{w.end:.2f}]" for w in update.words))
    if update.frame_emotions:
        runs = _runs(update.frame_emotions, update.first_frame, update.frame_shift)
        parts.append("emotions: " + ", ".join(f"{s:.2f}-{e:.2f} {emo}" for s, e, emo in runs))
    return "  | ".join(parts)


def _result_json(path: str, result: "DecodeResult") -> dict:
    """The JSON object printed for one file's complete result."""
    return {"file": path, "text": result.text, "emotion": result.emotion,
            "words": [dataclasses.asdict(w) for w in result.words], "timeline": _timeline(result)}


def _update_json(path: str, update: "PartialResult") -> dict:
    """The JSON object printed for one streaming update (new tokens, words and frames)."""
    return {
        "file": path, "final": False, "audio_s": round(update.audio_seconds, 3), "text": update.text,
        "tokens": [{"piece": t.piece, "time": round(t.time, 3), "emotion": t.emotion} for t in update.tokens],
        "words": [dataclasses.asdict(w) for w in update.words],
        "partial_word": update.partial_word.text if update.partial_word is not None else None,
        "frames": {"first": update.first_frame, "frame_shift": update.frame_shift,
                   "emotions": update.frame_emotions},
    }


def _stream_file(
    session: "StreamingSession", path: str, wave: np.ndarray, args: argparse.Namespace, silent: bool = False,
) -> "DecodeResult":
    """Feed one file to a streaming session in pieces, printing each update and the result (returned).

    ``silent``: the file is digital silence; its final result is the empty neutral one.
    """
    session.reset(Path(path).stem)
    piece = max(1, int(round(args.chunk_ms / 1000.0 * session.sample_rate)))
    if not args.json:
        print(f"{path}: streaming in chunks of {session.chunk_size} encoder frames "
              f"({session.chunk_seconds * 1000:.0f} ms)", flush=True)
    start = time.monotonic()
    for i in range(0, len(wave), piece):
        if args.realtime:  # wait until this piece would have been recorded
            time.sleep(max(0.0, start + (i + piece) / session.sample_rate - time.monotonic()))
        update = session.accept(wave[i : i + piece])
        if update.is_empty:
            continue
        if args.json:
            print(json_dumps(_update_json(path, update), ensure_ascii=False), flush=True)
        else:
            print(format_update(update), flush=True)
    final = session.finalize()
    if final.result is None:  # finalize() always sets it
        raise RuntimeError("the streaming session gave no final result")
    if silent:
        from ent.decoding.writer import silent_result

        final.result = silent_result(final.result, session.emotions[session.model.neutral_id])
    if args.json:
        record = _update_json(path, final)
        record.update(final=True, result=_result_json(path, final.result))
        print(json_dumps(record, ensure_ascii=False), flush=True)
    else:
        if final.words or final.frame_emotions:
            print(format_update(final))
        print(format_result(path, final.result), flush=True)
    return final.result


def _report_skipped(path: str, exc: DataError, as_json: bool) -> None:
    """One line on stderr for a skipped file (and an error object on stdout with ``--json``)."""
    print(f"ent-transcribe: {exc} (skipped)", file=sys.stderr, flush=True)
    if as_json:
        print(json_dumps({"file": path, "error": str(exc)}, ensure_ascii=False), flush=True)


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``ent-transcribe``."""
    args = get_parser().parse_args(argv)
    setup_logging(logging.INFO if args.verbose else logging.WARNING)
    from ent.data.audio import TARGET_SAMPLE_RATE, is_digital_silence, load_audio
    from ent.decoding.recognizer import DecodeOptions, EmotionRecognizer
    from ent.decoding.streaming import StreamingSession
    from ent.decoding.writer import silent_result

    model_file = args.model_file
    if model_file is None:
        model_file = "model.pth" if (args.model / "model.pth").is_file() else "valid.loss.ave.pth"
    try:
        plots = plot_paths(args.plot, args.audio) if args.plot is not None else None
        packed = args.model / "decode.yaml"  # the recipe's decoding options (ent.bin.pack_model)
        overrides = {"search": args.search, "beam": args.beam, "batch_size": 1,
                     "long_audio_max": args.long_audio_max}
        if args.search == "greedy" or args.streaming:  # no LM outside beam search
            overrides.update(lm_weight=0.0, token_bonus=0.0)
        options = DecodeOptions.from_yaml(packed if packed.is_file() else None, overrides)
        recognizer = EmotionRecognizer.from_model_dir(args.model, model_file, options)
        session = None
        if args.streaming:
            try:
                session = StreamingSession(recognizer, chunk_ms=args.chunk_ms)
            except ValueError as exc:
                raise DataError(args.model / "config.yaml", None, str(exc)) from exc
        if plots is not None and len(plots) > 1:
            args.plot.mkdir(parents=True, exist_ok=True)
        failed: List[str] = []
        for k, path in enumerate(args.audio):
            try:
                wave = load_audio(path)
            except DataError as exc:
                if not args.skip_bad_audio:
                    raise
                _report_skipped(path, exc, args.json)
                failed.append(path)
                continue
            silent = is_digital_silence(wave)
            if silent:
                logging.warning(f"{path}: the audio is digital silence (every sample 0): empty text, neutral")
            if session is not None:
                result = _stream_file(session, path, wave, args, silent)
            else:
                if len(wave) < recognizer.min_samples:
                    wave = np.pad(wave, (0, recognizer.min_samples - len(wave)))
                (result,) = recognizer.decode([Path(path).stem], [wave])
                if silent:
                    model = recognizer.model
                    result = silent_result(result, model.emotions[model.neutral_id])
                if args.json:
                    print(json_dumps(_result_json(path, result), ensure_ascii=False))
                else:
                    print(format_result(path, result))
            if plots is not None:
                plot_result(plots[k], path, result, wave, recognizer.model.emotions, TARGET_SAMPLE_RATE)
        if failed:
            print(f"ent-transcribe: {len(failed)} of {len(args.audio)} files failed and were skipped: "
                  f"{', '.join(failed)}", file=sys.stderr)
    except DataError as exc:
        print(f"ent-transcribe: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
