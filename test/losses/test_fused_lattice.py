"""Fused lattice max pooling (ent.losses.fused_lattice) against the plain PyTorch reference.

Every back end available on the machine must give the reference's loss and
gradients (float64: 1e-10 relative, float32: 1e-5) in every mode, for the
supervised variant, on random shapes, lengths and exact ties. The kernels
themselves (numba CUDA in numba's simulator, the CUDA C++ sources, back-end
resolution) are tested in test/kernels/.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ent.kernels.availability import BackendUnavailableError
from ent.kernels.extension import load_extension
from ent.losses.fused_lattice import emotion_lattice, fused_lattice_max_pool_loss, fused_supervised_lattice_loss
from ent.losses.lattice_max_pool import lattice_max_pool_loss, supervised_lattice_loss

MODES = ("one", "full_t", "full_u", "mil", "topk")
RTOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _gpu_backends() -> List[str]:
    if not torch.cuda.is_available():
        return []
    found = ["numba_cuda"]
    try:
        load_extension()
        found.append("cuda")
    except BackendUnavailableError:
        pass
    return found


def _cpu_backends() -> List[str]:
    try:
        import numba  # noqa: F401
    except ImportError:
        return []
    return ["numba"]


BACKENDS = _cpu_backends() + _gpu_backends()
Inputs = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def device_of(backend: str) -> torch.device:
    return torch.device("cuda" if backend in ("cuda", "numba_cuda") else "cpu")


def random_case(seed: int, dtype: torch.dtype, ties: bool = False) -> Dict[str, object]:
    """Random shapes and lengths; with ``ties``, duplicated frames and positions (exact ties)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))  # noqa: E731
    batch, max_t, max_u, joint, classes = r(1, 4), r(1, 12), r(0, 6), r(1, 24), r(2, 6)
    enc = torch.randn(batch, max_t, joint, generator=g, dtype=dtype)
    pred = torch.randn(batch, max_u + 1, joint, generator=g, dtype=dtype)
    if ties:  # repeat rows and positions: their nodes are bit-identical
        enc[:, 1::2] = enc[:, 0:1]
        pred[:, 1::2] = pred[:, 0:1]
    weight = torch.randn(classes, joint, generator=g, dtype=dtype) / joint**0.5
    bias = torch.randn(classes, generator=g, dtype=dtype)
    enc_lens = torch.randint(1, max_t + 1, (batch,), generator=g)
    label_lens = torch.randint(0, max_u + 1, (batch,), generator=g)
    enc_lens[0], label_lens[0] = max_t, max_u
    return {
        "inputs": (enc, pred, weight, bias),
        "enc_lens": enc_lens,
        "label_lens": label_lens,
        "labels": torch.randint(-1, classes, (batch,), generator=g),
        "neutral_id": r(0, classes - 1),
        "generator": g,
    }


def loss_and_grads(fn, inputs: Inputs, device: torch.device, *args, **kwargs) -> List[torch.Tensor]:
    leaves = [x.detach().to(device).requires_grad_(True) for x in inputs]
    loss = fn(*leaves, *args, **kwargs)
    weights = torch.linspace(0.5, 1.5, loss.numel(), dtype=loss.dtype, device=device).reshape(loss.shape)
    grads = torch.autograd.grad((loss * weights).sum(), leaves, allow_unused=False)
    return [loss.detach().cpu()] + [x.cpu() for x in grads]


def reference_pool(enc, pred, weight, bias, *args, **kwargs) -> torch.Tensor:
    return lattice_max_pool_loss(emotion_lattice(enc, pred, weight, bias), *args, **kwargs)


def reference_supervised(enc, pred, weight, bias, *args, **kwargs) -> torch.Tensor:
    return supervised_lattice_loss(emotion_lattice(enc, pred, weight, bias), *args, **kwargs)


def assert_same(got: List[torch.Tensor], want: List[torch.Tensor], dtype: torch.dtype) -> None:
    """Loss and gradients equal up to RTOL[dtype], relative to their largest magnitude.

    float64: each tensor relative to its own largest entry. float32: each
    gradient relative to the largest entry of all four. In float32 dL/dz of
    a confident node, p - 1, carries about one ulp of the log-sum-exp in both
    implementations (the reference as well), so a gradient whose entries are
    all small next to the others is only that accurate (measured: the two
    differ by up to 1e-6 of the largest gradient, 3e-5 of a small one's own).
    """
    names = ("loss", "grad enc", "grad pred", "grad weight", "grad bias")
    grad_scale = max(float(b.abs().max()) if b.numel() else 0.0 for b in want[1:])
    for index, (name, a, b) in enumerate(zip(names, got, want)):
        assert a.dtype == b.dtype, name
        scale = float(b.abs().max()) if b.numel() else 0.0
        if dtype == torch.float32 and index > 0:
            scale = grad_scale
        torch.testing.assert_close(
            a, b, rtol=RTOL[dtype], atol=RTOL[dtype] * scale, msg=lambda m: f"{name}: {m}"
        )


# ----------------------------------------------------------------------------
# Lattice max pooling
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ties", [False, True])
def test_pooling_equals_reference(backend: str, dtype: torch.dtype, mode: str, ties: bool) -> None:
    device = device_of(backend)
    for seed in range(6):
        case = random_case(seed, dtype, ties)
        for reduction in ("none", "mean"):
            args = (case["enc_lens"], case["label_lens"], case["labels"])
            kwargs = {"mode": mode, "neutral_id": case["neutral_id"], "reduction": reduction}
            want = loss_and_grads(reference_pool, case["inputs"], torch.device("cpu"), *args, **kwargs)
            got = loss_and_grads(
                fused_lattice_max_pool_loss, case["inputs"], device, *args, backend=backend, **kwargs
            )
            assert_same(got, want, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_pooling_ties_go_to_the_first_node(backend: str, mode: str) -> None:
    """All nodes tie (zero weight, one class; or identical frames): node (0, 0) and its row/column win."""
    g = torch.Generator().manual_seed(3)
    enc = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    pred = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    enc_lens, label_lens, labels = torch.tensor([5, 4]), torch.tensor([3, 1]), torch.tensor([2, 0])
    device = device_of(backend)
    for weight, bias in (
        (torch.zeros(3, 3, dtype=torch.float64), torch.tensor([0.1, -0.3, 0.2], dtype=torch.float64)),
        (torch.randn(1, 3, generator=g, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)),
    ):
        lab = labels.clamp(max=weight.size(0) - 1)
        inputs = (enc, pred, weight, bias)
        args = (enc_lens, label_lens, lab)
        want = loss_and_grads(reference_pool, inputs, torch.device("cpu"), *args, mode=mode)
        got = loss_and_grads(fused_lattice_max_pool_loss, inputs, device, *args, mode=mode, backend=backend)
        assert_same(got, want, torch.float64)  # the weight gradient tells which node was taken
    # Identical best frames 1 and 3: frame 1 wins, which shows in where the gradient goes.
    weight = torch.randn(3, 3, generator=g, dtype=torch.float64)
    bias = torch.zeros(3, dtype=torch.float64)
    enc_tie = enc.clone()
    for b in range(2):
        enc_tie[b, 1] = enc_tie[b, 3] = 3.0 * weight[labels[b]]
    lattice = emotion_lattice(enc_tie, pred, weight, bias).log_softmax(-1)
    for b in range(2):
        scores = lattice[b, : enc_lens[b], : label_lens[b] + 1, labels[b]]
        assert torch.equal(scores[1], scores[3]) and int(scores.argmax()) // scores.size(1) == 1
    inputs = (enc_tie, pred, weight, bias)
    args = (enc_lens, label_lens, labels)
    want = loss_and_grads(reference_pool, inputs, torch.device("cpu"), *args, mode=mode)
    got = loss_and_grads(fused_lattice_max_pool_loss, inputs, device, *args, mode=mode, backend=backend)
    assert_same(got, want, torch.float64)
    if mode in ("one", "full_t", "mil"):  # a column spans every frame, topk half the nodes
        assert float(got[1][0, 3].abs().max()) == 0.0 and float(got[1][0, 1].abs().max()) > 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_pooling_reductions_ignore_and_half_precision(backend: str) -> None:
    device = device_of(backend)
    case = random_case(11, torch.float64)
    enc, pred, weight, bias = case["inputs"]
    args = (case["enc_lens"], case["label_lens"])
    labels = torch.full_like(case["labels"], -1)
    for reduction in ("mean", "sum", "none"):
        got = fused_lattice_max_pool_loss(
            *(x.to(device) for x in case["inputs"]), *args, labels, reduction=reduction, backend=backend
        )
        assert float(got.abs().sum()) == 0.0
    labels = torch.where(case["labels"] < 0, torch.zeros_like(case["labels"]), case["labels"])
    inputs = [x.to(device) for x in case["inputs"]]
    sum_ = fused_lattice_max_pool_loss(*inputs, *args, labels, reduction="sum", backend=backend)
    mean = fused_lattice_max_pool_loss(*inputs, *args, labels, backend=backend)
    assert torch.allclose(sum_ / labels.numel(), mean, rtol=1e-12)
    # bfloat16 inputs are computed in float32 (the reference's logits dtype for them).
    half = [x.to(torch.bfloat16) for x in case["inputs"]]
    want = reference_pool(*(x.float() for x in half), *args, labels)
    got = fused_lattice_max_pool_loss(*(x.to(device) for x in half), *args, labels, backend=backend)
    assert got.dtype == torch.float32 and torch.allclose(got.cpu(), want, rtol=1e-5)


# ----------------------------------------------------------------------------
# Supervised interval variant
# ----------------------------------------------------------------------------


def random_intervals(
    case: Dict[str, object], with_tokens: bool
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Frame labels with runs (and matching token labels, or None)."""
    g = case["generator"]
    enc = case["inputs"][0]
    classes = case["inputs"][2].size(0)
    batch, max_t = enc.shape[:2]
    max_u1 = case["inputs"][1].size(1)
    frame_labels = torch.full((batch, max_t), -1, dtype=torch.long)
    token_labels = torch.full((batch, max_u1), -1, dtype=torch.long) if with_tokens else None
    for b in range(batch):
        t_len, u_len = int(case["enc_lens"][b]), int(case["label_lens"][b]) + 1
        runs = int(torch.randint(0, min(t_len, u_len if with_tokens else t_len, 3) + 1, (1,), generator=g))
        emotions = [int(torch.randint(0, classes, (1,), generator=g)) for _ in range(runs)]
        for k in range(1, runs):  # adjacent runs differ, or they would merge
            if emotions[k] == emotions[k - 1]:
                emotions[k] = (emotions[k] + 1) % classes
        cuts_t = sorted(torch.randperm(t_len - 1, generator=g)[: max(runs - 1, 0)].add(1).tolist())
        bounds = [0] + cuts_t + [t_len]
        for k in range(runs):
            frame_labels[b, bounds[k] : bounds[k + 1]] = emotions[k]
        if runs and bool(torch.rand(1, generator=g) < 0.5):  # an unlabelled gap inside
            frame_labels[b, bounds[-2]] = -1 if bounds[-1] - bounds[-2] > 1 else frame_labels[b, bounds[-2]]
        if token_labels is not None:
            cuts_u = sorted(torch.randperm(u_len - 1, generator=g)[: max(runs - 1, 0)].add(1).tolist())
            ubounds = [0] + cuts_u + [u_len]
            for k in range(runs):
                token_labels[b, ubounds[k] : ubounds[k + 1]] = emotions[k]
    return frame_labels, token_labels


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("with_tokens", [False, True])
def test_supervised_equals_reference(backend: str, dtype: torch.dtype, with_tokens: bool) -> None:
    device = device_of(backend)
    for seed in range(8):
        case = random_case(100 + seed, dtype, ties=seed % 2 == 1)
        frame_labels, token_labels = random_intervals(case, with_tokens)
        for reduction in ("none", "mean", "sum"):
            args = (case["enc_lens"], case["label_lens"], frame_labels, token_labels)
            cpu = torch.device("cpu")
            want = loss_and_grads(reference_supervised, case["inputs"], cpu, *args, reduction=reduction)
            got = loss_and_grads(
                fused_supervised_lattice_loss, case["inputs"], device, *args, reduction=reduction,
                backend=backend,
            )
            assert_same(got, want, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_supervised_bad_intervals_fail_like_the_reference(backend: str) -> None:
    case = random_case(5, torch.float64)
    inputs = tuple(x.to(device_of(backend)) for x in case["inputs"])
    batch, max_t = inputs[0].shape[:2]
    frame_labels = torch.zeros(batch, max_t, dtype=torch.long)
    bad_tokens = torch.full((batch, inputs[1].size(1)), 1, dtype=torch.long)
    args = (case["enc_lens"], case["label_lens"])
    with pytest.raises(ValueError, match="do not match the frame_labels intervals"):
        fused_supervised_lattice_loss(*inputs, *args, frame_labels, bad_tokens, backend=backend)
    with pytest.raises(ValueError, match="frame_labels must have shape"):
        fused_supervised_lattice_loss(*inputs, *args, frame_labels[:, :0], backend=backend)
    with pytest.raises(ValueError, match="frame_labels must lie in"):
        fused_supervised_lattice_loss(*inputs, *args, frame_labels + 50, backend=backend)


# ----------------------------------------------------------------------------
# Memory, inputs, back-end selection
# ----------------------------------------------------------------------------


class LargestAllocation(TorchDispatchMode):
    """Records the largest tensor storage any PyTorch op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.nbytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for x in torch.utils._pytree.tree_leaves(out):
            if isinstance(x, torch.Tensor):
                self.nbytes = max(self.nbytes, x.untyped_storage().nbytes())
        return out


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b == "numba"])
def test_fused_path_never_materializes_the_lattice(backend: str) -> None:
    batch, max_t, max_u1, joint = 2, 64, 33, 64
    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn(batch, max_t, joint, generator=g).requires_grad_(),
        torch.randn(batch, max_u1, joint, generator=g).requires_grad_(),
        torch.randn(4, joint, generator=g).requires_grad_(),
        torch.randn(4, generator=g).requires_grad_(),
    ]
    lens = (torch.tensor([64, 50]), torch.tensor([32, 20]))
    frames = torch.randint(0, 4, (batch, max_t), generator=g)
    lattice_bytes = batch * max_t * max_u1 * joint * 4
    for loss_fn, extra in (
        (fused_lattice_max_pool_loss, {"emo_labels": torch.tensor([1, 2]), "mode": "full_u"}),
        (fused_lattice_max_pool_loss, {"emo_labels": torch.tensor([1, 0]), "mode": "topk", "topk": 0.3}),
        (fused_supervised_lattice_loss, {"frame_labels": frames}),
    ):
        with LargestAllocation() as probe:
            loss = loss_fn(*inputs, *lens, backend=backend, **extra)
            loss.backward()
        assert probe.nbytes < lattice_bytes / 8, (loss_fn.__name__, probe.nbytes, lattice_bytes)
    with LargestAllocation() as probe:  # the probe does see the plain path's lattice
        fused_lattice_max_pool_loss(*inputs, *lens, torch.tensor([1, 2]), backend="torch").backward()
    assert probe.nbytes >= lattice_bytes


def test_inputs_are_checked() -> None:
    case = random_case(2, torch.float64)
    enc, pred, weight, bias = case["inputs"]
    args = (case["enc_lens"], case["label_lens"], case["labels"])
    with pytest.raises(ValueError, match="pred_proj must be"):
        fused_lattice_max_pool_loss(enc, pred[..., :0], weight, bias, *args, backend="numba")
    with pytest.raises(ValueError, match="weight must be"):
        fused_lattice_max_pool_loss(enc, pred, weight[:, :0], bias, *args, backend="numba")
    with pytest.raises(ValueError, match="enc_lens must lie in"):
        fused_lattice_max_pool_loss(enc, pred, weight, bias, args[0] + 100, *args[1:], backend="numba")
    with pytest.raises(ValueError, match="emo_labels must lie in"):
        fused_lattice_max_pool_loss(enc, pred, weight, bias, *args[:2], args[2] + 100, backend="numba")
    with pytest.raises(ValueError, match="unknown lattice max pooling mode"):
        fused_lattice_max_pool_loss(enc, pred, weight, bias, *args, mode="FullX", backend="numba")
    nan_enc = enc.clone()
    nan_enc[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        labels = args[2].clamp(min=0)
        fused_lattice_max_pool_loss(nan_enc, pred, weight, bias, *args[:2], labels, backend="numba")


# ----------------------------------------------------------------------------
# The model uses the fused path
# ----------------------------------------------------------------------------


def tiny_model(backend: str):
    from ent.features.fbank import Fbank
    from ent.kernels.backends import ComputeBackends
    from ent.models.transducer import EmotionTransducer
    from ent.nets.encoder import ConformerEncoder
    from ent.nets.predictor import RNNPredictor

    torch.manual_seed(0)
    encoder = ConformerEncoder(
        20, num_blocks=1, hidden_size=16, linear_size=32, heads=2, conv_mod_kernel_size=3,
        dropout_rate=0.0, att_dropout_rate=0.0, pos_wise_dropout_rate=0.0,
    )
    return EmotionTransducer(
        12, ("neutral", "happy", "angry", "sad"), Fbank(n_mels=20), None, None, encoder,
        RNNPredictor(12, embed_dim=8, hidden_dim=16), None, joint_conf={"dim": 16}, loss_conf={"lattice_mode": "full_t"},
        backends=ComputeBackends(lattice=backend),
    )


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba is not installed")
def test_model_lattice_loss_is_the_same_with_the_fused_backend() -> None:
    """ENT's lattice loss (pooling and intervals) and every gradient: fused numba == materialized torch."""
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(3, 90, 20, generator=g, dtype=torch.float64)
    feats_lens = torch.tensor([90, 70, 50])
    speech = 0.1 * torch.randn(3, 6000, generator=g)
    lens = torch.tensor([6000, 5000, 4000])
    text = torch.tensor([[3, 4, 5], [6, 7, -1], [8, -1, -1]])
    tlens = torch.tensor([3, 2, 1])
    emotion = torch.tensor([1, 0, 3])
    intervals = torch.full((3, 1, 3), -1.0)
    intervals[2, 0] = torch.tensor([0.05, 0.15, 2.0])  # utterance 2: supervised interval loss
    results, forward_losses = [], []
    for backend in ("torch", "numba"):
        model = tiny_model(backend).eval()
        _, stats, _ = model(speech, lens, text, tlens, emotion, emo_intervals=intervals)
        forward_losses.append(stats["loss_lattice"])
        model = model.double()
        enc_out, enc_lens = model.encoder(feats, feats_lens)
        _, emo_pred = model.predict(text)
        loss = model._lattice_loss(enc_out, emo_pred, enc_lens, tlens, emotion, intervals)
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        grads = [torch.zeros_like(p) if d is None else d for p, d in zip(params, grads)]
        results.append([loss.detach()] + grads)
    assert torch.isclose(forward_losses[0], forward_losses[1], rtol=1e-5)
    assert results[0][0] > 0
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-10, atol=0.0)
    # Some parameters' true gradients are 0 (rounding noise ~1e-18): tolerances scale with the largest.
    scale = max(float(d.abs().max()) for d in results[0][1:])
    assert scale > 0
    for got, want in zip(results[1][1:], results[0][1:]):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10 * scale)


def test_model_refuses_a_bad_lattice_backend() -> None:
    with pytest.raises(ValueError, match="unknown lattice backend"):
        tiny_model("fast")
