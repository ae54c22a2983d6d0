"""Emotion-annotated transcription of audio files.

Prints, for every file, the transcript with the utterance emotion, each word
with its start/end time and emotion, and the emotion timeline (merged runs of
frame emotions). Any audio format libsndfile reads is accepted; audio is
resampled to 16 kHz mono.

Example::

    ent-transcribe --model exp/ent/packed recording.wav
    ent-transcribe --model exp/ent/packed --json a.wav b.flac > result.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import numpy as np

from ent.utils.cli import setup_logging
from ent.utils.errors import DataError

if TYPE_CHECKING:
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
    parser.add_argument("--search", choices=("greedy", "modified_beam_search"), default="modified_beam_search")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print one JSON object per file instead of text")
    parser.add_argument("--verbose", action="store_true", help="show log messages")
    return parser


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
    runs: List[tuple] = []
    shift = result.frame_shift
    for i, emo in enumerate(result.frame_emotions):
        if runs and runs[-1][2] == emo:
            runs[-1] = (runs[-1][0], (i + 1) * shift, emo)
        else:
            runs.append((i * shift, (i + 1) * shift, emo))
    return runs


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``ent-transcribe``."""
    args = get_parser().parse_args(argv)
    setup_logging(logging.INFO if args.verbose else logging.WARNING)
    from ent.data.audio import load_audio
    from ent.decoding.recognizer import DecodeOptions, EmotionRecognizer

    model_file = args.model_file
    if model_file is None:
        model_file = "model.pth" if (args.model / "model.pth").is_file() else "valid.loss.ave.pth"
    try:
        options = DecodeOptions(search=args.search, beam=args.beam, batch_size=1)
        recognizer = EmotionRecognizer.from_model_dir(args.model, model_file, options)
        for path in args.audio:
            wave = load_audio(path)
            if len(wave) < recognizer.min_samples:
                wave = np.pad(wave, (0, recognizer.min_samples - len(wave)))
            (result,) = recognizer.decode([Path(path).stem], [wave])
            if args.json:
                print(json.dumps({"file": path, "text": result.text, "emotion": result.emotion,
                                  "words": [dataclasses.asdict(w) for w in result.words],
                                  "timeline": _timeline(result)}, ensure_ascii=False))
            else:
                print(format_result(path, result))
    except DataError as exc:
        print(f"ent-transcribe: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
