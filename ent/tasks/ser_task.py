"""The SER training task: the field's utterance emotion classifiers, trained like ENT.

ESPnet's ``AbsTask`` wired to the same data layer as :class:`~ent.tasks.ent_task.ENTTask`
(Kaldi-style data dirs, the recipe's token list, batches by a frame budget,
optional per-speaker CMVN statistics given to the model as ``speech_cmvn``),
so that a baseline trains on the same splits as ENT/FENT, with the same
dev-only model selection (``best_model_criterion``) and averaging of the n
best checkpoints (``keep_nbest_models``) by ESPnet's Trainer.

A SER config names the model and its constructor options::

    model: attention_fcn          # a key of ent.models.ser.SER_MODELS
    model_conf: {n_mels: 64, ...}
    optim: adam
    ...

``emotions`` come from the task (``--emotions``). A constructor that takes
``vocab_size`` gets the token list's size unless ``model_conf`` sets it.
``python -m ent.bin.train_ser --print_config`` prints every option.
"""

from __future__ import annotations

import argparse
import inspect
import logging
from typing import Tuple

from ent.utils.espnet_imports import quiet_espnet_imports

quiet_espnet_imports()

from espnet2.utils.nested_dict_action import NestedDictAction  # noqa: E402
from espnet2.utils.types import str2bool, str_or_none  # noqa: E402

from ent.data.emotions import parse_emotion_list  # noqa: E402
from ent.features.fbank import Fbank  # noqa: E402
from ent.models.ser import SER_MODELS, ser_model_class  # noqa: E402
from ent.models.ser.abs_ser_model import AbsSERModel  # noqa: E402
from ent.tasks.ent_task import ENTTask, add_data_arguments  # noqa: E402
from ent.text.tokenizer import Tokenizer  # noqa: E402
from ent.utils.errors import DataError  # noqa: E402


class SERTask(ENTTask):
    """Utterance emotion recognition with a baseline of :data:`ent.models.ser.SER_MODELS`."""

    class_choices_list = []

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the SER options (data, tokens, model) to ESPnet's parser."""
        required = parser.get_default("required")
        required += ["token_dir", "train_data_dir", "valid_data_dir", "model"]
        group = parser.add_argument_group("SER data")
        add_data_arguments(group, token_help="token list dir (ent.bin.train_tokenizer): the batch's text tokens")
        group.add_argument("--speaker_cmvn", type=str2bool, default=False,
                           help="give every utterance the fbank mean and std of its speaker (utt2spk) "
                                "in its set as speech_cmvn (B, 2, F); decoding computes them the same way")
        group.add_argument("--speaker_cmvn_conf", action=NestedDictAction, default=dict(),
                           help="ent.features.fbank.Fbank options of the --speaker_cmvn statistics "
                                "(e.g. {n_mels: 80, pitch: true})")
        group = parser.add_argument_group("SER model")
        group.add_argument("--model", type=str_or_none, default=None,
                           help=f"the baseline: one of {', '.join(sorted(SER_MODELS))}")
        group.add_argument("--model_conf", action=NestedDictAction, default=dict(),
                           help="the model's constructor options (see its class docstring)")

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech",) if inference else ("speech", "emotion")

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("text", "speech_cmvn")

    @classmethod
    def speaker_cmvn_frontend(cls, args: argparse.Namespace) -> Fbank:
        """The fbank whose per-speaker statistics ``--speaker_cmvn`` gives the model."""
        return Fbank(**(getattr(args, "speaker_cmvn_conf", None) or {}))

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> AbsSERModel:
        """Build the baseline named by ``--model`` with ``--model_conf``.

        Raises:
            DataError: On an unknown model or a bad option (naming the config).
        """
        config = getattr(args, "config", None)
        try:
            model_class = ser_model_class(args.model)
        except ValueError as exc:
            raise DataError(config, None, f"model: {exc}") from exc
        model_conf = dict(args.model_conf or {})
        for key in ("emotions",):
            if key in model_conf:
                raise DataError(config, None, f"model_conf: '{key}' is set by the task (--emotions)")
        params = inspect.signature(model_class.__init__).parameters
        if "vocab_size" in params and "vocab_size" not in model_conf:
            model_conf["vocab_size"] = Tokenizer.from_dir(args.token_dir).vocab_size
        try:
            model = model_class(emotions=parse_emotion_list(args.emotions), **model_conf)
        except (TypeError, ValueError) as exc:  # an unknown or bad option: one line naming the config
            raise DataError(config, None, f"model_conf of {args.model}: {exc}") from exc
        n_params = sum(p.numel() for p in model.parameters())
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logging.info(f"{args.model} ({model_class.__name__}): {n_params} parameters, {n_train} trained")
        return model
