"""Decode a data directory with a trained ENT/FENT model.

Writes into ``--out-dir``: ``text``, ``utt2emo``, ``frame_emotions`` (one
emotion per encoder frame), ``emo_segments`` (merged non-neutral frames),
``token`` and ``result.jsonl`` (words with start/end times and emotions),
and ``text_normalization.json``: the text normalization of the model's token
list, with which ``ent.bin.score`` normalizes references and hypotheses.
Files appear complete or not at all.

Example::

    python -m ent.bin.inference --model-dir exp/ent --config conf/decode.yaml \\
        --data-dir data/test --out-dir exp/ent/decode/test

A streaming model (``encoder_conf: {dynamic_chunk_training: true}``) can also
be decoded as a stream: ``--streaming`` feeds each utterance to a
:class:`~ent.decoding.streaming.StreamingSession` in pieces of ``--chunk-ms``
(features, encoder and greedy search truly chunk by chunk);
``--simulate-streaming`` encodes whole utterances with chunk attention masks
(batched, any search). With greedy search both give the same outputs.

Bad audio (missing, unreadable, empty, NaN or infinite samples) stops the
decoding with one line naming the ``wav.scp`` line; the utterances decoded
before it are kept in ``<out-dir>/incomplete/`` (see
:mod:`ent.decoding.writer`). With ``--skip-bad-audio`` such utterances are
left out instead: each is logged, listed with the reason in
``<out-dir>/failed``, and counted at the end; the rest is written as usual.
Audio that is digital silence (every sample 0) is decoded as empty text,
neutral, with a warning. Two decodings into one ``--out-dir`` at the same
time are refused (the second one stops with one line).

A model trained with per-speaker CMVN (``speaker_cmvn: true``) is decoded
with the statistics of each speaker (``utt2spk``) of ``--data-dir``, computed
from the set's audio and cached in ``<data-dir>/spk_cmvn.npz``.

An utterance longer than ``long_audio_max`` seconds (decoding config or
``--long-audio-max``; default 30) is decoded in pieces cut at pauses, one
after the other, and stitched back in its own time (:mod:`ent.decoding.long_audio`);
with ``--streaming`` the session ends a segment at the same places.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import numpy as np
import torch
from tqdm import tqdm

from ent.decoding.recognizer import SEARCHES, DecodeOptions, EmotionRecognizer
from ent.decoding.streaming import StreamingSession, check_streaming_model, chunk_frames, decode_stream
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError

if TYPE_CHECKING:
    from ent.data.datadir import DataDir
    from ent.decoding.writer import DecodeResult, DecodeWriter


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.inference",
        description="Decode a Kaldi-style data dir: transcripts, word times, and emotions "
        "per utterance, word and frame.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model-dir", required=True, help="training output dir (config.yaml + checkpoints)")
    parser.add_argument("--model-file", default="valid.loss.ave.pth", help="checkpoint in --model-dir")
    parser.add_argument("--data-dir", required=True, help="data dir to decode (wav.scp, optional segments)")
    parser.add_argument("--out-dir", required=True, help="where the decoding files are written")
    parser.add_argument("--config", default=None, help="decoding options YAML (conf/decode.yaml)")
    parser.add_argument("--search", choices=SEARCHES, default=None, help="overrides the config")
    parser.add_argument("--beam", type=int, default=None, help="overrides the config")
    parser.add_argument("--batch-size", type=int, default=None, help="overrides the config")
    parser.add_argument("--utt-emotion-from", choices=("head", "lattice"), default=None,
                        help="overrides the config")
    parser.add_argument("--frame-switch-penalty", type=float, default=None,
                        help="smooth the frame emotions (Viterbi; nats per change of emotion, 0: off); "
                        "overrides the config")
    parser.add_argument("--frame-emotion-pause", type=float, default=None,
                        help="frame emotions by pieces: cut utterances at pauses of at least this many seconds "
                        "and take the frame emotions of each piece decoded on its own (0: off); overrides the config")
    parser.add_argument("--long-audio-max", type=float, default=None, metavar="SECONDS",
                        help="utterances longer than this are decoded in pieces cut at pauses and stitched "
                        "(ent.decoding.long_audio; 0: never split); overrides the config's long_audio_max")
    parser.add_argument("--lm", default=None,
                        help="token n-gram LM (ARPA, ent.bin.train_lm) for modified beam search; "
                        "default: lm.arpa of a packed --model-dir, if any (used when lm_weight > 0)")
    parser.add_argument("--lm-weight", type=float, default=None, help="overrides the config's lm_weight")
    parser.add_argument("--token-bonus", type=float, default=None, help="overrides the config's token_bonus")
    stream = parser.add_mutually_exclusive_group()
    stream.add_argument("--streaming", action="store_true",
                        help="decode each utterance chunk by chunk (streaming model; greedy search)")
    stream.add_argument("--simulate-streaming", action="store_true",
                        help="decode whole utterances with chunk attention masks (streaming model)")
    parser.add_argument("--chunk-ms", type=float, default=320.0,
                        help="streaming chunk duration, rounded to whole encoder frames")
    parser.add_argument("--num-left-chunks", type=int, default=None,
                        help="streaming: earlier chunks a chunk attends to (0: all; default: the model's)")
    parser.add_argument("--skip-bad-audio", "--skip_bad_audio", action="store_true",
                        help="leave out utterances whose audio is missing, unreadable, empty or not finite "
                        "(listed in <out-dir>/failed) instead of stopping")
    parser.add_argument("--ngpu", type=int, default=0, help="0: CPU, 1: the first GPU")
    parser.add_argument("--num-threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.inference``."""
    setup_logging()
    args = get_parser().parse_args(argv)
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    try:
        run(args)
    except DataError as exc:
        logging.error(str(exc))
        sys.exit(1)


def run(args: argparse.Namespace) -> None:
    """Decode ``args.data_dir`` into ``args.out_dir``."""
    from ent.decoding.writer import DecodeWriter

    with DecodeWriter(args.out_dir) as writer:  # locks the output dir first
        _run(args, writer)


def _run(args: argparse.Namespace, writer: "DecodeWriter") -> None:
    """Decode ``args.data_dir`` into ``writer``."""
    from ent.data.datadir import DataDir
    from ent.scoring.text_normalization import write_normalization_record

    options = DecodeOptions.from_yaml(args.config, {
        "search": args.search, "beam": args.beam, "batch_size": args.batch_size,
        "utt_emotion_from": args.utt_emotion_from,
        "frame_switch_penalty": args.frame_switch_penalty,
        "lm_weight": args.lm_weight, "token_bonus": args.token_bonus,
        "frame_emotion_pause": args.frame_emotion_pause, "long_audio_max": args.long_audio_max,
    })
    device = "cuda" if args.ngpu > 0 else "cpu"
    try:
        recognizer = EmotionRecognizer.from_model_dir(args.model_dir, args.model_file, options, device,
                                                      lm_file=args.lm)
    except DataError:
        raise
    except ValueError as exc:  # e.g. lm_weight > 0 without an LM: name the decoding config
        raise DataError(args.config, None, str(exc)) from exc
    chunk_size = None
    if args.streaming and options.frame_switch_penalty > 0:
        logging.warning("--streaming: frame emotions are not smoothed (frame_switch_penalty needs the whole "
                        "utterance); each frame keeps its own decision")
    if args.streaming and options.frame_emotion_pause > 0:
        logging.warning("--streaming: frame emotions are not taken by pieces (frame_emotion_pause needs the whole "
                        "utterance)")
    if args.streaming or args.simulate_streaming:
        try:
            check_streaming_model(recognizer.model)
            chunk_size = chunk_frames(args.chunk_ms, recognizer.model.frame_shift)
        except ValueError as exc:
            raise DataError(Path(args.model_dir) / "config.yaml", None, str(exc)) from exc
        mode = "streaming" if args.streaming else "simulated streaming"
        logging.info(f"{mode}: chunks of {chunk_size} encoder frames "
                     f"({chunk_size * recognizer.model.frame_shift * 1000:.0f} ms)")
        if args.streaming and options.search != "greedy":
            logging.warning(f"--streaming decodes with greedy search (the config asks for {options.search})")
    data = DataDir.load(args.data_dir, require=("wav.scp",), allow_empty_text=True)
    utt_ids = data.utt_ids if data.text else sorted(data.wav_scp)
    # Sort by length so that batches hold similar lengths (less padding).
    lengths = {u: _duration(data, u) for u in utt_ids}
    order = sorted(utt_ids, key=lambda u: (-lengths[u], u))
    stats = None
    total = len(order)
    if recognizer.speaker_cmvn:
        if args.skip_bad_audio:  # the statistics read every utterance: leave the bad ones out first
            order = [u for u in order if _load_or_skip(data, u, writer) is not None]
        logging.info(f"the model uses per-speaker CMVN: statistics of every speaker of {args.data_dir}")
        stats = recognizer.speaker_stats(data, order)
    logging.info(f"decoding {len(order)} utterances of {args.data_dir} with {options}")
    neutral = recognizer.model.emotions[recognizer.model.neutral_id]
    with tqdm(total=len(order), unit="utt", file=sys.stderr) as bar:
        if args.streaming:
            session = StreamingSession(recognizer, chunk_ms=args.chunk_ms, num_left_chunks=args.num_left_chunks)
            piece = max(1, int(round(args.chunk_ms / 1000.0 * session.sample_rate)))
            for utt in order:
                wave = _load_or_skip(data, utt, writer, args.skip_bad_audio)
                if wave is not None:
                    result, _ = decode_stream(session, _pad_short(wave, recognizer.min_samples), piece, utt_id=utt,
                                              speaker_cmvn=None if stats is None else stats[utt])
                    writer.add(_unless_silent(result, wave, data, neutral))
                bar.update(1)
        else:
            num_tokens = num_frames = 0
            for start in range(0, len(order), options.batch_size):
                loaded = {u: _load_or_skip(data, u, writer, args.skip_bad_audio)
                          for u in order[start : start + options.batch_size]}
                chunk = [u for u, w in loaded.items() if w is not None]
                if chunk:
                    waves = [_pad_short(loaded[u], recognizer.min_samples) for u in chunk]
                    cmvn = None if stats is None else [stats[u] for u in chunk]
                    for result in recognizer.decode(chunk, waves, chunk_size, args.num_left_chunks, cmvn):
                        writer.add(_unless_silent(result, loaded[result.utt], data, neutral))
                        num_tokens += len(result.tokens)
                        num_frames += len(result.frame_emotions)
                bar.update(len(loaded))
            _warn_if_dense(options, num_tokens, num_frames)
    failed = writer.failed
    if failed:
        if len(writer) == 0:
            raise DataError(Path(args.data_dir) / "wav.scp", None,
                            f"the audio of all {total} utterances is bad (first: {min(failed)}: {failed[min(failed)]})")
        logging.warning(f"{len(failed)} of {total} utterances failed and are left out (--skip-bad-audio); "
                        f"they are listed in {Path(args.out_dir) / 'failed'}")
    # The tokenizer's model lies in its token dir (Tokenizer.from_dir).
    write_normalization_record(args.out_dir, Path(recognizer.tokenizer.model_path).parent)
    logging.info(f"wrote {args.out_dir}")


DENSE_TOKENS_PER_FRAME = 0.5
"""Above this mean rate, one symbol per frame is likely to drop tokens."""


def _warn_if_dense(options: DecodeOptions, num_tokens: int, num_frames: int) -> None:
    """Warn when beam search with one symbol per frame decodes dense output."""
    if options.search != "modified_beam_search" or options.max_symbols_per_frame > 1 or num_frames == 0:
        return
    rate = num_tokens / num_frames
    if rate > DENSE_TOKENS_PER_FRAME:
        logging.warning(
            f"modified_beam_search with max_symbols_per_frame 1 emits at most one token per encoder frame "
            f"and this model emits {rate:.2f} per frame on average, so fast stretches lose tokens "
            "(deletions); allow more (max_symbols_per_frame: 2 or 3) or use larger token units"
        )


def _duration(data: "DataDir", utt: str) -> float:
    if data.utt2dur is not None and utt in data.utt2dur:
        return data.utt2dur[utt]
    if data.segments is not None:
        seg = data.segments[utt]
        return seg.end - seg.start
    return 0.0


def _load_or_skip(data: "DataDir", utt: str, writer: "DecodeWriter", skip: bool = True) -> Optional[np.ndarray]:
    """An utterance's audio; with ``skip``, None for bad audio (recorded as a failure in ``writer``).

    Raises:
        DataError: On bad audio (naming the ``wav.scp`` line) without ``skip``.
    """
    try:
        return data.load_audio(utt)
    except DataError as exc:
        if not skip:
            raise
        logging.warning(f"skipping '{utt}': {exc}")
        writer.add_failure(utt, str(exc))
        return None


def _unless_silent(result: "DecodeResult", wave: np.ndarray, data: "DataDir", neutral: str) -> "DecodeResult":
    """``result``, or the empty neutral result when ``wave`` is digital silence (with a warning)."""
    from ent.data.audio import is_digital_silence
    from ent.decoding.writer import silent_result

    if not is_digital_silence(wave):
        return result
    rec = data.segments[result.utt].recording if data.segments is not None else result.utt
    where = DataError(data.path / "wav.scp", data.lines.get("wav.scp", {}).get(rec),
                      f"warning: the audio of '{result.utt}' is digital silence (every sample 0): "
                      "written as empty text, neutral")
    logging.warning(str(where))
    return silent_result(result, neutral)


def _pad_short(wave: np.ndarray, min_samples: int) -> np.ndarray:
    """Pad a waveform too short for the encoder with trailing silence."""
    if len(wave) >= min_samples:
        return wave
    return np.pad(wave, (0, min_samples - len(wave)))


if __name__ == "__main__":
    main()
