"""Benchmark of the fbank frontend in training: ``kaldi.fbank`` per utterance against ENT's Fbank.

One batch like a ``mini_emo`` training batch (``--batch`` utterances of 1.5
to 4 s of noise) goes through the frontend in training mode, and every
configuration is timed in the same run (median of ``--repeats`` passes, one
CPU thread):

* ``kaldi.fbank`` per utterance (torchaudio's Kaldi-compatible fbank, with the
  ``vtln_warp`` of the utterance): the baseline, what the frontend called
  before it computed the spectrum itself;
* ``Fbank``: power spectrum, the mel filterbank of the warp factor (computed
  once per factor, factors on a grid of 0.001), log.

Each row gives the time per batch and its ratio to the baseline of the same
features (with or without pitch, with or without VTLP). Example (what the
README reports)::

    python bench/frontend.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, List

import torch
import torchaudio.compliance.kaldi as kaldi

from ent.features.fbank import Fbank
from ent.features.pitch import nccf_pitch


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=23, help="utterances per batch (default: 23)")
    parser.add_argument("--repeats", type=int, default=7, help="timed passes per configuration (default: 7)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(args.seed)
    lengths = torch.randint(24000, 64000, (args.batch,), generator=gen)
    waves = torch.randn(args.batch, int(lengths.max()), generator=gen) * 0.1
    audio_s = float(lengths.sum()) / 16000

    print(f"{args.batch} utterances, {audio_s:.1f} s of audio, one thread, median of {args.repeats} passes")
    print(f"{'features':<22}{'frontend':<26}{'ms/batch':>10}{'ratio':>8}")
    for pitch in (False, True):
        for vtlp in (None, [0.9, 1.1]):
            name = "fbank" + (" + pitch" if pitch else "") + (" + VTLP" if vtlp else "")
            plain = Fbank(pitch=pitch, vtlp_range=vtlp).train()

            def baseline() -> None:
                for i, n in enumerate(lengths.tolist()):
                    wave = waves[i, :n]
                    kaldi.fbank(wave.unsqueeze(0) * 32768, num_mel_bins=80, frame_length=25.0, frame_shift=10.0,
                                dither=0.0, energy_floor=0.0, sample_frequency=16000.0, vtln_warp=plain.draw_warp())
                    if pitch:
                        nccf_pitch(wave.unfold(0, 400, 160), 16000, 60.0, 450.0)

            rows = [
                ("kaldi.fbank per utt.", lambda: baseline()),
                ("Fbank", lambda: plain(waves, lengths)),
            ]
            base = None
            for label, fn in rows:
                fn()  # warm-up
                t = _median_time(fn, args.repeats)
                base = base or t
                print(f"{name:<22}{label:<26}{1000 * t:>10.1f}{t / base:>8.2f}")


if __name__ == "__main__":
    main()
