r"""Numba CPU kernel of the transducer forward-backward (:func:`ent.losses.rnnt.rnnt_loss`, ``backend="numba"``).

Imported on first use, so that importing the loss does not import numba.
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor


@njit(inline="always")
def _logaddexp(a: float, b: float) -> float:  # pragma: no cover - numba
    top = a if a > b else b
    if top == -math.inf:
        return top
    return top + math.log1p(math.exp(-abs(a - b)))


@njit(parallel=True, cache=True)
def _occupancies(blank_lp, emit_lp, enc_lens, label_lens, log_like, occ_blank, occ_emit):  # pragma: no cover - numba
    """Forward-backward over each utterance's lattice, in float64.

    ``blank_lp``, ``emit_lp`` (B, T, U+1): log-probabilities of blank and of
    the next label at every node (``emit_lp[b, t, U_b]`` is not read).
    Writes ``log_like`` (B,) and the transition occupancies ``occ_blank``,
    ``occ_emit`` (B, T, U+1), which must come in zeroed.
    """
    for b in prange(blank_lp.shape[0]):
        num_t = enc_lens[b]
        num_u = label_lens[b]
        alpha = np.empty((num_t, num_u + 1))
        beta = np.empty((num_t, num_u + 1))
        alpha[0, 0] = 0.0
        for u in range(1, num_u + 1):
            alpha[0, u] = alpha[0, u - 1] + emit_lp[b, 0, u - 1]
        for t in range(1, num_t):
            alpha[t, 0] = alpha[t - 1, 0] + blank_lp[b, t - 1, 0]
            for u in range(1, num_u + 1):
                alpha[t, u] = _logaddexp(
                    alpha[t - 1, u] + blank_lp[b, t - 1, u], alpha[t, u - 1] + emit_lp[b, t, u - 1]
                )
        last = num_t - 1
        beta[last, num_u] = blank_lp[b, last, num_u]
        for u in range(num_u - 1, -1, -1):
            beta[last, u] = beta[last, u + 1] + emit_lp[b, last, u]
        for t in range(last - 1, -1, -1):
            beta[t, num_u] = beta[t + 1, num_u] + blank_lp[b, t, num_u]
            for u in range(num_u - 1, -1, -1):
                beta[t, u] = _logaddexp(
                    beta[t + 1, u] + blank_lp[b, t, u], beta[t, u + 1] + emit_lp[b, t, u]
                )
        ll = beta[0, 0]
        log_like[b] = ll
        for t in range(num_t):
            for u in range(num_u + 1):
                if t < last:
                    occ_blank[b, t, u] = math.exp(alpha[t, u] + blank_lp[b, t, u] + beta[t + 1, u] - ll)
                elif u == num_u:
                    occ_blank[b, t, u] = math.exp(alpha[t, u] + blank_lp[b, t, u] - ll)
                if u < num_u:
                    occ_emit[b, t, u] = math.exp(alpha[t, u] + emit_lp[b, t, u] + beta[t, u + 1] - ll)


def rnnt_occupancies(
    blank_lp: Tensor, emit_lp: Tensor, enc_lens: Tensor, label_lens: Tensor
) -> Tuple[Tensor, Tensor, Tensor]:
    """Log-likelihoods and transition occupancies of padded lattices (numba, CPU).

    Args:
        blank_lp: (B, T, U+1) float32/float64 log p(blank | t, u).
        emit_lp: (B, T, U+1) log p(y_{u+1} | t, u) (the last valid column is not read).
        enc_lens: (B,) frames T_b; label_lens: (B,) labels U_b.

    Returns:
        ``log_like`` (B,) float64, ``occ_blank`` and ``occ_emit`` (B, T, U+1) in
        the dtype of the inputs: the posterior probability that an alignment
        takes the blank (label) transition out of node (t, u); zero outside
        each utterance's lattice.
    """
    blank_np = blank_lp.detach().contiguous().numpy()
    emit_np = emit_lp.detach().contiguous().numpy()
    log_like = np.empty(blank_np.shape[0])
    occ_blank = np.zeros_like(blank_np)
    occ_emit = np.zeros_like(blank_np)
    _occupancies(
        blank_np, emit_np, enc_lens.to(torch.int64).numpy(), label_lens.to(torch.int64).numpy(),
        log_like, occ_blank, occ_emit,
    )
    return torch.from_numpy(log_like), torch.from_numpy(occ_blank), torch.from_numpy(occ_emit)
