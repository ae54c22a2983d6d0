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

Streaming
---------
An encoder built with ``dynamic_chunk_training`` (causal convolution
modules) can also encode a stream chunk by chunk:
:meth:`ConformerEncoder.init_streaming_state` and
:meth:`ConformerEncoder.chunk_forward`. Each subsampling convolution keeps the
input rows it has not consumed yet (``kernel - stride`` rows of overlap, never
recomputed), each Conformer block keeps the self-attention inputs of the
frames a later chunk may attend to (at most ``num_left_chunks * chunk_size``
frames; all of them when ``num_left_chunks`` is 0) and the last
``kernel - 1`` inputs of its causal depthwise convolution. The outputs equal
those of :meth:`ConformerEncoder.forward` with the same ``chunk_size`` and
``num_left_chunks`` on the whole utterance (up to float rounding).
ESPnet's own ``chunk_forward`` is not used: it keeps its caches inside the
modules (one stream per model at a time), and its caller must feed
overlapping feature windows whose edge frames it drops; here the state is an
explicit object and every subsampled frame is computed once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from ent.utils.espnet_imports import quiet_espnet_imports

quiet_espnet_imports()

from espnet2.asr_transducer.encoder.blocks.conformer import Conformer  # noqa: E402
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

#: Input layers of :class:`ConformerEncoder`.
INPUT_LAYERS: Tuple[str, ...] = ("conv2d", "stack")


class StackedFramesInput(torch.nn.Module):
    """Subsampling by frame stacking: ``k`` consecutive frames, one linear map, LayerNorm.

    Output frame ``t`` is ``LayerNorm(W [x_{kt}; ...; x_{kt+k-1}] + b)``; the
    frames left over at the end (fewer than ``k``) are dropped. The linear map
    is written as one ``Conv2d(1, D, (k, F), stride=(k, F))`` so that the
    module has the interface of ESPnet's ``ConvInput`` (``conv``, ``output``)
    and streams with the same buffering code; it has no right context.

    Compared with the two ReLU convolutions of ``ConvInput`` it is cheaper
    (one matrix product) and its output scale is fixed by the LayerNorm: with
    ``ConvInput`` and a large learning rate the scale of the subsampled frames
    grows by orders of magnitude in the first few hundred steps (measured on
    ``mini_emo``: standard deviation 0.13 at initialisation, 27 after 30 Adam
    steps at 2e-3), which saturates what follows and stalls learning.

    Args:
        input_size: Feature dimension F.
        subsampling_factor: Frames stacked per output frame k (>= 1).
        output_size: Output dimension D.

    Shapes:
        ``forward(x: (B, T, F))`` returns ``(B, T // k, D)``.
    """

    def __init__(self, input_size: int, subsampling_factor: int, output_size: int) -> None:
        super().__init__()
        if subsampling_factor < 1:
            raise ValueError(f"subsampling_factor must be >= 1, got {subsampling_factor}")
        self.subsampling_factor = subsampling_factor
        self.conv = torch.nn.Sequential(
            torch.nn.Conv2d(1, output_size, (subsampling_factor, input_size), stride=(subsampling_factor, input_size))
        )
        self.output = torch.nn.LayerNorm(output_size)
        self.output_size = output_size

    def forward(
        self, x: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Stack and project.

        Args:
            x: Features. (B, T, F)
            mask: Ignored (kept for ``ConvInput``'s signature).

        Returns:
            Subsampled frames (B, T // k, D) and ``mask`` unchanged.
        """
        y = self.conv(x.unsqueeze(1))  # (B, D, T // k, 1)
        return self.output(y.squeeze(3).transpose(1, 2)), mask


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


@dataclass
class EncoderStreamingState:
    """Caches of one stream encoded chunk by chunk (see :meth:`ConformerEncoder.chunk_forward`).

    Attributes:
        chunk_size: Encoder frames per chunk.
        max_left_frames: Most cached frames a chunk attends to
            (``num_left_chunks * chunk_size``); 0 means all earlier frames.
        conv_inputs: Per subsampling convolution, the input rows not consumed
            yet. (B, C_i, T_i, F_i), or None before the first input.
        pending: Subsampled frames waiting for a full chunk. (B, T_p, D), or None.
        att_caches: Per Conformer block, the (normalised) self-attention
            inputs of the earlier frames a new chunk attends to. (B, L, D)
        conv_caches: Per Conformer block, the last ``kernel - 1`` inputs of
            the causal depthwise convolution. (B, D, kernel - 1)
        frames_in: Feature frames received so far.
        frames_out: Encoder frames output so far.
        finished: Whether the stream was closed (``is_final=True``).
    """

    chunk_size: int
    max_left_frames: int
    conv_inputs: List[Optional[torch.Tensor]]
    pending: Optional[torch.Tensor]
    att_caches: List[torch.Tensor]
    conv_caches: List[torch.Tensor]
    frames_in: int = 0
    frames_out: int = 0
    finished: bool = False


class ConformerEncoder(torch.nn.Module):
    """Subsampling input layer followed by Conformer blocks with relative positions.

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
        input_layer: ``conv2d``: ESPnet's ``ConvInput`` (two ReLU convolutions
            with stride); ``stack``: :class:`StackedFramesInput` (frame
            stacking, one linear map and LayerNorm; cheaper, no right context,
            and much faster to train from scratch on small data).
        subsampling_factor: Time subsampling of the input layer: 2, 4 or 6 for
            ``conv2d`` (8 is not offered: ESPnet's ConvInput silently builds
            factor 6 for it); any factor >= 1 for ``stack``.
        conv_size: Channels of the subsampling convolutions (``conv2d`` only);
            ``None`` means ``hidden_size``.
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
        input_layer: str = "conv2d",
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
        if input_layer not in INPUT_LAYERS:
            raise ValueError(f"input_layer must be one of {list(INPUT_LAYERS)}, got {input_layer!r}")
        # StackedFramesInput checks its own factor; ConvInput silently misbuilds others.
        if input_layer == "conv2d" and subsampling_factor not in SUPPORTED_SUBSAMPLING_FACTORS:
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

        self.embed: torch.nn.Module
        if input_layer == "stack":
            self.embed = StackedFramesInput(input_size, subsampling_factor, hidden_size)
        else:
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
        self.input_layer = input_layer
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
        num_left_chunks: Optional[int] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch of feature sequences.

        Args:
            feats: Features, padded with anything after each length. (B, T, F)
            feats_lens: Number of real frames of each sequence. (B,)
            chunk_size: If given, restrict self-attention to chunks of this many
                output frames (plus ``num_left_chunks`` earlier chunks) to
                simulate streaming. Otherwise full context, except in training
                with ``dynamic_chunk_training``, where a random chunk size is drawn.
            num_left_chunks: Earlier chunks visible under ``chunk_size``
                (0: all); default ``self.num_left_chunks``.

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
            left = self.num_left_chunks if num_left_chunks is None else num_left_chunks
            chunk_mask = chunk_attention_mask(x.size(1), chunk_size, left, device=x.device)
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

    def block_outputs(
        self,
        feats: torch.Tensor,
        feats_lens: torch.Tensor,
        chunk_size: Optional[int] = None,
        num_left_chunks: Optional[int] = None,
    ) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """The output of every Conformer block, for models that read the intermediate layers.

        Runs :meth:`forward` unchanged (same arguments, same masks) and
        records each block's output with forward hooks; the last entry is
        taken after the encoder's final normalisation, so it is the encoder
        output itself. A block skipped by stochastic depth (training with
        ``blockdrop_rate``) passes its input on, as in :meth:`forward`.

        Args:
            feats: Features, padded with anything after each length. (B, T, F)
            feats_lens: Number of real frames of each sequence. (B,)
            chunk_size: As in :meth:`forward`.
            num_left_chunks: As in :meth:`forward`.

        Returns:
            hidden: ``num_blocks`` tensors (B, T', D), zero at padding frames;
                ``hidden[-1]`` equals the encoder output of :meth:`forward`.
            enc_lens: Output lengths. (B,)
        """
        blocks = list(self.encoders.blocks)
        recorded: dict = {}
        handles = [self.encoders.register_forward_pre_hook(lambda _m, args: recorded.__setitem__("in", args[0]))]
        for idx, block in enumerate(blocks):
            handles.append(block.register_forward_hook(
                lambda _m, _args, out, idx=idx: recorded.__setitem__(idx, out[0])
            ))
        handles.append(self.encoders.norm_blocks.register_forward_hook(
            lambda _m, _args, out: recorded.__setitem__("out", out)
        ))
        try:
            self.forward(feats, feats_lens, chunk_size=chunk_size, num_left_chunks=num_left_chunks)
        finally:
            for handle in handles:
                handle.remove()
        enc_lens = self.subsampled_lengths(feats_lens)
        state = recorded["in"]
        pad_mask = (torch.arange(state.size(1), device=state.device).unsqueeze(0) >= enc_lens.unsqueeze(1))
        hidden: List[torch.Tensor] = []
        for idx in range(len(blocks)):
            state = recorded.get(idx, state)
            hidden.append(state)
        hidden[-1] = recorded["out"]
        return [h.masked_fill(pad_mask.unsqueeze(-1), 0.0) for h in hidden], enc_lens

    # ---------------------------------------------------------------- streaming
    @property
    def is_causal(self) -> bool:
        """Whether every Conformer convolution module is causal (needed for streaming)."""
        return all(
            isinstance(b, Conformer) and getattr(b.conv_mod, "lorder", 0) > 0
            for b in self.encoders.blocks
        )

    @property
    def frontend_lookahead(self) -> int:
        """Input frames beyond ``subsampling_factor * n`` needed for ``n`` output frames.

        The subsampling convolutions see ``receptive field - stride`` frames
        of right context (5 for factor 6, 3 for factor 4): the algorithmic
        latency a streaming encoder adds to its chunk.
        """
        receptive, stride = 1, 1
        for kernel, conv_stride, _, dilation in self._time_convs:
            receptive += dilation * (kernel - 1) * stride
            stride *= conv_stride
        return receptive - stride

    def init_streaming_state(
        self,
        chunk_size: int,
        num_left_chunks: Optional[int] = None,
        batch_size: int = 1,
        device: Optional[torch.device] = None,
    ) -> EncoderStreamingState:
        """Empty caches for encoding a new stream chunk by chunk.

        Args:
            chunk_size: Encoder frames per chunk (>= 1).
            num_left_chunks: Earlier chunks a chunk attends to (0: all);
                default ``self.num_left_chunks``. Use the value the outputs
                are compared with in :meth:`forward`.
            batch_size: Number of streams B encoded together (same lengths).
            device: Device of the caches (default: the parameters').

        Returns:
            The state to pass to :meth:`chunk_forward`.

        Raises:
            ValueError: If ``chunk_size < 1`` or the encoder's convolution
                modules are not causal (built without ``dynamic_chunk_training``).
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if not self.is_causal:
            raise ValueError(
                "this encoder's convolution modules look ahead (it was built without "
                "dynamic_chunk_training: true); chunk-wise streaming needs a streaming model"
            )
        for _, _, padding, dilation in self._time_convs:
            if padding != 0 or dilation != 1:
                raise ValueError("streaming needs subsampling convolutions without time padding or dilation")
        left = self.num_left_chunks if num_left_chunks is None else num_left_chunks
        if left < 0:
            raise ValueError(f"num_left_chunks must be >= 0, got {left}")
        param = next(self.parameters())
        device = param.device if device is None else device
        att_caches, conv_caches = [], []
        for block in self.encoders.blocks:
            att_caches.append(torch.zeros(batch_size, 0, self._hidden_size, device=device, dtype=param.dtype))
            conv_caches.append(
                torch.zeros(
                    batch_size, self._hidden_size, block.conv_mod.lorder, device=device, dtype=param.dtype
                )
            )
        return EncoderStreamingState(
            chunk_size=chunk_size,
            max_left_frames=left * chunk_size,
            conv_inputs=[None] * len(self._time_convs),
            pending=None,
            att_caches=att_caches,
            conv_caches=conv_caches,
        )

    def chunk_forward(
        self, feats: torch.Tensor, state: EncoderStreamingState, is_final: bool = False
    ) -> torch.Tensor:
        """Encode the next feature frames of a stream; ``state`` is updated in place.

        Any number of frames may be given (0 included). Encoder frames come
        out a whole chunk at a time, as soon as the frames a chunk needs have
        arrived; ``is_final=True`` also encodes the last, shorter chunk and
        closes the stream. Concatenated, the outputs equal
        ``forward(all_feats, lens, chunk_size, num_left_chunks)`` of the whole
        stream (in eval mode, up to float rounding); a stream shorter than
        ``min_input_frames`` gives no frame at all.

        Args:
            feats: The next feature frames. (B, N, F)
            state: From :meth:`init_streaming_state`.
            is_final: Whether these are the last frames of the stream.

        Returns:
            The encoder frames completed by this call. (B, M, D), M a multiple
            of ``state.chunk_size`` unless ``is_final``.

        Raises:
            ValueError: On a wrong feature shape, or if the stream is finished.
        """
        if state.finished:
            raise ValueError("this stream is finished (is_final was given); start a new state")
        if feats.dim() != 3 or feats.size(2) != self.input_size:
            raise ValueError(
                f"feats must have shape (B, N, {self.input_size}), got {tuple(feats.shape)}"
            )
        state.frames_in += feats.size(1)
        sub = self._stream_subsample(feats, state)
        if sub is not None:
            state.pending = sub if state.pending is None else torch.cat([state.pending, sub], dim=1)
        outputs: List[torch.Tensor] = []
        size = state.chunk_size
        while state.pending is not None and (
            state.pending.size(1) >= size or (is_final and state.pending.size(1) > 0)
        ):
            chunk, rest = state.pending[:, :size], state.pending[:, size:]
            state.pending = rest if rest.size(1) > 0 else None
            outputs.append(self._encode_chunk(chunk, state))
        state.finished = is_final
        if not outputs:
            return feats.new_zeros(feats.size(0), 0, self._hidden_size)
        out = torch.cat(outputs, dim=1)
        state.frames_out += out.size(1)
        return out

    def _stream_subsample(self, feats: torch.Tensor, state: EncoderStreamingState) -> Optional[torch.Tensor]:
        """Run the subsampling convolutions on new frames; None when no output frame is complete.

        Args:
            feats: New feature frames. (B, N, F)

        Returns:
            New subsampled (and projected) frames. (B, T', D), or None.
        """
        x = feats.unsqueeze(1)  # (B, 1, N, F)
        stage = -1
        for module in self.embed.conv:
            if not isinstance(module, torch.nn.Conv2d):
                x = module(x)  # the activation after a convolution (pointwise)
                continue
            stage += 1
            kept = state.conv_inputs[stage]
            buf = x if kept is None else torch.cat([kept, x], dim=2)
            kernel, stride = module.kernel_size[0], module.stride[0]
            ready = (buf.size(2) - kernel) // stride + 1 if buf.size(2) >= kernel else 0
            if ready == 0:
                state.conv_inputs[stage] = buf
                # Later stages get nothing new; keep their buffers as they are.
                return None
            state.conv_inputs[stage] = buf[:, :, ready * stride :]
            x = module(buf[:, :, : (ready - 1) * stride + kernel])
        b, c, t, f = x.size()
        x = x.transpose(1, 2).contiguous().view(b, t, c * f)
        if self.embed.output is not None:
            x = self.embed.output(x)
        return x

    def _encode_chunk(self, x: torch.Tensor, state: EncoderStreamingState) -> torch.Tensor:
        """Run the Conformer blocks on one chunk with the cached left context.

        Args:
            x: Subsampled frames of the chunk. (B, T_c, D)

        Returns:
            Encoder outputs of the chunk. (B, T_c, D)
        """
        left = state.att_caches[0].size(1)
        pos_enc = self.pos_enc(x, left_context=left)
        mask = torch.zeros(x.size(0), left + x.size(1), dtype=torch.bool, device=x.device)
        for i, block in enumerate(self.encoders.blocks):
            x, state.att_caches[i], state.conv_caches[i] = _conformer_chunk(
                block, x, pos_enc, mask, state.att_caches[i], state.conv_caches[i], state.max_left_frames
            )
        return self.encoders.norm_blocks(x)


def _conformer_chunk(
    block: Conformer,
    x: torch.Tensor,
    pos_enc: torch.Tensor,
    mask: torch.Tensor,
    att_cache: torch.Tensor,
    conv_cache: torch.Tensor,
    max_left_frames: int,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One ESPnet Conformer block on a chunk, with explicit caches.

    The same computation as ``Conformer.forward`` restricted to the chunk's
    queries: keys and values are the cached earlier frames followed by the
    chunk; the causal depthwise convolution reads its cached left inputs.

    Args:
        block: The block.
        x: Block input of the chunk. (B, T_c, D)
        pos_enc: Relative positions for ``L + T_c`` keys. (1, 2 * T_c + L - 1, D)
        mask: Key padding mask, all False. (B, L + T_c)
        att_cache: Normalised attention inputs of the L earlier frames. (B, L, D)
        conv_cache: Last ``kernel - 1`` depthwise-convolution inputs. (B, D, kernel - 1)
        max_left_frames: Bound on the new attention cache (0: none).

    Returns:
        The block output (B, T_c, D) and the new attention and convolution caches.
    """
    residual = x
    x = block.norm_macaron(x)
    x = residual + block.feed_forward_scale * block.dropout(block.feed_forward_macaron(x))

    residual = x
    x = block.norm_self_att(x)
    key = torch.cat([att_cache, x], dim=1) if att_cache.size(1) > 0 else x
    x = residual + block.dropout(
        block.self_att(x, key, key, pos_enc, mask, left_context=att_cache.size(1))
    )
    new_att_cache = key[:, -max_left_frames:] if max_left_frames > 0 else key

    residual = x
    x = block.norm_conv(x)
    x, new_conv_cache = block.conv_mod(x, cache=conv_cache)
    x = residual + block.dropout(x)

    residual = x
    x = block.norm_feed_forward(x)
    x = residual + block.feed_forward_scale * block.dropout(block.feed_forward(x))
    return block.norm_final(x), new_att_cache, new_conv_cache
