"""Prediction networks of the transducer (the "decoder" in ESPnet's naming).

A predictor reads the previously emitted tokens and gives one vector per
prefix. Both predictors here share one interface:

* ``forward(labels: (B, U)) -> (B, U+1, D)``: the batched form used in
  training. Blank (the start symbol) is prepended, so output ``u`` has read
  ``[blank, y_1, ..., y_u]``. Padding positions of ``labels`` may hold any id;
  negative ids (``-1`` is the usual padding) are replaced by blank before the
  embedding. Outputs at ``u <= U_b`` never depend on what lies after ``y_{U_b}``.
* ``init_state(batch_size)`` and ``step(tokens: (B,), state) -> (out: (B, D),
  new_state)``: the single-step form used in greedy and beam search. Starting
  from ``init_state`` and stepping with blank, then ``y_1``, ..., reproduces
  the batched outputs.
* ``select_state(state, indices)`` and ``batch_states(states)``: reorder or
  merge the per-hypothesis states of a beam.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import torch

#: State of an :class:`RNNPredictor`: LSTM ``(h, c)``, each (num_layers, B, hidden_dim).
RNNState = Tuple[torch.Tensor, torch.Tensor]
#: State of a :class:`StatelessPredictor`: the last ``context_size`` tokens. (B, context_size)
StatelessState = torch.Tensor


def replace_padding(labels: torch.Tensor, blank_id: int) -> torch.Tensor:
    """Replace negative (padding) ids by ``blank_id``.

    Args:
        labels: Token ids. (any shape)
        blank_id: Id of the blank / start symbol.

    Returns:
        Ids with every negative entry replaced by ``blank_id``. (same shape)
    """
    return labels.masked_fill(labels < 0, blank_id)


def prepend_blank(labels: torch.Tensor, blank_id: int) -> torch.Tensor:
    """Prepend the blank (start) symbol to each label sequence.

    Args:
        labels: Token ids. (B, U)
        blank_id: Id of the blank / start symbol.

    Returns:
        ``[blank, labels]``. (B, U+1)
    """
    start = labels.new_full((labels.size(0), 1), blank_id)
    return torch.cat([start, labels], dim=1)


class Predictor(torch.nn.Module):
    """Interface shared by the prediction networks (see the module docstring)."""

    blank_id: int
    vocab_size: int

    def output_size(self) -> int:
        """Dimension D of the predictor outputs."""
        raise NotImplementedError

    def forward(self, labels: torch.Tensor) -> torch.Tensor:  # noqa: D102
        raise NotImplementedError

    def init_state(self, batch_size: int) -> Any:
        """State before any token (the start symbol is fed by the first ``step``)."""
        raise NotImplementedError

    def step(self, tokens: torch.Tensor, state: Any) -> Tuple[torch.Tensor, Any]:
        """Read one token per sequence. tokens: (B,) -> out: (B, D), new state."""
        raise NotImplementedError

    def select_state(self, state: Any, indices: torch.Tensor) -> Any:
        """Keep (or repeat) the sequences ``indices`` of a batched state. indices: (B',)"""
        raise NotImplementedError

    def batch_states(self, states: List[Any]) -> Any:
        """Concatenate batched states along the batch dimension."""
        raise NotImplementedError

    def _check_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Validate a (B, U) label tensor and replace padding ids by blank."""
        if labels.dim() != 2:
            raise ValueError(f"labels must have shape (B, U), got {tuple(labels.shape)}")
        return self._check_ids(labels)

    def _check_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Replace negative ids by blank; refuse ids >= vocab_size."""
        if ids.numel() > 0 and int(ids.max()) >= self.vocab_size:
            raise ValueError(f"token id {int(ids.max())} >= vocab_size {self.vocab_size}")
        return replace_padding(ids, self.blank_id)


class RNNPredictor(Predictor):
    """Embedding followed by an LSTM stack.

    Args:
        vocab_size: Number of tokens, blank included.
        embed_dim: Embedding size (the blank embedding is fixed at zero).
        hidden_dim: LSTM size, which is also the output size.
        num_layers: LSTM layers.
        dropout: Dropout on the embeddings, between LSTM layers and on the output.
        blank_id: Id of the blank / start symbol.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        blank_id: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= blank_id < vocab_size:
            raise ValueError(f"blank_id {blank_id} outside [0, vocab_size={vocab_size})")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.vocab_size = vocab_size
        self.blank_id = blank_id
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.embed = torch.nn.Embedding(vocab_size, embed_dim, padding_idx=blank_id)
        self.rnn = torch.nn.LSTM(
            embed_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = torch.nn.Dropout(dropout)

    def output_size(self) -> int:
        """Dimension D of the predictor outputs (``hidden_dim``)."""
        return self.hidden_dim

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        """Run over whole label sequences, blank prepended.

        Args:
            labels: Token ids; padding may be negative or any valid id. (B, U)

        Returns:
            Predictor outputs. (B, U+1, hidden_dim)
        """
        tokens = prepend_blank(self._check_labels(labels), self.blank_id)
        out, _ = self.rnn(self.dropout(self.embed(tokens)))
        return self.dropout(out)

    def init_state(self, batch_size: int) -> RNNState:
        """Zero LSTM state.

        Returns:
            ``(h, c)``, each (num_layers, batch_size, hidden_dim).
        """
        weight = self.embed.weight
        shape = (self.num_layers, batch_size, self.hidden_dim)
        zeros = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
        return zeros, zeros.clone()

    def step(self, tokens: torch.Tensor, state: RNNState) -> Tuple[torch.Tensor, RNNState]:
        """Read one token per sequence.

        Args:
            tokens: Token ids (negative means blank). (B,)
            state: ``(h, c)``, each (num_layers, B, hidden_dim).

        Returns:
            out: Predictor outputs. (B, hidden_dim)
            new_state: Updated ``(h, c)``.
        """
        tokens = replace_padding(tokens, self.blank_id)
        out, new_state = self.rnn(self.dropout(self.embed(tokens.unsqueeze(1))), state)
        return self.dropout(out.squeeze(1)), (new_state[0], new_state[1])

    def select_state(self, state: RNNState, indices: torch.Tensor) -> RNNState:
        """Index the batch dimension of ``(h, c)``. indices: (B',)"""
        return state[0].index_select(1, indices), state[1].index_select(1, indices)

    def batch_states(self, states: List[RNNState]) -> RNNState:
        """Concatenate several ``(h, c)`` states along the batch dimension."""
        return torch.cat([s[0] for s in states], dim=1), torch.cat([s[1] for s in states], dim=1)


class StatelessPredictor(Predictor):
    """Embedding and a 1-D convolution over the last ``context_size`` tokens.

    The output for a prefix depends only on its last ``context_size`` tokens
    (missing ones count as blank): ``relu(conv(embed(context)))``. With
    ``context_size == 1`` there is no convolution, only ``relu(embed(token))``.

    Args:
        vocab_size: Number of tokens, blank included.
        embed_dim: Embedding size, which is also the output size.
        context_size: Number of most recent tokens the output depends on.
        blank_id: Id of the blank / start symbol (its embedding is fixed at zero).
        dropout: Dropout on the embeddings.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 256,
        context_size: int = 2,
        blank_id: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= blank_id < vocab_size:
            raise ValueError(f"blank_id {blank_id} outside [0, vocab_size={vocab_size})")
        if context_size < 1:
            raise ValueError(f"context_size must be >= 1, got {context_size}")
        self.vocab_size = vocab_size
        self.blank_id = blank_id
        self.embed_dim = embed_dim
        self.context_size = context_size
        self.embed = torch.nn.Embedding(vocab_size, embed_dim, padding_idx=blank_id)
        self.dropout = torch.nn.Dropout(dropout)
        self.conv = (
            torch.nn.Conv1d(embed_dim, embed_dim, kernel_size=context_size, bias=False)
            if context_size > 1
            else None
        )

    def output_size(self) -> int:
        """Dimension D of the predictor outputs (``embed_dim``)."""
        return self.embed_dim

    def _contexts_to_output(self, tokens: torch.Tensor) -> torch.Tensor:
        """Outputs for sequences already left-padded with ``context_size - 1`` blanks.

        Args:
            tokens: Token ids. (B, N + context_size - 1)

        Returns:
            One output per window of ``context_size`` tokens. (B, N, embed_dim)
        """
        emb = self.dropout(self.embed(tokens))
        if self.conv is not None:
            emb = self.conv(emb.transpose(1, 2)).transpose(1, 2)
        return torch.relu(emb)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        """Run over whole label sequences, blank prepended.

        Args:
            labels: Token ids; padding may be negative or any valid id. (B, U)

        Returns:
            Predictor outputs. (B, U+1, embed_dim)
        """
        tokens = prepend_blank(self._check_labels(labels), self.blank_id)
        history = tokens.new_full((tokens.size(0), self.context_size - 1), self.blank_id)
        return self._contexts_to_output(torch.cat([history, tokens], dim=1))

    def init_state(self, batch_size: int) -> StatelessState:
        """All-blank context. Returns: (batch_size, context_size) long tensor."""
        return torch.full(
            (batch_size, self.context_size),
            self.blank_id,
            dtype=torch.long,
            device=self.embed.weight.device,
        )

    def step(
        self, tokens: torch.Tensor, state: StatelessState
    ) -> Tuple[torch.Tensor, StatelessState]:
        """Read one token per sequence.

        Args:
            tokens: Token ids (negative means blank). (B,)
            state: Last ``context_size`` tokens. (B, context_size)

        Returns:
            out: Predictor outputs. (B, embed_dim)
            new_state: Context shifted by one, ending with ``tokens``. (B, context_size)
        """
        tokens = replace_padding(tokens, self.blank_id)
        context = torch.cat([state[:, 1:], tokens.unsqueeze(1).to(state.dtype)], dim=1)
        return self._contexts_to_output(context).squeeze(1), context

    def select_state(self, state: StatelessState, indices: torch.Tensor) -> StatelessState:
        """Index the batch dimension of the context. indices: (B',)"""
        return state.index_select(0, indices)

    def batch_states(self, states: List[StatelessState]) -> StatelessState:
        """Concatenate several contexts along the batch dimension."""
        return torch.cat(states, dim=0)
