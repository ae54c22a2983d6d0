"""Tests of ent.losses.lattice_max_pool against brute-force loop references."""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import pytest
import torch

from ent.losses.lattice_max_pool import (
    LatticeMaxPoolLoss,
    frame_labels_from_segments,
    lattice_max_pool_loss,
    supervised_lattice_loss,
)

MODES = ("one", "full_t", "full_u")


# ----------------------------------------------------------------------------
# Brute-force references: explicit loops over every node, as plain as possible.
# ----------------------------------------------------------------------------


def node_log_prob(logits: torch.Tensor, b: int, t: int, u: int, c: int) -> torch.Tensor:
    """log p(c) at one node, written out: z_c - log sum_k exp(z_k)."""
    z = logits[b, t, u]
    return z[c] - torch.log(torch.sum(torch.exp(z - z.max()))) - z.max()


def brute_lattice_max_pool(
    logits: torch.Tensor,
    enc_lens: List[int],
    label_lens: List[int],
    emo_labels: List[int],
    mode: str,
    neutral_id: int,
    reduction: str,
) -> torch.Tensor:
    logits = logits.double()
    losses = []
    kept = 0
    for b in range(logits.size(0)):
        y = emo_labels[b]
        if y == -1:
            losses.append(logits.new_zeros(()))
            continue
        kept += 1
        nodes = [(t, u) for t in range(enc_lens[b]) for u in range(label_lens[b] + 1)]  # row-major
        best, best_val = None, None
        worst, worst_val = None, None
        for t, u in nodes:
            v = node_log_prob(logits, b, t, u, y).item()
            if best is None or v > best_val:  # strict: first node wins ties
                best, best_val = (t, u), v
            w = node_log_prob(logits, b, t, u, neutral_id).item()
            if worst is None or w < worst_val:
                worst, worst_val = (t, u), w

        def pooled(node: Tuple[int, int], c: int) -> torch.Tensor:
            if mode == "one":
                group = [node]
            elif mode == "full_t":
                group = [(node[0], u) for u in range(label_lens[b] + 1)]
            else:
                group = [(t, node[1]) for t in range(enc_lens[b])]
            total = sum(node_log_prob(logits, b, t, u, c) for t, u in group)
            return total / len(group)

        losses.append(-pooled(best, y) - pooled(worst, neutral_id))
    per = torch.stack(losses)
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / max(kept, 1)


def selected_nodes(
    logits: torch.Tensor, b: int, enc_len: int, label_len: int, c: int, largest: bool, mode: str
) -> set:
    """Nodes pooled for class c of utterance b (brute force, first-in-row-major ties)."""
    best, best_val = None, None
    for t in range(enc_len):
        for u in range(label_len + 1):
            v = node_log_prob(logits.double(), b, t, u, c).item()
            if best is None or (v > best_val if largest else v < best_val):
                best, best_val = (t, u), v
    if mode == "one":
        return {best}
    if mode == "full_t":
        return {(best[0], u) for u in range(label_len + 1)}
    return {(t, best[1]) for t in range(enc_len)}


def random_batch(
    seed: int, batch: int = 4, max_t: int = 6, max_u1: int = 5, classes: int = 4, dtype=torch.float64
):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, max_t, max_u1, classes, generator=g, dtype=dtype) * 2
    enc_lens = torch.randint(1, max_t + 1, (batch,), generator=g)
    enc_lens[0] = max_t
    label_lens = torch.randint(0, max_u1, (batch,), generator=g)
    label_lens[-1] = max_u1 - 1
    return logits, enc_lens, label_lens


# ----------------------------------------------------------------------------
# lattice_max_pool_loss
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("neutral_id", [0, 2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_brute_force(mode: str, neutral_id: int, reduction: str) -> None:
    for seed in range(3):
        logits, enc_lens, label_lens = random_batch(seed)
        # Emotional, neutral and ignored utterances in one batch.
        emo_labels = torch.tensor([1, neutral_id, 3, -1])
        x = logits.clone().requires_grad_(True)
        got = lattice_max_pool_loss(x, enc_lens, label_lens, emo_labels, mode, neutral_id, reduction)
        xr = logits.clone().requires_grad_(True)
        want = brute_lattice_max_pool(
            xr, enc_lens.tolist(), label_lens.tolist(), emo_labels.tolist(), mode, neutral_id, reduction
        )
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        got.sum().backward()
        want.sum().backward()
        torch.testing.assert_close(x.grad, xr.grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_ties_pick_first_node_in_row_major_order(mode: str) -> None:
    # Copies of one node vector at several places, all tying for the target maximum.
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(1, 5, 4, 3, generator=g, dtype=torch.float64)
    peak = torch.tensor([0.0, 9.0, -9.0], dtype=torch.float64)  # max p(1), min p(0)
    for t, u in [(3, 1), (1, 3), (1, 2), (4, 0)]:
        logits[0, t, u] = peak
    enc_lens, label_lens, emo_labels = torch.tensor([5]), torch.tensor([3]), torch.tensor([1])
    x = logits.clone().requires_grad_(True)
    loss = lattice_max_pool_loss(x, enc_lens, label_lens, emo_labels, mode=mode, neutral_id=0)
    loss.backward()
    if mode == "one":
        expected = {(1, 2)}  # smallest t, then smallest u
    elif mode == "full_t":
        expected = {(1, u) for u in range(4)}
    else:
        expected = {(t, 2) for t in range(5)}
    touched = {(t, u) for t in range(5) for u in range(4) if x.grad[0, t, u].abs().sum() > 0}
    assert touched == expected
    want = brute_lattice_max_pool(logits, [5], [3], [1], mode, 0, "mean")
    torch.testing.assert_close(loss, want)


# ----------------------------------------------------------------------------
# The ranked modes (mil, topk)
# ----------------------------------------------------------------------------


def brute_ranked(
    logits: torch.Tensor,
    enc_lens: List[int],
    label_lens: List[int],
    emo_labels: List[int],
    mode: str,
    neutral_id: int,
    reduction: str,
    topk: float = 0.5,
) -> torch.Tensor:
    """The ranked modes written out: list the nodes, sort them by the class score, average the first m."""
    logits = logits.double()
    losses, kept = [], 0
    for b in range(logits.size(0)):
        y = emo_labels[b]
        if y == -1:
            losses.append(logits.new_zeros(()))
            continue
        kept += 1
        nodes = [(t, u) for t in range(enc_lens[b]) for u in range(label_lens[b] + 1)]  # row-major
        scored = [(node_log_prob(logits, b, t, u, y), i) for i, (t, u) in enumerate(nodes)]
        if y != neutral_id:  # most y-like first; ties: row-major order
            scored.sort(key=lambda item: (-item[0].item(), item[1]))
        else:  # least neutral first
            scored.sort(key=lambda item: (item[0].item(), item[1]))
        m = 1 if mode == "mil" else max(1, math.ceil(topk * len(nodes)))
        losses.append(-sum(v for v, _ in scored[:m]) / m)
    per = torch.stack(losses)
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / max(kept, 1)


@pytest.mark.parametrize("mode,topk", [("mil", 0.5), ("topk", 0.5), ("topk", 0.1), ("topk", 1.0), ("topk", 0.37)])
@pytest.mark.parametrize("neutral_id", [0, 2])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_ranked_modes_match_brute_force(mode: str, topk: float, neutral_id: int, reduction: str) -> None:
    for seed in range(3):
        logits, enc_lens, label_lens = random_batch(seed)
        emo_labels = torch.tensor([1, neutral_id, 3, -1])
        x = logits.clone().requires_grad_(True)
        got = lattice_max_pool_loss(
            x, enc_lens, label_lens, emo_labels, mode, neutral_id, reduction, topk=topk
        )
        xr = logits.clone().requires_grad_(True)
        want = brute_ranked(
            xr, enc_lens.tolist(), label_lens.tolist(), emo_labels.tolist(), mode, neutral_id, reduction, topk
        )
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        got.sum().backward()
        want.sum().backward()
        torch.testing.assert_close(x.grad, xr.grad, rtol=1e-10, atol=1e-10)


def test_ranked_modes_never_push_an_emotional_utterance_to_neutral() -> None:
    """The collapse of mode one: its emotional utterances lower p(y) somewhere; mil and topk never do."""
    logits, enc_lens, label_lens = random_batch(5, batch=3)
    emo_labels = torch.tensor([1, 2, 3])  # all emotional
    for mode in ("mil", "topk"):
        x = logits.clone().requires_grad_(True)
        lattice_max_pool_loss(x, enc_lens, label_lens, emo_labels, mode, 0, "sum").backward()
        for b in range(3):
            y = int(emo_labels[b])
            # Gradient descent raises z_y (grad < 0) and lowers every other logit on the touched nodes.
            touched = x.grad[b].abs().sum(-1) > 0
            assert bool(touched.any())
            assert bool((x.grad[b, ..., y][touched] < 0).all())
            assert bool((x.grad[b, ..., 0][touched] > 0).all())
    x = logits.clone().requires_grad_(True)
    lattice_max_pool_loss(x, enc_lens, label_lens, emo_labels, "one", 0, "sum").backward()
    assert bool((x.grad[..., 0] < 0).any())  # one raises the neutral logit of emotional utterances


def test_topk_pools_the_share_of_nodes_and_one_means_every_node() -> None:
    logits, enc_lens, label_lens = random_batch(8)
    emo_labels = torch.tensor([1, 0, 3, 2])
    for topk in (0.25, 0.5, 1.0):
        x = logits.clone().requires_grad_(True)
        lattice_max_pool_loss(x, enc_lens, label_lens, emo_labels, "topk", 0, "sum", topk=topk).backward()
        for b in range(4):
            n_valid = int(enc_lens[b]) * (int(label_lens[b]) + 1)
            touched = int((x.grad[b].abs().sum(-1) > 0).sum())
            assert touched == max(1, math.ceil(topk * n_valid)), (topk, b)
    # topk 1: every valid node takes the utterance label (mean over the valid region).
    got = lattice_max_pool_loss(logits, enc_lens, label_lens, emo_labels, "topk", 0, "none", topk=1.0)
    lp = logits.log_softmax(-1)
    for b in range(4):
        region = lp[b, : enc_lens[b], : label_lens[b] + 1, int(emo_labels[b])]
        torch.testing.assert_close(got[b], -region.mean())


def test_ranked_modes_ignore_padding_and_ties_go_first() -> None:
    logits, enc_lens, label_lens = random_batch(11)
    enc_lens[1], label_lens[1] = 3, 2
    emo_labels = torch.tensor([1, 2, 0, 3])
    for mode in ("mil", "topk"):
        base = lattice_max_pool_loss(logits, enc_lens, label_lens, emo_labels, mode, reduction="none")
        noisy = logits.clone()
        noisy[1, 3:, :, 2] = 50.0
        noisy[1, :, 3:, 2] = 50.0
        x = noisy.clone().requires_grad_(True)
        got = lattice_max_pool_loss(x, enc_lens, label_lens, emo_labels, mode, reduction="none")
        torch.testing.assert_close(got, base)
        got.sum().backward()
        assert x.grad[1, 3:].abs().sum() == 0 and x.grad[1, :, 3:].abs().sum() == 0
    # All nodes tie: mil takes node (0, 0), topk the first nodes in row-major order.
    flat = torch.zeros(1, 3, 2, 4, dtype=torch.float64, requires_grad=True)
    lattice_max_pool_loss(flat, torch.tensor([3]), torch.tensor([1]), torch.tensor([2]), "topk", topk=0.5).backward()
    touched = torch.nonzero(flat.grad[0].abs().sum(-1)).tolist()
    assert touched == [[0, 0], [0, 1], [1, 0]]


@pytest.mark.parametrize("mode", ["mil", "topk"])
def test_ranked_gradcheck(mode: str) -> None:
    logits, enc_lens, label_lens = random_batch(4, batch=3, max_t=4, max_u1=3)
    x = logits.clone().requires_grad_(True)
    labels = torch.tensor([1, 0, 2])
    assert torch.autograd.gradcheck(
        lambda z: lattice_max_pool_loss(z, enc_lens, label_lens, labels, mode, topk=0.4), (x,)
    )


def test_bad_topk_is_refused() -> None:
    logits, enc_lens, label_lens = random_batch(0)
    for bad in (0.0, -0.1, 1.5, "half", True):
        with pytest.raises(ValueError, match="topk"):
            lattice_max_pool_loss(logits, enc_lens, label_lens, torch.tensor([1, 0, 2, 3]), "topk", topk=bad)
        with pytest.raises(ValueError, match="topk"):
            LatticeMaxPoolLoss("topk", topk=bad)


def test_all_equal_lattice_selects_origin() -> None:
    logits = torch.zeros(1, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    loss = lattice_max_pool_loss(logits, torch.tensor([3]), torch.tensor([2]), torch.tensor([2]), "one")
    loss.backward()
    assert loss.item() == pytest.approx(2 * math.log(4))
    nonzero = torch.nonzero(logits.grad.abs().sum(-1)).tolist()
    assert nonzero == [[0, 0, 0]]


def test_ignores_padding_region() -> None:
    # Huge values in padding must neither be selected nor change the loss.
    logits, enc_lens, label_lens = random_batch(11)
    enc_lens[1], label_lens[1] = 3, 2
    emo_labels = torch.tensor([1, 2, 0, 3])
    for mode in MODES:
        base = lattice_max_pool_loss(logits, enc_lens, label_lens, emo_labels, mode, reduction="none")
        noisy = logits.clone()
        noisy[1, 3:, :, 2] = 50.0  # invalid frames, huge target logit
        noisy[1, :, 3:, 0] = -50.0  # invalid positions, tiny neutral probability
        bigger = torch.nn.functional.pad(noisy, (0, 0, 0, 2, 0, 3), value=7.0)  # more padding
        for variant in (noisy, bigger):
            x = variant.clone().requires_grad_(True)
            got = lattice_max_pool_loss(x, enc_lens, label_lens, emo_labels, mode, reduction="none")
            torch.testing.assert_close(got, base)
            got.sum().backward()
            assert x.grad[1, 3:].abs().sum() == 0
            assert x.grad[1, :, 3:].abs().sum() == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("neutral_id", [0, 2])
def test_gradient_only_on_selected_nodes(mode: str, neutral_id: int) -> None:
    logits, enc_lens, label_lens = random_batch(3)
    emo_labels = torch.tensor([1, neutral_id, 3, 2])
    x = logits.clone().requires_grad_(True)
    lattice_max_pool_loss(x, enc_lens, label_lens, emo_labels, mode, neutral_id, "sum").backward()
    for b in range(4):
        t_b, l_b, y = int(enc_lens[b]), int(label_lens[b]), int(emo_labels[b])
        allowed = selected_nodes(logits, b, t_b, l_b, y, True, mode) | selected_nodes(
            logits, b, t_b, l_b, neutral_id, False, mode
        )
        for t in range(logits.size(1)):
            for u in range(logits.size(2)):
                has_grad = bool(x.grad[b, t, u].abs().sum() > 0)
                assert has_grad == ((t, u) in allowed), (b, t, u, mode)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(mode: str) -> None:
    logits, enc_lens, label_lens = random_batch(5, batch=3, max_t=4, max_u1=3, classes=3)
    emo_labels = torch.tensor([1, 0, 2])
    x = logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: lattice_max_pool_loss(z, enc_lens, label_lens, emo_labels, mode, 0, "mean"), (x,)
    )


def test_hand_computed_values() -> None:
    # 2 classes (0 = neutral, 1 = angry); logits [0, a] give p(angry) = sigmoid(a).
    a = torch.tensor([[-1.0, 2.0, 0.5], [3.0, -2.0, 1.0]], dtype=torch.float64)  # (T=2, U+1=3)
    logits = torch.stack([torch.zeros_like(a), a], dim=-1)[None]  # (1, 2, 3, 2)
    p_angry = torch.sigmoid(a)
    p_neu = 1 - p_angry
    enc, lab = torch.tensor([2]), torch.tensor([2])
    # Emotional: max p(angry) is at (1, 0), min p(neutral) too.
    one = lattice_max_pool_loss(logits, enc, lab, torch.tensor([1]), "one")
    assert one.item() == pytest.approx(-math.log(p_angry.max()) - math.log(p_neu.min()))
    full_t = lattice_max_pool_loss(logits, enc, lab, torch.tensor([1]), "full_t")
    assert full_t.item() == pytest.approx(-p_angry[1].log().mean().item() - p_neu[1].log().mean().item())
    full_u = lattice_max_pool_loss(logits, enc, lab, torch.tensor([1]), "full_u")
    assert full_u.item() == pytest.approx(-p_angry[:, 0].log().mean().item() - p_neu[:, 0].log().mean().item())
    # Neutral utterance: -log max p(neutral) - log min p(neutral).
    neu = lattice_max_pool_loss(logits, enc, lab, torch.tensor([0]), "one")
    assert neu.item() == pytest.approx(-math.log(p_neu.max()) - math.log(p_neu.min()))
    # Neutral class configurable: with neutral_id=1 the roles swap.
    swapped = lattice_max_pool_loss(logits, enc, lab, torch.tensor([0]), "one", neutral_id=1)
    assert swapped.item() == pytest.approx(-math.log(p_neu.max()) - math.log(p_angry.min()))
    # Only u <= label_lens and t < enc_lens count: shrink the region to (t=0, u<=1).
    small = lattice_max_pool_loss(logits, torch.tensor([1]), torch.tensor([1]), torch.tensor([1]), "one")
    assert small.item() == pytest.approx(-math.log(p_angry[0, 1]) - math.log(p_neu[0, 1]))


def test_reductions_and_ignored_utterances() -> None:
    logits, enc_lens, label_lens = random_batch(2)
    emo_labels = torch.tensor([1, -1, 0, 3])
    none = lattice_max_pool_loss(logits, enc_lens, label_lens, emo_labels, reduction="none")
    assert none.shape == (4,) and none[1] == 0 and bool((none[[0, 2, 3]] > 0).all())
    total = lattice_max_pool_loss(logits, enc_lens, label_lens, emo_labels, reduction="sum")
    mean = lattice_max_pool_loss(logits, enc_lens, label_lens, emo_labels, reduction="mean")
    torch.testing.assert_close(total, none.sum())
    torch.testing.assert_close(mean, none.sum() / 3)
    x = logits.clone().requires_grad_(True)
    lattice_max_pool_loss(x, enc_lens, label_lens, emo_labels).backward()
    assert x.grad[1].abs().sum() == 0
    everything_ignored = lattice_max_pool_loss(logits, enc_lens, label_lens, torch.full((4,), -1))
    assert everything_ignored.item() == 0.0


def test_half_precision_is_computed_in_float32() -> None:
    logits, enc_lens, label_lens = random_batch(4, dtype=torch.float32)
    emo_labels = torch.tensor([1, 0, 2, 3])
    half = logits.half().requires_grad_(True)
    got = lattice_max_pool_loss(half, enc_lens, label_lens, emo_labels, "full_u")
    assert got.dtype == torch.float32
    want = lattice_max_pool_loss(half.detach().float(), enc_lens, label_lens, emo_labels, "full_u")
    torch.testing.assert_close(got, want)
    got.backward()
    assert half.grad is not None and half.grad.dtype == torch.float16


def test_module_wrapper_and_author_mode_names() -> None:
    logits, enc_lens, label_lens = random_batch(6)
    emo_labels = torch.tensor([2, 1, 0, 2])
    module = LatticeMaxPoolLoss(mode="FullT", neutral_id=2, reduction="sum")
    assert module.mode == "full_t"
    torch.testing.assert_close(
        module(logits, enc_lens, label_lens, emo_labels),
        lattice_max_pool_loss(logits, enc_lens, label_lens, emo_labels, "full_t", 2, "sum"),
    )
    assert "full_t" in repr(module)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "rows"}, "unknown lattice max pooling mode"),
        ({"reduction": "avg"}, "unknown reduction"),
        ({"neutral_id": 4}, "neutral_id"),
        ({"emo_labels": torch.tensor([1, 4, 0, 0])}, "emo_labels must lie"),
        ({"emo_labels": torch.tensor([1, 2])}, "emo_labels must have shape"),
        ({"enc_lens": torch.tensor([7, 1, 1, 1])}, "enc_lens must lie"),
        ({"enc_lens": torch.tensor([0, 1, 1, 1])}, "enc_lens must lie"),
        ({"label_lens": torch.tensor([5, 0, 0, 0])}, "label_lens must lie"),
        ({"label_lens": torch.tensor([1.0, 0, 0, 0])}, "integer"),
        ({"emo_logits": torch.zeros(4, 6, 5)}, "must be"),
    ],
)
def test_bad_input_raises(kwargs: dict, match: str) -> None:
    logits, enc_lens, label_lens = random_batch(0)
    args = {
        "emo_logits": logits,
        "enc_lens": enc_lens,
        "label_lens": label_lens,
        "emo_labels": torch.tensor([1, 0, 2, 3]),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        lattice_max_pool_loss(**args)


def test_nan_logits_raise() -> None:
    logits, enc_lens, label_lens = random_batch(0)
    logits[:] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        lattice_max_pool_loss(logits, enc_lens, label_lens, torch.tensor([1, 0, 2, 3]))


# ----------------------------------------------------------------------------
# supervised_lattice_loss
# ----------------------------------------------------------------------------


def runs(labels: List[int]) -> List[Tuple[int, int, int]]:
    """(label, start, end) of the runs of equal labels, -1 breaking runs."""
    out: List[Tuple[int, int, int]] = []
    for i, lab in enumerate(labels):
        if lab == -1:
            continue
        if out and out[-1][0] == lab and out[-1][2] == i:
            out[-1] = (lab, out[-1][1], i + 1)
        else:
            out.append((lab, i, i + 1))
    return out


def brute_supervised(
    logits: torch.Tensor,
    enc_lens: List[int],
    label_lens: List[int],
    frame_labels: List[List[int]],
    token_labels: Optional[List[List[int]]],
    reduction: str,
) -> torch.Tensor:
    """Regions as in the authors' LatticeLossMix: (rows or columns of the interval) within
    the rectangle ending where the interval ends; rows only when token labels are absent."""
    logits = logits.double()
    losses = []
    counted = 0
    for b in range(logits.size(0)):
        frames = frame_labels[b][: enc_lens[b]]
        frame_runs = runs(frames)
        total = logits.new_zeros(())
        if token_labels is not None:
            tokens = token_labels[b][: label_lens[b] + 1]
            token_runs = runs(tokens)
            assert [r[0] for r in token_runs] == [r[0] for r in frame_runs]
        for k, (emo, s, f) in enumerate(frame_runs):
            region = []
            for t in range(enc_lens[b]):
                for u in range(label_lens[b] + 1):
                    if frames[t] == -1:
                        continue
                    if token_labels is None:
                        inside = s <= t < f
                    else:
                        if tokens[u] == -1:
                            continue
                        _, p, q = token_runs[k]
                        inside = t < f and u < q and (t >= s or u >= p)
                    if inside:
                        region.append((t, u))
            assert region
            nll = [-node_log_prob(logits, b, t, u, emo) for t, u in region]
            total = total + sum(nll) / len(nll)
        counted += bool(frame_runs)
        losses.append(total)
    per = torch.stack(losses)
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / max(counted, 1)


def random_intervals(g: torch.Generator, length: int, emotions: List[int], gaps: bool) -> List[int]:
    """Split `length` positions into consecutive runs of the given emotions (maybe with -1 gaps)."""
    cuts = sorted(torch.randperm(length - 1, generator=g)[: len(emotions) - 1].add(1).tolist())
    bounds = [0] + cuts + [length]
    out: List[int] = []
    for emo, a, z in zip(emotions, bounds, bounds[1:]):
        out += [emo] * (z - a)
    if gaps:
        for i in range(length):
            if torch.rand((), generator=g) < 0.15:
                out[i] = -1
    return out


def supervised_case(seed: int, with_tokens: bool, gaps: bool):
    g = torch.Generator().manual_seed(seed)
    batch, max_t, max_u1, classes = 4, 9, 6, 4
    logits = torch.randn(batch, max_t, max_u1, classes, generator=g, dtype=torch.float64)
    enc_lens = torch.tensor([9, 7, 5, 8])
    label_lens = torch.tensor([5, 3, 4, 2])
    sequences = [[0, 2, 0], [1], [3, 0], [2, 1, 3]]  # up to 3 intervals
    frame_labels = torch.full((batch, max_t), 5)  # garbage (out of range) beyond enc_lens
    token_labels = torch.full((batch, max_u1), 5)
    for b, emos in enumerate(sequences):
        frame_labels[b, : enc_lens[b]] = torch.tensor(random_intervals(g, int(enc_lens[b]), emos, gaps))
        token_labels[b, : label_lens[b] + 1] = torch.tensor(
            random_intervals(g, int(label_lens[b]) + 1, emos, False)
        )
    if not with_tokens:
        token_labels = None
    return logits, enc_lens, label_lens, frame_labels, token_labels


def fix_gaps(frame_labels: torch.Tensor, enc_lens: torch.Tensor, token_labels: torch.Tensor) -> bool:
    """True when the frame runs still match the token runs after random gaps."""
    for b in range(frame_labels.size(0)):
        f = [r[0] for r in runs(frame_labels[b, : enc_lens[b]].tolist())]
        t = [r[0] for r in runs(token_labels[b].tolist()) if r[0] != 5]
        if f != t:
            return False
    return True


@pytest.mark.parametrize("with_tokens", [False, True])
@pytest.mark.parametrize("gaps", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_supervised_matches_brute_force(with_tokens: bool, gaps: bool, reduction: str) -> None:
    checked = 0
    for seed in range(40):
        if checked == 4:
            break
        logits, enc_lens, label_lens, frame_labels, token_labels = supervised_case(seed, with_tokens, gaps)
        if with_tokens and not fix_gaps(frame_labels, enc_lens, token_labels):
            continue  # a gap split or removed a frame run; covered by the mismatch test
        x = logits.clone().requires_grad_(True)
        got = supervised_lattice_loss(x, enc_lens, label_lens, frame_labels, token_labels, reduction)
        xr = logits.clone().requires_grad_(True)
        want = brute_supervised(
            xr,
            enc_lens.tolist(),
            label_lens.tolist(),
            frame_labels.tolist(),
            None if token_labels is None else token_labels.tolist(),
            reduction,
        )
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        got.sum().backward()
        want.sum().backward()
        torch.testing.assert_close(x.grad, xr.grad, rtol=1e-10, atol=1e-10)
        assert x.grad[0, 9:].abs().sum() == 0 and x.grad[1, 7:].abs().sum() == 0
        assert x.grad[1, :, 4:].abs().sum() == 0
        checked += 1
    assert checked == 4


def test_supervised_hand_case_with_tokens() -> None:
    # Two intervals: neutral on frames [0, 2) / positions [0, 1), angry on frames [2, 4) / positions [1, 3).
    logits = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    lp = logits.log_softmax(-1)[0]
    frame_labels = torch.tensor([[0, 0, 2, 2]])
    token_labels = torch.tensor([[0, 2, 2]])
    got = supervised_lattice_loss(logits, torch.tensor([4]), torch.tensor([2]), frame_labels, token_labels)
    region0 = [(0, 0), (1, 0)]
    region1 = [(t, u) for t in range(4) for u in range(3) if (t, u) not in region0]
    want = -sum(lp[t, u, 0] for t, u in region0) / 2 - sum(lp[t, u, 2] for t, u in region1) / 10
    torch.testing.assert_close(got, want)
    # Without token labels, intervals are frame rows over all positions.
    rows = supervised_lattice_loss(logits, torch.tensor([4]), torch.tensor([2]), frame_labels)
    want_rows = -lp[:2, :, 0].mean() - lp[2:, :, 2].mean()
    torch.testing.assert_close(rows, want_rows)


def test_supervised_gradcheck() -> None:
    logits, enc_lens, label_lens, frame_labels, token_labels = supervised_case(1, True, False)
    x = logits[:, :6, :5].clone().requires_grad_(True)
    enc_lens = enc_lens.clamp(max=6)
    label_lens = label_lens.clamp(max=4)
    frame_labels = frame_labels[:, :6]
    assert torch.autograd.gradcheck(
        lambda z: supervised_lattice_loss(z, enc_lens, label_lens, frame_labels), (x,)
    )
    logits, enc_lens, label_lens, frame_labels, token_labels = supervised_case(2, True, False)
    x = logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: supervised_lattice_loss(z, enc_lens, label_lens, frame_labels, token_labels), (x,)
    )


def test_supervised_unlabelled_utterances_are_left_out_of_the_mean() -> None:
    logits, enc_lens, label_lens, frame_labels, _ = supervised_case(3, False, False)
    frame_labels[2] = -1
    none = supervised_lattice_loss(logits, enc_lens, label_lens, frame_labels, reduction="none")
    assert none[2] == 0 and bool((none[[0, 1, 3]] > 0).all())
    mean = supervised_lattice_loss(logits, enc_lens, label_lens, frame_labels)
    torch.testing.assert_close(mean, none.sum() / 3)
    assert supervised_lattice_loss(logits, enc_lens, label_lens, torch.full_like(frame_labels, -1)).item() == 0


def test_supervised_bad_input() -> None:
    logits, enc_lens, label_lens, frame_labels, token_labels = supervised_case(0, True, False)
    with pytest.raises(ValueError, match="do not match"):
        bad = token_labels.clone()
        bad[0, : label_lens[0] + 1] = 1
        supervised_lattice_loss(logits, enc_lens, label_lens, frame_labels, bad)
    with pytest.raises(ValueError, match="frame_labels must have shape"):
        supervised_lattice_loss(logits, enc_lens, label_lens, frame_labels[:, :3])
    with pytest.raises(ValueError, match="token_labels must have shape"):
        supervised_lattice_loss(logits, enc_lens, label_lens, frame_labels, token_labels[:, :2])
    with pytest.raises(ValueError, match="frame_labels must lie"):
        bad = frame_labels.clone()
        bad[0, 0] = 4
        supervised_lattice_loss(logits, enc_lens, label_lens, bad)


# ----------------------------------------------------------------------------
# frame_labels_from_segments
# ----------------------------------------------------------------------------


def test_frame_labels_from_segments_hand_cases() -> None:
    # shift 0.25 s: frame centres 0.125, 0.375, 0.625, 0.875, 1.125, 1.375 (exact in binary).
    f = frame_labels_from_segments
    assert f([(0.25, 0.75, 2)], 6, 0.25).tolist() == [0, 2, 2, 0, 0, 0]
    assert f([(0.25, 0.75, 2)], 6, 0.25, neutral_id=3).tolist() == [3, 2, 2, 3, 3, 3]
    # Start inclusive, end exclusive, on the centre itself.
    assert f([(0.375, 0.875, 1)], 6, 0.25).tolist() == [0, 1, 1, 0, 0, 0]
    # Two segments in any order; a segment past the end is clipped.
    assert f([(1.0, 9.0, 3), (0.0, 0.3, 1)], 6, 0.25).tolist() == [1, 0, 0, 0, 3, 3]
    # A segment covering no frame centre leaves the frames neutral.
    assert f([(0.13, 0.3, 1)], 6, 0.25).tolist() == [0] * 6
    assert f([], 3, 0.04).tolist() == [0, 0, 0]
    assert f([(0.0, 1.0, 1)], 0, 0.04).shape == (0,)
    assert f([(0.0, 1.0, 1)], 2, 0.04).dtype == torch.long


@pytest.mark.parametrize(
    "segments, match",
    [
        ([(0.0, 0.5, 1), (0.4, 0.8, 2)], "overlap"),
        ([(0.5, 0.5, 1)], "start < end"),
        ([(-0.1, 0.5, 1)], "start < end"),
        ([(0.1, 0.5, -2)], "negative"),
    ],
)
def test_frame_labels_from_segments_bad(segments: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        frame_labels_from_segments(segments, 10, 0.04)


def test_segments_feed_supervised_loss() -> None:
    # End to end: segments -> frame labels -> loss equals the rows-only brute force.
    frame_labels = torch.stack(
        [
            frame_labels_from_segments([(0.1, 0.2, 2)], 8, 0.04),
            frame_labels_from_segments([(0.0, 0.12, 1), (0.2, 0.32, 3)], 8, 0.04),
        ]
    )
    logits = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    enc_lens, label_lens = torch.tensor([8, 6]), torch.tensor([3, 1])
    got = supervised_lattice_loss(logits, enc_lens, label_lens, frame_labels, reduction="none")
    want = brute_supervised(logits, [8, 6], [3, 1], frame_labels.tolist(), None, "none")
    torch.testing.assert_close(got, want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    logits, enc_lens, label_lens = random_batch(12, dtype=torch.float32)
    logits[0, 2, 1] = logits[0, 4, 0] = torch.tensor([0.0, 9.0, -9.0, 0.0])  # exact ties
    emo_labels = torch.tensor([1, 0, 3, 2])
    for mode in MODES:
        cpu = logits.clone().requires_grad_(True)
        gpu = logits.cuda().requires_grad_(True)
        lc = lattice_max_pool_loss(cpu, enc_lens, label_lens, emo_labels, mode, reduction="none")
        lg = lattice_max_pool_loss(
            gpu, enc_lens.cuda(), label_lens.cuda(), emo_labels.cuda(), mode, reduction="none"
        )
        torch.testing.assert_close(lg.cpu(), lc)
        lc.sum().backward()
        lg.sum().backward()
        torch.testing.assert_close(gpu.grad.cpu(), cpu.grad)
    logits, enc_lens, label_lens, frame_labels, token_labels = supervised_case(0, True, False)
    want = supervised_lattice_loss(logits, enc_lens, label_lens, frame_labels, token_labels, "none")
    got = supervised_lattice_loss(logits.cuda(), enc_lens, label_lens, frame_labels, token_labels, "none")
    torch.testing.assert_close(got.cpu(), want)
