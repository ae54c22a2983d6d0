"""The encoder of a trained ENT/FENT experiment as a pretrained ASR encoder for the SER baselines.

Several of the hosted SER systems read "a pretrained end-to-end ASR
encoder" (CTA-RNN, the ASR side of Li et al.'s joint model, the third branch
of Zou et al.'s fusion on a corpus without wav2vec 2.0 weights). Here it is
the toolkit's own: :class:`ASREncoder` rebuilds the frontend (fbank + pitch
or a local SSL model), the feature normalization and the Conformer encoder
of an ENT experiment directory from its ``config.yaml`` and a checkpoint,
and exposes the output of every Conformer block
(:meth:`~ent.nets.encoder.ConformerEncoder.block_outputs`)::

    speech (B, N) -> frontend (B, T0, F) -> CMVN -> encoder blocks -> [(B, T, D)] * num_blocks

CMVN is the one the ENT model was trained with: per speaker
(``speaker_cmvn: true``; the batch's ``speech_cmvn`` (B, 2, F[+K]), of which
the first F columns are used) or global (``normalize_conf``). A batch without
``speech_cmvn`` for a per-speaker model falls back to the global statistics,
with one warning. The predictor, joints and heads of the ENT model are not
built; its CTC layer (``ctc_lin``, when trained with ``ctc_weight > 0``) is
kept for models that start an ASR branch from it.

Frozen (the default), nothing of it is trained and it always runs in eval
mode (no dither, no VTLP, no dropout), under ``torch.no_grad()``. It stays
a submodule, so its weights are saved with the SER model and follow
``.to(device)``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import yaml

from ent.features.cmvn import apply_cmvn, build_global_cmvn
from ent.features.fbank import Fbank
from ent.features.ssl import SSLFrontend
from ent.nets.encoder import ConformerEncoder
from ent.utils.errors import DataError

PathLike = Union[str, Path]

#: The checkpoint an ENT recipe selects on dev (ESPnet's average of the best valid losses).
DEFAULT_CHECKPOINT = "valid.loss.ave.pth"


def resolve_experiment_file(path: PathLike, exp_dir: Path, config_file: Path) -> Path:
    """Find a file named in an experiment's config.

    Tried in order: as given (relative to the current directory), relative
    to the recipe directory the experiment was trained in (``exp_dir/../..``,
    where the recipe wrote its relative paths), inside ``exp_dir``, and its
    base name inside ``exp_dir`` (a packed model).

    Raises:
        DataError: If none exists.
    """
    path = Path(os.path.expandvars(os.path.expanduser(str(path))))
    candidates = [path, exp_dir.parent.parent / path, exp_dir / path, exp_dir / path.name]
    for cand in candidates:
        if cand.exists():
            return cand
    raise DataError(config_file, None, f"'{path}' not found (looked in ., {exp_dir.parent.parent} and {exp_dir})")


def pretrained_acoustic_encoder(
    ent_dir: Optional[PathLike],
    ssl_conf: Optional[Mapping[str, Any]],
    checkpoint: str = DEFAULT_CHECKPOINT,
    finetune: bool = False,
    role: str = "acoustic encoder",
) -> Tuple[Optional["ASREncoder"], Optional[SSLFrontend]]:
    """The pretrained encoder of a SER model that reads either an ENT encoder or an SSL model.

    Args:
        ent_dir: A trained ENT/FENT experiment directory (:meth:`ASREncoder.from_experiment`).
        ssl_conf: :class:`~ent.features.ssl.SSLFrontend` options (a local wav2vec 2.0 / HuBERT / WavLM).
        checkpoint: Checkpoint file in ``ent_dir``.
        finetune: Train the ENT encoder (see :class:`ASREncoder`).
        role: What the encoder is to the model, for the error message.

    Returns:
        ``(ASREncoder, None)`` or ``(None, SSLFrontend)``; either has ``output_size()``.

    Raises:
        ValueError: If neither or both of ``ent_dir`` and ``ssl_conf`` are given.
    """
    if (ent_dir is None) == (ssl_conf is None):
        raise ValueError(f"give exactly one {role}: ent_dir (an ENT experiment) or ssl_conf "
                         "(a local wav2vec 2.0 / HuBERT / WavLM)")
    if ent_dir is not None:
        return ASREncoder.from_experiment(ent_dir, checkpoint, finetune=finetune), None
    return None, SSLFrontend(**dict(ssl_conf))


class ASREncoder(torch.nn.Module):
    """Frontend, CMVN and Conformer encoder of an ENT/FENT model, with its per-block outputs.

    Args:
        frontend: ``(speech (B, N), lens) -> (feats (B, T0, F), lens)``.
        normalize: Global CMVN layer, or None.
        encoder: The Conformer encoder.
        speaker_cmvn: Whether the model was trained with per-speaker CMVN
            (then the batch's ``speech_cmvn`` normalizes the features).
        ctc_lin: The ENT model's CTC layer (D -> V), or None.
        vocab_size: V, the ENT model's tokens (blank included).
        finetune: Train the encoder (and frontend parameters) too; False:
            frozen (module docstring).
    """

    def __init__(
        self,
        frontend: torch.nn.Module,
        normalize: Optional[torch.nn.Module],
        encoder: ConformerEncoder,
        speaker_cmvn: bool = False,
        ctc_lin: Optional[torch.nn.Linear] = None,
        vocab_size: Optional[int] = None,
        finetune: bool = False,
    ) -> None:
        super().__init__()
        self.frontend = frontend
        self.normalize = normalize
        self.encoder = encoder
        self.speaker_cmvn = bool(speaker_cmvn)
        self.ctc_lin = ctc_lin
        self.vocab_size = vocab_size
        self.finetune = bool(finetune)
        self._warned_global = False
        if not self.finetune:
            self.requires_grad_(False)
            super().train(False)

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_experiment(
        cls, exp_dir: PathLike, checkpoint: str = DEFAULT_CHECKPOINT, finetune: bool = False
    ) -> "ASREncoder":
        """Build and load the encoder of a trained ENT/FENT experiment directory.

        Args:
            exp_dir: The experiment directory (``config.yaml`` and ``checkpoint``).
            checkpoint: Checkpoint file name inside ``exp_dir`` (or a path).
            finetune: See the class.

        Raises:
            DataError: If a file is missing, or the config or checkpoint does
                not give an encoder (naming the file).
        """
        exp_dir = Path(exp_dir)
        config_file = exp_dir / "config.yaml"
        ckpt = Path(checkpoint) if Path(checkpoint).is_file() else exp_dir / checkpoint
        for path in (config_file, ckpt):
            if not path.is_file():
                raise DataError(path, None, "not found (is this a trained ENT experiment directory?)")
        with open(config_file, encoding="utf-8") as fh:
            args = yaml.safe_load(fh) or {}
        frontend_name = args.get("frontend") or "fbank"
        frontend_conf = dict(args.get("frontend_conf") or {})
        stats = (args.get("normalize_conf") or {}).get("stats_file")
        if stats and frontend_name == "fbank":
            stats = resolve_experiment_file(stats, exp_dir, config_file)
        if frontend_name == "ssl" and frontend_conf.get("model_dir"):
            frontend_conf["model_dir"] = str(resolve_experiment_file(frontend_conf["model_dir"], exp_dir, config_file))
        try:
            if frontend_name == "fbank":
                frontend: torch.nn.Module = Fbank(**frontend_conf)
            elif frontend_name == "ssl":
                if frontend_conf.get("blank_weighting"):
                    raise ValueError("a FENT model with a blank-branch layer weighting is not supported")
                frontend_conf.pop("cache_dir", None)
                frontend = SSLFrontend(**frontend_conf)
            else:
                raise ValueError(f"unknown frontend {frontend_name!r}")
            normalize = None
            if stats and frontend_name == "fbank":
                normalize = build_global_cmvn(stats)
            encoder = ConformerEncoder(input_size=frontend.output_size(), **(args.get("encoder_conf") or {}))
        except (TypeError, ValueError) as exc:
            raise DataError(config_file, None, f"cannot build the encoder from this config: {exc}") from exc

        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        ctc_lin, vocab_size = None, None
        if "ctc_lin.weight" in state:
            vocab_size, dim = state["ctc_lin.weight"].shape
            ctc_lin = torch.nn.Linear(dim, vocab_size)
        elif "joint.lin_out.weight" in state:
            vocab_size = int(state["joint.lin_out.weight"].shape[0])
        elif "vocab_joint.lin_out.weight" in state:
            vocab_size = int(state["vocab_joint.lin_out.weight"].shape[0]) + 1
        model = cls(frontend, normalize, encoder, speaker_cmvn=bool(args.get("speaker_cmvn", False)),
                    ctc_lin=ctc_lin, vocab_size=vocab_size, finetune=finetune)
        own = model.state_dict()
        subset = {k: v for k, v in state.items() if k in own}
        missing = sorted(k for k in own if k not in subset and not k.startswith("normalize."))
        try:
            if missing:
                raise RuntimeError(f"missing keys {missing[:3]}{'...' if len(missing) > 3 else ''}")
            model.load_state_dict(subset, strict=False)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise DataError(ckpt, None, f"does not fit the encoder of {config_file.name}: {first}") from exc
        logging.info(
            f"ASR encoder from {ckpt}: {frontend_name} frontend, {encoder.encoders.blocks.__len__()} blocks of "
            f"{encoder.output_size()} dims, {'per-speaker' if model.speaker_cmvn else 'global'} CMVN, "
            f"{'fine-tuned' if finetune else 'frozen'}"
        )
        return model

    # -------------------------------------------------------------- properties
    @property
    def num_blocks(self) -> int:
        """Number of Conformer blocks (the hidden states :meth:`forward` returns)."""
        return len(self.encoder.encoders.blocks)

    def output_size(self) -> int:
        """D, the dimension of every block output."""
        return self.encoder.output_size()

    @property
    def frame_shift_ms(self) -> float:
        """Milliseconds between encoder frames."""
        return float(self.frontend.frame_shift_ms) * self.encoder.subsampling_factor

    def min_samples(self) -> int:
        """Fewest samples that give one encoder frame."""
        window = int(getattr(self.frontend, "window_size", 0))
        shift = int(getattr(self.frontend, "window_shift", 1))
        return window + (self.encoder.min_input_frames - 1) * shift

    def train(self, mode: bool = True) -> "ASREncoder":
        """Set the training mode; a frozen encoder always stays in eval mode."""
        return super().train(mode and self.finetune)

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        speech_cmvn: Optional[torch.Tensor] = None,
        layers: Optional[Sequence[int]] = None,
    ) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Block outputs of a padded batch.

        Args:
            speech: (B, N) 16 kHz waveforms, zero padded.
            speech_lengths: (B,) samples.
            speech_cmvn: (B, 2, F[+K]) per-speaker statistics, or None.
            layers: 1-based block numbers to return (negative: from the end);
                None: all blocks.

        Returns:
            hidden: one (B, T, D) tensor per requested block, zero at padding
                frames; enc_lens: (B,) frames.
        """
        with torch.set_grad_enabled(self.finetune and torch.is_grad_enabled()):
            feats, feats_lens = self.frontend(speech, speech_lengths)
            feats = self.normalize_feats(feats, feats_lens, speech_cmvn)
            hidden, enc_lens = self.encoder.block_outputs(feats, feats_lens)
        if layers is not None:
            hidden = [hidden[i - 1 if i > 0 else i] for i in self.check_layers(layers)]
        return hidden, enc_lens

    def check_layers(self, layers: Sequence[int]) -> List[int]:
        """Validate 1-based (or negative) block numbers.

        Raises:
            ValueError: If one is 0 or out of range.
        """
        out = []
        for i in layers:
            if i == 0 or not -self.num_blocks <= int(i) <= self.num_blocks:
                raise ValueError(f"layer {i} out of range: the encoder has blocks 1..{self.num_blocks}")
            out.append(int(i))
        return out

    def normalize_feats(
        self, feats: torch.Tensor, feats_lens: torch.Tensor, speech_cmvn: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """CMVN as the ENT model was trained: per speaker, else global (else none).

        Args:
            feats: (B, T0, F); feats_lens: (B,); speech_cmvn: (B, 2, F[+K]) or None.

        Returns:
            (B, T0, F) normalized features.
        """
        if self.speaker_cmvn and speech_cmvn is not None:
            return apply_cmvn(feats, feats_lens, speech_cmvn[..., : feats.size(-1)])
        if self.speaker_cmvn and not self._warned_global:
            logging.warning("the ASR encoder was trained with per-speaker CMVN but the batch has no "
                            "speech_cmvn: using the global statistics")
            self._warned_global = True
        if self.normalize is not None:
            feats, _ = self.normalize(feats, feats_lens)
        return feats
