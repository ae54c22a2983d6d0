"""Pretrained speech representations: a wav2vec 2.0 / HuBERT / WavLM front end.

:class:`SSLFrontend` loads a self-supervised speech model with Hugging Face
``transformers`` from a **local directory** (``config.json`` and
``model.safetensors`` or ``pytorch_model.bin``; nothing is downloaded at run
time, see docs/pretrained_frontends.md), runs it on a padded batch of
16 kHz waveforms and returns a learned softmax-weighted sum of all its hidden
states (:class:`~ent.features.layer_weighting.LayerWeightedSum`), the front
end of the published ENT results (frozen wav2vec 2.0 base, 13 hidden states).

Modes
-----
* frozen (``finetune: false``, the default): the pretrained model runs in
  eval mode under ``torch.no_grad()``, optionally in float16/bfloat16 (the
  hidden states are summed in float32). It is deliberately *not* a submodule:
  its weights are not trained, not in ``parameters()`` and not in the ENT
  checkpoints (they are read from ``model_dir`` again when a model is
  built), and a parent's ``.train()`` never reaches it. Its hidden states can
  be read from a cache (``cache_dir``, :mod:`ent.features.ssl_cache`).
* fine-tuned (``finetune: true``): the model is a submodule (trained, saved
  in checkpoints, following the parent's train/eval mode, so its own dropout,
  layer drop and time masking apply in training). Its CNN feature encoder
  stays frozen, and for the first ``freeze_steps`` training forward passes
  the whole model runs without gradients (fairseq's
  ``freeze_finetune_updates``); the count is a buffer, so a resumed run
  continues it.

Lengths and padding
-------------------
Frame counts are the model's own ``_get_feat_extract_output_lengths`` (the
convolution arithmetic: 400-sample receptive field, 320-sample stride, 20 ms
frames for the base models); utterances shorter than the receptive field get
0 frames. Outputs are zero beyond each utterance's frames. ``batching``
decides how a padded batch is run:

* ``mask``: one batched call with an attention mask. Exactly padding
  invariant (up to float rounding) for models with layer-normalized feature
  encoders (``feat_extract_norm: layer``: wav2vec 2.0 large-lv60, HuBERT and
  WavLM large): padded samples never enter a real frame's convolution, padded
  frames are zeroed before the positional convolution and masked in
  attention.
* ``loop``: one call per utterance on its own samples: padding has no effect
  at all. Needed for the base models (``feat_extract_norm: group``), whose
  first convolution's group norm normalizes over the whole padded sequence
  and which Hugging Face documents as not to be given attention masks.
* ``pad``: one batched call on the zero-padded batch without a mask
  (Hugging Face's recipe for the base models: fastest, but padding changes
  the real frames' features a little).
* ``auto`` (default): ``mask`` when the model supports it, else ``loop``.

FENT
----
With ``blank_weighting: true`` the frontend learns a second, independent
weighting of the same hidden states (``num_weightings == 2``);
:meth:`SSLFrontend.forward_weightings` returns both sums from one model run.
:class:`~ent.models.transducer.EmotionTransducer` feeds the second one to
FENT's blank/emotion branch (see :mod:`ent.nets.blank_branch`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from espnet2.asr.frontend.abs_frontend import AbsFrontend

from ent.features.layer_weighting import LayerWeightedSum
from ent.features.ssl_cache import SSLFeatureCache, file_sha1, waveform_key
from ent.utils.errors import DataError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
#: ``config.json`` model types and their ``transformers`` classes (bare models, no heads).
SSL_MODEL_CLASSES: Dict[str, str] = {
    "wav2vec2": "Wav2Vec2Model",
    "hubert": "HubertModel",
    "wavlm": "WavLMModel",
}
BATCHING_MODES: Tuple[str, ...] = ("auto", "mask", "loop", "pad")
DTYPES: Dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
WEIGHT_FILES: Tuple[str, ...] = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)
#: Parameters a checkpoint may lack (only used by training-time time masking).
_OPTIONAL_WEIGHTS = ("masked_spec_embed",)

HOW_TO_GET_WEIGHTS = (
    "download the model once on a machine with internet access, e.g. "
    "`hf download facebook/wav2vec2-base --local-dir /models/wav2vec2-base` "
    "(older huggingface_hub: `huggingface-cli download ...`; or `save_pretrained()` in Python), "
    "copy the directory here and set frontend_conf.model_dir to it "
    "(see docs/pretrained_frontends.md)"
)


def resolve_model_dir(model_dir: str) -> Path:
    """Expand ``~`` and ``$VARS`` in a model directory and check that it holds a model.

    Raises:
        FileNotFoundError: If the directory, its ``config.json`` or its
            weights are missing, with instructions to obtain them.
    """
    path = Path(os.path.expandvars(os.path.expanduser(str(model_dir))))
    where = f"'{model_dir}' ({path.absolute()})"
    if not path.is_dir():
        raise FileNotFoundError(f"pretrained model directory {where} not found: {HOW_TO_GET_WEIGHTS}")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"pretrained model directory {where} has no config.json: {HOW_TO_GET_WEIGHTS}")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise FileNotFoundError(
            f"pretrained model directory {where} has no weights (model.safetensors or pytorch_model.bin): "
            f"{HOW_TO_GET_WEIGHTS}"
        )
    return path


def load_ssl_model(
    model_dir: str,
    model_type: Optional[str] = None,
    config_overrides: Optional[Mapping[str, Any]] = None,
) -> torch.nn.Module:
    """Load a wav2vec 2.0, HuBERT or WavLM model from a local directory (never the Hub).

    Args:
        model_dir: Directory written by ``save_pretrained`` or ``hf download``.
        model_type: ``wav2vec2``, ``hubert`` or ``wavlm`` to check against
            ``config.json``; ``None``: whatever ``config.json`` says.
        config_overrides: Config attributes to replace before building the
            model (e.g. ``{layerdrop: 0.0, mask_time_prob: 0.0}``).

    Returns:
        The bare model (``Wav2Vec2Model``, ``HubertModel`` or ``WavLMModel``),
        float32, in eval mode.

    Raises:
        FileNotFoundError: If the directory or its files are missing.
        ValueError: On another model type, an unknown override, or a
            checkpoint that lacks weights of the model.
    """
    path = resolve_model_dir(model_dir)
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
    found = getattr(config, "model_type", None)
    if found not in SSL_MODEL_CLASSES:
        raise ValueError(f"{path / 'config.json'}: model_type {found!r} is not one of {sorted(SSL_MODEL_CLASSES)}")
    if model_type is not None and model_type != found:
        raise ValueError(f"{path / 'config.json'}: model_type is {found!r}, the config asks for {model_type!r}")
    for key, value in (config_overrides or {}).items():
        if not hasattr(config, key):
            raise ValueError(f"config_overrides: {found} configs have no attribute {key!r}")
        setattr(config, key, value)
    cls = getattr(transformers, SSL_MODEL_CLASSES[found])
    model, info = cls.from_pretrained(
        str(path), config=config, local_files_only=True, output_loading_info=True
    )
    missing = [k for k in info.get("missing_keys", []) if not k.endswith(_OPTIONAL_WEIGHTS)]
    if missing:
        raise ValueError(
            f"{path}: the checkpoint lacks {len(missing)} weights of a {found} model "
            f"(e.g. {sorted(missing)[:3]}); is it a {found} checkpoint?"
        )
    return model.float().eval()


class SSLFrontend(AbsFrontend):
    """A pretrained speech model whose hidden layers are summed with learned weights.

    Args:
        model_dir: Local directory of the pretrained model (``~`` and
            ``$VARS`` are expanded; relative paths are taken from the current
            directory, i.e. the recipe directory).
        model_type: Expected ``config.json`` model type (``wav2vec2``,
            ``hubert``, ``wavlm``); ``None``: any of them.
        finetune: Train the pretrained model too (its CNN feature encoder
            stays frozen). ``False``: frozen, see the module docstring.
        freeze_steps: Fine-tuning: training forward passes run without
            gradients into the pretrained model before it starts to learn.
        dtype: Compute dtype of a frozen model: ``float32``, ``float16`` or
            ``bfloat16`` (fine-tuning uses float32; use ``--use_amp`` instead).
        normalize_waveform: Normalize each waveform to zero mean and unit
            variance over its samples before the model (what the model's
            feature extractor does when ``do_normalize`` is set); ``None``:
            ``do_normalize`` from ``preprocessor_config.json`` (False without one).
        batching: ``auto``, ``mask``, ``loop`` or ``pad`` (module docstring).
        layers: Indices of the hidden states summed (0 = the transformer's
            input, L = its last layer; negative indices count from the end);
            ``None``: all of them.
        layer_norm: Layer-normalize each hidden state before the weighted sum.
        blank_weighting: Learn a second, independent weighting (FENT's
            blank/emotion branch).
        cache_dir: Read the hidden states from this cache
            (:mod:`ent.features.ssl_cache`); frozen mode only. A cache made
            with other settings is always an error.
        cache_miss: What to do for a waveform not in the cache, or a cache
            directory without a manifest: ``compute`` (with one warning) or
            ``error``.
        config_overrides: Attributes of the model's config to replace (e.g.
            ``{layerdrop: 0.0}``).
    """

    def __init__(
        self,
        model_dir: str,
        model_type: Optional[str] = None,
        finetune: bool = False,
        freeze_steps: int = 0,
        dtype: str = "float32",
        normalize_waveform: Optional[bool] = None,
        batching: str = "auto",
        layers: Optional[Sequence[int]] = None,
        layer_norm: bool = False,
        blank_weighting: bool = False,
        cache_dir: Optional[str] = None,
        cache_miss: str = "compute",
        config_overrides: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__()
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if finetune and dtype != "float32":
            raise ValueError("finetune: true needs dtype float32 (use --use_amp for mixed precision)")
        if batching not in BATCHING_MODES:
            raise ValueError(f"batching must be one of {list(BATCHING_MODES)}, got {batching!r}")
        if freeze_steps < 0:
            raise ValueError(f"freeze_steps must be >= 0, got {freeze_steps}")
        if cache_miss not in ("compute", "error"):
            raise ValueError(f"cache_miss must be 'compute' or 'error', got {cache_miss!r}")
        if cache_dir is not None and finetune:
            raise ValueError("cache_dir needs a frozen model (finetune: false)")

        self.model_dir = str(model_dir)
        self.finetune = finetune
        self.freeze_steps = int(freeze_steps)
        self.dtype_name = dtype
        self.compute_dtype = DTYPES[dtype]
        self.config_overrides = dict(config_overrides or {})
        model = load_ssl_model(model_dir, model_type, self.config_overrides)
        config = model.config
        self.model_type: str = config.model_type
        self.hidden_size: int = int(config.hidden_size)
        #: Hidden states the model returns: its input embeddings and one per layer.
        self.num_hidden_states: int = int(config.num_hidden_layers) + 1
        self.normalize_waveform = (
            _preprocessor_do_normalize(self.model_dir) if normalize_waveform is None else bool(normalize_waveform)
        )
        self.supports_mask = getattr(config, "feat_extract_norm", "group") == "layer"
        self.batching = ("mask" if self.supports_mask else "loop") if batching == "auto" else batching
        # The feature encoder's convolution arithmetic (receptive field and stride).
        receptive, stride = 1, 1
        for kernel, conv_stride in zip(config.conv_kernel, config.conv_stride):
            receptive += (kernel - 1) * stride
            stride *= conv_stride
        self.sample_rate = SAMPLE_RATE
        #: Samples of the first frame (the receptive field), as Fbank's window.
        self.window_size = receptive
        #: Samples between frames.
        self.window_shift = stride
        self.frame_shift_ms = 1000.0 * stride / SAMPLE_RATE

        self.layers: List[int] = _layer_indices(layers, self.num_hidden_states)
        self.weighting = LayerWeightedSum(len(self.layers), layer_norm=layer_norm)
        self.blank_weighting = LayerWeightedSum(len(self.layers), layer_norm=layer_norm) if blank_weighting else None
        #: 2 when the frontend also gives FENT's blank-branch weighting.
        self.num_weightings = 2 if blank_weighting else 1

        if finetune:
            _freeze_feature_encoder(model)
            self.model = model  # a submodule: trained and saved
            self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        else:
            model.requires_grad_(False)
            model.to(self.compute_dtype)
            self._frozen: Tuple[torch.nn.Module, ...] = (model,)  # deliberately not a submodule

        self.cache: Optional[SSLFeatureCache] = None
        self.cache_miss = cache_miss
        self._warned_miss = False
        if cache_dir is not None:
            if cache_miss == "compute" and not SSLFeatureCache.exists(cache_dir):
                # E.g. a packed model decoded from another folder: compute, do not fail.
                logger.warning("SSL feature cache %s not found: computing the hidden states", cache_dir)
            else:
                self.cache = SSLFeatureCache.open(cache_dir, self.cache_fingerprint())
        logger.info(
            "SSL frontend: %s from %s (%d hidden states of %d dims, %s frames), %s, dtype %s, batching %s%s",
            self.model_type, self.model_dir, self.num_hidden_states, self.hidden_size,
            f"{self.frame_shift_ms:g} ms", "fine-tuned" if finetune else "frozen", dtype, self.batching,
            f", cache {cache_dir} ({len(self.cache)} entries)" if self.cache is not None else "",
        )

    # ------------------------------------------------------------- properties
    @property
    def ssl_model(self) -> torch.nn.Module:
        """The pretrained model (a submodule only when fine-tuned)."""
        return self.model if self.finetune else self._frozen[0]

    def output_size(self) -> int:
        """Feature dimension D (the model's hidden size)."""
        return self.hidden_size

    def train(self, mode: bool = True) -> "SSLFrontend":
        """Set the training mode; a frozen pretrained model always stays in eval mode."""
        super().train(mode)
        if not self.finetune:
            self._frozen[0].eval()
        return self

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Frames for each waveform length: the model's ``_get_feat_extract_output_lengths``, at least 0.

        Args:
            num_samples: (B,) integer tensor.
        """
        lengths = self.ssl_model._get_feat_extract_output_lengths(num_samples.long())
        return torch.as_tensor(lengths, device=num_samples.device).long().clamp(min=0)

    def cache_fingerprint(self) -> Dict[str, Any]:
        """What a cache of this frontend's hidden states depends on (:mod:`ent.features.ssl_cache`)."""
        path = resolve_model_dir(self.model_dir)
        weights = {name: file_sha1(path / name) for name in WEIGHT_FILES if (path / name).is_file()}
        return {
            "model_type": self.model_type,
            "config_sha1": file_sha1(path / "config.json"),
            "weights_sha1": weights,
            "config_overrides": self.config_overrides,
            "num_hidden_states": self.num_hidden_states,
            "hidden_size": self.hidden_size,
            "dtype": self.dtype_name,
            "normalize_waveform": self.normalize_waveform,
            "window_size": self.window_size,
            "window_shift": self.window_shift,
        }

    # ---------------------------------------------------------------- forward
    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The (first) weighted sum of the hidden states of a padded batch.

        Args:
            input: (B, N) 16 kHz waveforms, padded at the end.
            input_lengths: (B,) valid samples of each waveform.

        Returns:
            feats: (B, T, D) float32, zero beyond each utterance's frames,
                ``T = max(feats_lens)``.
            feats_lens: (B,) int64 frame counts (``num_frames(input_lengths)``).
        """
        hidden, lens = self.hidden_states(input, input_lengths)
        return self.weighting(hidden), lens

    def forward_weightings(
        self, input: torch.Tensor, input_lengths: torch.Tensor
    ) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Every weighted sum of one run of the model: ``[primary, blank]`` for FENT.

        Args:
            input: (B, N) waveforms; input_lengths: (B,).

        Returns:
            feats: ``num_weightings`` tensors (B, T, D) float32; feats_lens: (B,).
        """
        hidden, lens = self.hidden_states(input, input_lengths)
        sums = [self.weighting(hidden)]
        if self.blank_weighting is not None:
            sums.append(self.blank_weighting(hidden))
        return sums, lens

    def hidden_states(
        self, input: torch.Tensor, input_lengths: torch.Tensor
    ) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """The selected hidden states of a padded batch (from the cache when there is one).

        Args:
            input: (B, N) waveforms; input_lengths: (B,) valid samples.

        Returns:
            hidden: ``len(self.layers)`` tensors (B, T, D) in the compute dtype,
                zero beyond each utterance's frames; lens: (B,) frame counts.
        """
        if input.dim() != 2 or input_lengths.dim() != 1 or input_lengths.shape[0] != input.shape[0]:
            raise ValueError(
                f"expected input (B, N) and input_lengths (B,), got {tuple(input.shape)} and "
                f"{tuple(input_lengths.shape)}"
            )
        lengths = [int(n) for n in input_lengths.tolist()]
        if any(n > input.shape[1] or n < 0 for n in lengths):
            raise ValueError(f"input_lengths {lengths} out of range for {input.shape[1]} samples")
        lens = self.num_frames(input_lengths.to(input.device))
        t_max = int(lens.max()) if lens.numel() else 0
        if self.training and self.finetune:
            self.num_updates += 1
        if t_max == 0:
            empty = input.new_zeros((input.shape[0], 0, self.hidden_size), dtype=self.compute_dtype)
            return [empty] * len(self.layers), lens
        if self.cache is not None or self.batching == "loop":
            per_utt = [self._utterance(input[b, :n], int(lens[b])) for b, n in enumerate(lengths)]
            hidden = [
                torch.nn.utils.rnn.pad_sequence([h[i] for h in per_utt], batch_first=True)
                for i in range(len(self.layers))
            ]
            return hidden, lens
        waves = self._prepare(input, input_lengths)
        mask = None
        if self.batching == "mask":
            mask = (torch.arange(input.shape[1], device=input.device)[None] < input_lengths.to(input.device)[:, None])
            mask = mask.long()
        states = self._run(waves, mask)
        valid = torch.arange(t_max, device=input.device)[None, :, None] < lens[:, None, None]
        hidden = [states[i][:, :t_max].masked_fill(~valid, 0.0) for i in self.layers]
        return hidden, lens

    def utterance_hidden_states(self, wave: torch.Tensor) -> torch.Tensor:
        """All hidden states of one waveform, computed by the model (never the cache).

        What the cache stores: ``extract_ssl_features`` calls this.

        Args:
            wave: (N,) waveform.

        Returns:
            (num_hidden_states, T, D) in the compute dtype, on the CPU.
        """
        frames = int(self.num_frames(torch.tensor([wave.numel()]))[0])
        if frames == 0:
            return torch.zeros((self.num_hidden_states, 0, self.hidden_size), dtype=self.compute_dtype)
        with torch.no_grad():
            states = self._run(self._prepare(wave[None], torch.tensor([wave.numel()], device=wave.device)), None)
        return torch.stack([s[0, :frames] for s in states]).cpu()

    # --------------------------------------------------------------- helpers
    def _utterance(self, wave: torch.Tensor, frames: int) -> List[torch.Tensor]:
        """Selected hidden states of one waveform (cache or model): each (T, D)."""
        if frames == 0:
            empty = wave.new_zeros((0, self.hidden_size), dtype=self.compute_dtype)
            return [empty] * len(self.layers)
        if self.cache is not None:
            key = waveform_key(wave)
            if key in self.cache:
                expected = (self.num_hidden_states, frames, self.hidden_size)
                states = self.cache.load(key, wave.numel(), expected).to(wave.device)
                return [states[i] for i in self.layers]
            if self.cache_miss == "error":
                raise DataError(self.cache.cache_dir, None,
                                f"waveform of {wave.numel()} samples (key {key}) is not in the SSL feature cache")
            if not self._warned_miss:
                logger.warning("%s: a waveform is not in the SSL feature cache; computing it (warned once)",
                               self.cache.cache_dir)
                self._warned_miss = True
        lens = torch.tensor([wave.numel()], device=wave.device)
        states = self._run(self._prepare(wave[None], lens), None)
        return [states[i][0, :frames] for i in self.layers]

    def _prepare(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Normalize each waveform over its own samples if configured; padding stays 0. (B, N)"""
        waves = waves.float()
        if not self.normalize_waveform:
            return waves
        valid = (torch.arange(waves.shape[1], device=waves.device)[None] < lengths.to(waves.device)[:, None]).float()
        n = valid.sum(1, keepdim=True).clamp(min=1)
        mean = (waves * valid).sum(1, keepdim=True) / n
        var = (((waves - mean) * valid) ** 2).sum(1, keepdim=True) / n
        return (waves - mean) / torch.sqrt(var + 1e-7) * valid

    def _run(self, waves: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> List[torch.Tensor]:
        """All hidden states of the model for a batch: each (B, T_full, D)."""
        model = self.ssl_model
        if not self.finetune:
            param = next(model.parameters())
            if param.device != waves.device:
                model.to(waves.device)
        learn = self.finetune and int(self.num_updates) > self.freeze_steps and torch.is_grad_enabled()
        context = contextlib.nullcontext() if learn else torch.no_grad()
        with context:
            out = model(waves.to(self.compute_dtype), attention_mask=attention_mask, output_hidden_states=True)
        states = list(out.hidden_states)
        if len(states) != self.num_hidden_states:
            raise RuntimeError(f"the model returned {len(states)} hidden states, expected {self.num_hidden_states}")
        return states

    def extra_repr(self) -> str:
        return (
            f"model_type={self.model_type}, model_dir={self.model_dir!r}, finetune={self.finetune}, "
            f"dtype={self.dtype_name}, batching={self.batching}, layers={len(self.layers)}, "
            f"num_weightings={self.num_weightings}"
        )


def _layer_indices(layers: Optional[Sequence[int]], num: int) -> List[int]:
    """Hidden-state indices in ``[0, num)`` (negative ones count from the end); ``None``: all."""
    if layers is None:
        return list(range(num))
    out = []
    for i in layers:
        if not -num <= int(i) < num:
            raise ValueError(f"layer index {i} out of range for {num} hidden states")
        out.append(int(i) % num)
    if not out or len(set(out)) != len(out):
        raise ValueError(f"layers must be distinct indices, got {list(layers)}")
    return out


def _preprocessor_do_normalize(model_dir: str) -> bool:
    """``do_normalize`` of the model's ``preprocessor_config.json`` (False without one)."""
    path = Path(os.path.expandvars(os.path.expanduser(model_dir))) / "preprocessor_config.json"
    if not path.is_file():
        return False
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("do_normalize", False))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(path, None, f"unreadable preprocessor config: {exc}") from None


def _freeze_feature_encoder(model: torch.nn.Module) -> None:
    """Freeze the CNN feature encoder (``freeze_feature_encoder`` of transformers)."""
    encoder = model.feature_extractor
    if hasattr(encoder, "_freeze_parameters"):
        encoder._freeze_parameters()
    else:  # pragma: no cover - older/other implementations
        encoder.requires_grad_(False)
