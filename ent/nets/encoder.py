"""Conformer encoder built from ESPnet's ``espnet2.asr_transducer`` blocks.

The layers (conv2d subsampling, relative positional encoding, Conformer
blocks, final normalisation) are ESPnet's own, and the parameter names follow
ESPnet's ``espnet2.asr_transducer.encoder.encoder.Encoder`` (``embed.*``,
``encoders.blocks.N.*``, ``encoders.norm_blocks.*``). What differs is the
padding mask: ESPnet's encoder cuts the input mask to the subsampled length
instead of subsampling it, so a short utterance batched with longer ones
attends to padding frames and reports a wrong length. Here the subsampled
lengths are computed exactly from the kernel/stride arithmetic of the
subsampling convolutions and the mask is built from them, so padding never
changes the outputs at real frames (in eval mode; in training mode the
BatchNorm of the Conformer convolution module sees padding in its batch
statistics, as in ESPnet).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from ent.utils.espnet_imports import quiet_espnet_imports

quiet_espnet_imports()

from espnet2.asr_transducer.encoder.blocks.conv_input import ConvInput  # noqa: E402
from espnet2.asr_transducer.encoder.building import (  # noqa: E402
    build_conformer_block,
    build_main_parameters,
    build_positional_encoding,
)
from espnet2.asr_transducer.encoder.modules.multi_blocks import MultiBlocks  # noqa: E402
from espnet2.asr_transducer.utils import get_convinput_module_parameters  # noqa: E402

#: Subsampling factors of ESPnet's (non-VGG) ``ConvInput``. Any other factor,
#: 8 included, is silently built as factor 6 by ESPnet, so it is refused here.
SUPPORTED_SUBSAMPLING_FACTORS: Tuple[int, ...] = (2, 4, 6)


def conv_output_length(
    lengths: torch.Tensor, kernel_size: int, stride: int, padding: int = 0, dilation: int = 1
) -> torch.Tensor:
    """Number of output frames of a 1-D (time-axis) convolution, clamped at 0.

    Args:
        lengths: Input lengths. (B,)
        kernel_size: Kernel size along time.
        stride: Stride along time.
        padding: Zero padding on each side along time.
        dilation: Dilation along time.

    Returns:
        Output lengths ``floor((L + 2p - d(k-1) - 1) / s) + 1``, at least 0. (B,)
    """
    span = dilation * (kernel_size - 1) + 1
    out = torch.div(lengths + 2 * padding - span, stride, rounding_mode="floor") + 1
    return out.clamp(min=0)


def chunk_attention_mask(
    size: int, chunk_size: int, num_left_chunks: int = 0, device: Optional[torch.device] = None
) -> torch.Tensor:
    """Mask that keeps self-attention within the current and earlier chunks.

    Frame ``i`` may attend to frame ``j`` when ``chunk(j) <= chunk(i)`` and, if
    ``num_left_chunks > 0``, ``chunk(j) >= chunk(i) - num_left_chunks``, where
    ``chunk(i) = i // chunk_size``.

    Args:
        size: Number of (subsampled) frames.
        chunk_size: Frames per chunk (>= 1).
        num_left_chunks: Earlier chunks visible to a frame; 0 means all.
        device: Device of the mask.

    Returns:
        Boolean mask, True where attention is NOT allowed (ESPnet convention). (size, size)
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chunk = torch.arange(size, device=device) // chunk_size
    query, key = chunk.unsqueeze(1), chunk.unsqueeze(0)
    allowed = key <= query
    if num_left_chunks > 0:
        allowed &= key >= query - num_left_chunks
    return ~allowed


class ConformerEncoder(torch.nn.Module):
    """Conv2d subsampling followed by Conformer blocks with relative positions.

    Built from YAML-style keyword arguments (``encoder_conf``); every key is
    optional. The defaults give a 12-block, 256-dim, 4-head Conformer with
    subsampling 4.

    Args:
        input_size: Feature dimension F of the input (80 for the fbank features).
        num_blocks: Number of Conformer blocks.
        hidden_size: Model dimension D of the blocks, which is also the output size.
        linear_size: Hidden size of the (macaron) position-wise feed-forward modules.
        heads: Self-attention heads (must divide ``hidden_size``).
        conv_mod_kernel_size: Depthwise kernel size of the Conformer convolution
            module (odd).
        subsampling_factor: Time subsampling of the conv2d input block: 2, 4 or 6.
            (8 is not offered: ESPnet's ConvInput silently builds factor 6 for it.)
        conv_size: Channels of the subsampling convolutions; ``None`` means
            ``hidden_size``.
        dropout_rate: Dropout on the residual branches of each Conformer block.
        att_dropout_rate: Dropout on the attention weights.
        pos_wise_dropout_rate: Dropout inside the feed-forward modules.
        pos_enc_dropout_rate: Dropout on the relative positional encodings.
        pos_enc_max_len: Initial length of the positional encoding table (grows
            on demand).
        pos_wise_act_type: Activation of the feed-forward modules (ESPnet names:
            ``swish``, ``relu``, ``mish``, ``tanh``, ...).
        conv_mod_act_type: Activation of the convolution module.
        norm_type: Normalisation of the blocks: ``layer_norm``, ``rms_norm``,
            ``scale_norm`` or ``basic_norm``.
        simplified_att_score: Use the simplified relative attention score
            (icefall pull 458) instead of Transformer-XL's.
        blockdrop_rate: Stochastic depth: maximum probability of skipping a
            block in training (increases linearly with depth).
        dynamic_chunk_training: Train with random attention chunks (for a later
            streaming model); also makes the convolution modules causal.
        short_chunk_threshold: Dynamic chunk training: a drawn chunk size above
            this fraction of the utterance means full context.
        short_chunk_size: Dynamic chunk training: otherwise the chunk size is
            drawn in ``[1, short_chunk_size]``.
        num_left_chunks: Chunks to the left visible to a frame under a chunk
            mask; 0 means all.

    Shapes:
        ``forward(feats: (B, T, F), feats_lens: (B,))`` returns
        ``enc_out: (B, T', D)`` and ``enc_lens: (B,)``, with
        ``enc_lens == subsampled_lengths(feats_lens)`` and
        ``T' == subsampled_lengths(T)``. Outputs at padding frames are zero.
    """

    def __init__(
        self,
        input_size: int,
        *,
        num_blocks: int = 12,
        hidden_size: int = 256,
        linear_size: int = 1024,
        heads: int = 4,
        conv_mod_kernel_size: int = 31,
        subsampling_factor: int = 4,
        conv_size: Optional[int] = None,
        dropout_rate: float = 0.1,
        att_dropout_rate: float = 0.1,
        pos_wise_dropout_rate: float = 0.1,
        pos_enc_dropout_rate: float = 0.0,
        pos_enc_max_len: int = 5000,
        pos_wise_act_type: str = "swish",
        conv_mod_act_type: str = "swish",
        norm_type: str = "layer_norm",
        simplified_att_score: bool = False,
        blockdrop_rate: float = 0.0,
        dynamic_chunk_training: bool = False,
        short_chunk_threshold: float = 0.75,
        short_chunk_size: int = 25,
        num_left_chunks: int = 0,
    ) -> None:
        super().__init__()
        if subsampling_factor not in SUPPORTED_SUBSAMPLING_FACTORS:
            raise ValueError(
                f"subsampling_factor must be one of {list(SUPPORTED_SUBSAMPLING_FACTORS)}, "
                f"got {subsampling_factor}"
            )
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        if hidden_size % heads != 0:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by heads ({heads})")
        if conv_mod_kernel_size < 1 or conv_mod_kernel_size % 2 == 0:
            raise ValueError(f"conv_mod_kernel_size must be odd, got {conv_mod_kernel_size}")

        main_params = build_main_parameters(
            pos_wise_act_type=pos_wise_act_type,
            conv_mod_act_type=conv_mod_act_type,
            pos_enc_dropout_rate=pos_enc_dropout_rate,
            pos_enc_max_len=pos_enc_max_len,
            simplified_att_score=simplified_att_score,
            norm_type=norm_type,
            blockdrop_rate=blockdrop_rate,
            dynamic_chunk_training=dynamic_chunk_training,
            short_chunk_threshold=short_chunk_threshold,
            short_chunk_size=short_chunk_size,
            num_left_chunks=num_left_chunks,
        )

        if get_convinput_module_parameters(input_size, 1, subsampling_factor, is_vgg=False)[1] < 1:
            raise ValueError(
                f"input_size {input_size} is too small for subsampling factor {subsampling_factor}"
            )
        self.embed = ConvInput(
            input_size,
            conv_size if conv_size is not None else hidden_size,
            subsampling_factor,
            vgg_like=False,
            output_size=hidden_size,
        )
        # (kernel, stride, padding, dilation) along time of each subsampling conv.
        self._time_convs: List[Tuple[int, int, int, int]] = [
            (m.kernel_size[0], m.stride[0], m.padding[0], m.dilation[0])
            for m in self.embed.conv
            if isinstance(m, torch.nn.Conv2d)
        ]

        self.pos_enc = build_positional_encoding(hidden_size, main_params)
        block_conf = {
            "hidden_size": hidden_size,
            "linear_size": linear_size,
            "heads": heads,
            "conv_mod_kernel_size": conv_mod_kernel_size,
            "dropout_rate": dropout_rate,
            "att_dropout_rate": att_dropout_rate,
            "pos_wise_dropout_rate": pos_wise_dropout_rate,
        }
        make_block = build_conformer_block(block_conf, main_params)
        self.encoders = MultiBlocks(
            [make_block() for _ in range(num_blocks)],
            hidden_size,
            norm_class=main_params["after_norm_class"],
            norm_args=main_params["after_norm_args"],
            blockdrop_rate=blockdrop_rate,
        )

        self.input_size = input_size
        self.subsampling_factor = subsampling_factor
        self.dynamic_chunk_training = dynamic_chunk_training
        self.short_chunk_threshold = main_params["short_chunk_threshold"]
        self.short_chunk_size = main_params["short_chunk_size"]
        self.num_left_chunks = main_params["num_left_chunks"]
        self._hidden_size = hidden_size

        min_frames = 1
        while int(self.subsampled_lengths(torch.tensor([min_frames]))[0]) < 1:
            min_frames += 1
        #: Fewest input frames that give one output frame.
        self.min_input_frames = min_frames

    def output_size(self) -> int:
        """Dimension D of the encoder outputs."""
        return self._hidden_size

    def subsampled_lengths(self, feats_lens: torch.Tensor) -> torch.Tensor:
        """Exact number of output frames for each input length.

        Args:
            feats_lens: Input lengths in frames. (B,) integer tensor

        Returns:
            Output lengths (0 for inputs shorter than ``min_input_frames``). (B,)
        """
        lengths = feats_lens
        for kernel, stride, padding, dilation in self._time_convs:
            lengths = conv_output_length(lengths, kernel, stride, padding, dilation)
        return lengths

    def forward(
        self,
        feats: torch.Tensor,
        feats_lens: torch.Tensor,
        chunk_size: Optional[int] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch of feature sequences.

        Args:
            feats: Features, padded with anything after each length. (B, T, F)
            feats_lens: Number of real frames of each sequence. (B,)
            chunk_size: If given, restrict self-attention to chunks of this many
                output frames (plus ``num_left_chunks`` earlier chunks) to
                simulate streaming. Otherwise full context, except in training
                with ``dynamic_chunk_training``, where a random chunk size is drawn.

        Returns:
            enc_out: Encoder outputs, zero at padding frames. (B, T', D)
            enc_lens: Output lengths. (B,)

        Raises:
            ValueError: On inconsistent shapes, or when an utterance has fewer
                than ``min_input_frames`` frames.
        """
        if feats.dim() != 3 or feats.size(2) != self.input_size:
            raise ValueError(
                f"feats must have shape (B, T, {self.input_size}), got {tuple(feats.shape)}"
            )
        if feats_lens.dim() != 1 or feats_lens.size(0) != feats.size(0):
            raise ValueError(
                f"feats_lens must have shape ({feats.size(0)},), got {tuple(feats_lens.shape)}"
            )
        if int(feats_lens.max()) > feats.size(1):
            raise ValueError(
                f"feats_lens max {int(feats_lens.max())} exceeds the padded length {feats.size(1)}"
            )
        shortest = int(feats_lens.min())
        if shortest < self.min_input_frames:
            raise ValueError(
                f"utterance of {shortest} frames is too short for the encoder "
                f"(subsampling {self.subsampling_factor} needs at least "
                f"{self.min_input_frames} frames)"
            )

        x, _ = self.embed(feats, None)
        enc_lens = self.subsampled_lengths(feats_lens)
        pad_mask = torch.arange(x.size(1), device=x.device).unsqueeze(0) >= enc_lens.unsqueeze(1)
        pos_enc = self.pos_enc(x)

        chunk_mask = None
        if chunk_size is not None:
            chunk_mask = chunk_attention_mask(
                x.size(1), chunk_size, self.num_left_chunks, device=x.device
            )
        elif self.training and self.dynamic_chunk_training:
            chunk_mask = self._random_chunk_mask(x.size(1), x.device)

        x = self.encoders(x, pos_enc, pad_mask, chunk_mask=chunk_mask)
        x = x.masked_fill(pad_mask.unsqueeze(-1), 0.0)
        return x, enc_lens

    def _random_chunk_mask(self, size: int, device: torch.device) -> Optional[torch.Tensor]:
        """Draw a chunk mask as ESPnet's dynamic chunk training does (None = full context)."""
        if size <= 1:
            return None
        chunk_size = int(torch.randint(1, size, (1,)).item())
        if chunk_size > size * self.short_chunk_threshold:
            return None
        chunk_size = (chunk_size % self.short_chunk_size) + 1
        return chunk_attention_mask(size, chunk_size, self.num_left_chunks, device=device)
