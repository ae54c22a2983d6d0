"""The options of an :class:`~ent.models.transducer.EmotionTransducer`, and the migration of old configs.

A training config (and the ``config.yaml`` that training writes beside the
checkpoints) describes the model in four groups, in ESPnet's manner of one
``*_conf`` option per part::

    model_conf:  {variant: ent | fent, neutral: neutral}         the core
    joint_conf:  JointConf   sizes and activation of the joint networks
    head_conf:   HeadConf    the utterance emotion head
    loss_conf:   LossConf    the loss terms, their weights and the lattice mode

What is not an option of the model:

* the compute back ends (transducer loss, lattice losses, fused joints): a
  run-time choice, :class:`ent.kernels.backends.ComputeBackends`;
* the encoder frame shift: derived from the frontend and the encoder.

Configs written before this layout kept all of it in ``model_conf`` (23
keys). :func:`migrate_model_config` turns such a config into the current one;
every loader builds models through :meth:`ent.tasks.ent_task.ENTTask.build_model`,
which applies it, and ``ent.bin.pack_model`` writes the migrated config. The
key map is :data:`MOVED_KEYS`; :data:`DROPPED_KEYS` are no model options any
more; :data:`REMOVED_OPTIONS` were measured worse and removed with their code
(``egs/mini_emo/ent1/RESULTS.md``): a config that sets one of them to anything
but its old default cannot be loaded by this version.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping, Optional, Tuple, Type, TypeVar, Union

_log = logging.getLogger(__name__)

#: The revision before the regrouping: models with a removed option load there.
LAST_REVISION_WITH_REMOVED_OPTIONS = "08fe8af"


@dataclass(frozen=True)
class JointConf:
    """The joint networks (``joint_conf``).

    Attributes:
        dim: Size of the joint spaces of the token (ENT) or blank and
            vocabulary (FENT) joints.
        emotion_dim: Size of the emotion joint space (None: ``dim``).
        activation: Activation of every joint network (``tanh``, ``relu``);
            the fused kernels need ``tanh``.
    """

    dim: int = 256
    emotion_dim: Optional[int] = None
    activation: str = "tanh"


@dataclass(frozen=True)
class HeadConf:
    """The utterance emotion head (``head_conf``).

    Attributes:
        dropout: Dropout before the head's classifier.
        prosody: A second expert reading the utterance's prosody functionals
            (:mod:`ent.features.prosody`; needs ``frontend_conf: {pitch: true}``),
            normalized with the speaker's statistics when they are given, else
            with global ones accumulated in training. Training fits it as a
            logistic regression before the first step and keeps it fixed.
        prosody_l2: L2 weight of that logistic regression.
        skip_mixed: Leave utterances whose emotion intervals hold more than
            one emotion (e.g. neutral, then happy) out of the head's cross
            entropy and of the prosody fit: their label names only a part of
            them. The supervised lattice loss still learns them frame by frame.
    """

    dropout: float = 0.0
    prosody: bool = False
    prosody_l2: float = 1.0e-3
    skip_mixed: bool = False


@dataclass(frozen=True)
class LossConf:
    """The training loss (``loss_conf``)::

        rnnt_weight * L_rnnt + head_weight * L_ce + lattice_weight * L_lattice
          + ctc_weight * L_ctc + predictor_lm_weight * L_lm (FENT only)

    Attributes:
        rnnt_weight: Weight of the transducer loss.
        head_weight: Weight of the utterance head's cross entropy.
        lattice_weight: Weight of the emotion lattice loss.
        ctc_weight: Weight of an auxiliary CTC loss on the encoder output (0: none).
        predictor_lm_weight: Weight of FENT's LM loss, the vocabulary predictor
            predicting the next token (0: none). Not the n-gram LM weight of
            decoding (``lm_weight`` of ``conf/decode.yaml``).
        lattice_mode: How utterances without intervals train the emotion
            lattice (:mod:`ent.losses.lattice_max_pool`): ``one``, ``full_t``,
            ``full_u`` (the ENT paper's lattice max pooling), ``mil`` or ``topk``.
        lattice_topk: Share of the lattice nodes pooled by ``topk``, in (0, 1].
        label_smoothing: Label smoothing of the head's cross entropy.
    """

    rnnt_weight: float = 1.0
    head_weight: float = 1.0
    lattice_weight: float = 1.0
    ctc_weight: float = 0.0
    predictor_lm_weight: float = 0.0
    lattice_mode: str = "one"
    lattice_topk: float = 0.5
    label_smoothing: float = 0.0


#: The keys of ``model_conf`` and their defaults.
MODEL_CONF_DEFAULTS: Dict[str, Any] = {"variant": "ent", "neutral": "neutral"}

#: Group option name -> its dataclass.
GROUPS: Dict[str, type] = {"joint_conf": JointConf, "head_conf": HeadConf, "loss_conf": LossConf}

#: Old ``model_conf`` key -> (group, key) in the current layout.
MOVED_KEYS: Dict[str, Tuple[str, str]] = {
    "joint_dim": ("joint_conf", "dim"),
    "emotion_joint_dim": ("joint_conf", "emotion_dim"),
    "joint_activation": ("joint_conf", "activation"),
    "head_dropout": ("head_conf", "dropout"),
    "head_prosody": ("head_conf", "prosody"),
    "head_prosody_l2": ("head_conf", "prosody_l2"),
    "head_skip_mixed": ("head_conf", "skip_mixed"),
    "rnnt_weight": ("loss_conf", "rnnt_weight"),
    "head_weight": ("loss_conf", "head_weight"),
    "lattice_weight": ("loss_conf", "lattice_weight"),
    "ctc_weight": ("loss_conf", "ctc_weight"),
    "lm_weight": ("loss_conf", "predictor_lm_weight"),
    "lattice_mode": ("loss_conf", "lattice_mode"),
    "lattice_topk": ("loss_conf", "lattice_topk"),
    "label_smoothing": ("loss_conf", "label_smoothing"),
}

#: Old ``model_conf`` keys that are no model options any more, and why.
DROPPED_KEYS: Dict[str, str] = {
    "frame_shift": "derived from the frontend's frame shift and the encoder's subsampling",
    "rnnt_backend": "a run-time choice (ENT_RNNT_BACKEND)",
    "lattice_backend": "a run-time choice (ENT_LATTICE_BACKEND)",
    "fused_joint": "a run-time choice (ENT_FUSED_JOINT)",
}

#: Old ``model_conf`` options removed with their code: key -> (the default that
#: still loads, why it was removed).
REMOVED_OPTIONS: Dict[str, Tuple[Any, str]] = {
    "head_pooling": ("mean", "statistics pooling was measured worse (test UA 81.5 against 84.0 %)"),
    "head_hidden_dim": (0, "a hidden layer in the head was measured worse (test UA 67.8 against 70.0 %)"),
    "head_prosody_fit": (True, "a prosody expert trained by gradient was measured worse (test UA 86.8 against 88.0 %)"),
}

C = TypeVar("C")


def group_conf(cls: Type[C], value: Union[None, C, Mapping[str, Any]], name: str) -> C:
    """A group's dataclass from a config mapping (None: the defaults).

    Raises:
        ValueError: On an unknown key, naming the group and the valid keys.
    """
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping, got {value!r}")
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(value) - set(valid))
    if unknown:
        raise ValueError(f"unknown {name} option(s) {unknown}; valid: {valid}")
    return cls(**value)


def group_defaults(name: str) -> Dict[str, Any]:
    """The default options of group ``name`` (``joint_conf``, ``head_conf``, ``loss_conf``)."""
    return asdict(GROUPS[name]())


def migrate_model_config(config: Mapping[str, Any], source: Optional[str] = None) -> Dict[str, Any]:
    """A training config (or ``config.yaml``) in the current layout, from the current or the old one.

    Keys of the old flat ``model_conf`` move to their group (:data:`MOVED_KEYS`;
    the old key wins over the same key in the group, since configs of the old
    layout carry the groups' defaults only), :data:`DROPPED_KEYS` are dropped,
    and :data:`REMOVED_OPTIONS` are dropped when they hold their old default.
    A config already in the current layout comes back unchanged (as a copy).

    Args:
        config: The whole config (``model_conf``, ``joint_conf``, ... at the top).
        source: Where it comes from, for the log message.

    Returns:
        A new dict; ``config`` is not modified.

    Raises:
        ValueError: One line (callers add the file), if the config sets a
            removed option to another value than its old default (the model
            needs ENT at revision :data:`LAST_REVISION_WITH_REMOVED_OPTIONS`).
    """
    out = copy.deepcopy(dict(config))
    model_conf = dict(out.get("model_conf") or {})
    where = f"{source}: " if source else ""
    for key, (default, why) in REMOVED_OPTIONS.items():
        if key in model_conf and model_conf[key] != default:
            raise ValueError(
                f"model_conf.{key}: {model_conf[key]!r} is no longer supported ({why}); load this model "
                f"with ENT at revision {LAST_REVISION_WITH_REMOVED_OPTIONS} (git checkout "
                f"{LAST_REVISION_WITH_REMOVED_OPTIONS})"
            )
    old = sorted(k for k in model_conf if k in MOVED_KEYS or k in DROPPED_KEYS or k in REMOVED_OPTIONS)
    if not old:
        return out
    for key in old:
        value = model_conf.pop(key)
        if key in MOVED_KEYS:
            group, new_key = MOVED_KEYS[key]
            conf = dict(out.get(group) or {})
            conf[new_key] = value
            out[group] = conf
    out["model_conf"] = model_conf
    _log.info(f"{where}migrated model_conf keys of the old layout {old} "
              "(see ent/models/model_config.py; ent.bin.pack_model writes the migrated config)")
    return out
