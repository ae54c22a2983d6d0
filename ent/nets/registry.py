"""Names used in YAML configs for the network building blocks.

Example::

    encoder = build("encoder", "conformer", input_size=80, **conf["encoder_conf"])
    predictor = build("predictor", "rnn", vocab_size=500, **conf["predictor_conf"])
"""

from __future__ import annotations

import inspect
from typing import Dict, List

import torch

from ent.nets.encoder import ConformerEncoder
from ent.nets.predictor import RNNPredictor, StatelessPredictor

REGISTRY: Dict[str, Dict[str, type]] = {
    "encoder": {"conformer": ConformerEncoder},
    "predictor": {"rnn": RNNPredictor, "stateless": StatelessPredictor},
}


def available(kind: str) -> List[str]:
    """Valid names for ``kind`` (``encoder`` or ``predictor``), sorted."""
    return sorted(_names(kind))


def _names(kind: str) -> Dict[str, type]:
    if kind not in REGISTRY:
        raise ValueError(
            f"unknown network kind {kind!r}; valid kinds: {', '.join(sorted(REGISTRY))}"
        )
    return REGISTRY[kind]


def build(kind: str, name: str, **conf: object) -> torch.nn.Module:
    """Build the network registered as ``kind: name`` from config keyword arguments.

    Args:
        kind: ``encoder`` or ``predictor``.
        name: Registered name, e.g. ``conformer``, ``rnn``, ``stateless``.
        **conf: Constructor arguments of the class.

    Returns:
        The constructed module.

    Raises:
        ValueError: For an unknown kind or name (listing the valid ones), or for
            config keys the class does not take (listing the valid keys).
    """
    names = _names(kind)
    if name not in names:
        raise ValueError(f"unknown {kind} {name!r}; valid {kind} names: {', '.join(sorted(names))}")
    cls = names[name]
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p != "self"]
    unknown = sorted(set(conf) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown {kind} '{name}' config key(s) {', '.join(unknown)}; "
            f"valid keys: {', '.join(valid)}"
        )
    return cls(**conf)
