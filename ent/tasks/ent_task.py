"""The ENT training task: ESPnet's ``AbsTask`` wired to ENT's data layer and models.

ESPnet's Trainer provides checkpoints and resumption (``--resume true``),
best-model selection on the validation set and averaging of the n best
checkpoints, gradient clipping and accumulation, TensorBoard logs and
multi-GPU training. ENT supplies the model, and its own iterators: utterances
are read from Kaldi-style data dirs (no ``dump/`` copy), tokenized with the
recipe's sentencepiece model, and batched by a frame budget.

Every option lives in the YAML config (``--config``) or on the command line;
``python -m ent.bin.train --print_config`` prints them all with defaults.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ent.utils.espnet_imports import quiet_espnet_imports

quiet_espnet_imports()

from espnet2.iterators.abs_iter_factory import AbsIterFactory  # noqa: E402
from espnet2.tasks.abs_task import AbsTask  # noqa: E402
from espnet2.train.class_choices import ClassChoices  # noqa: E402
from espnet2.train.distributed_utils import DistributedOption  # noqa: E402
from espnet2.utils.nested_dict_action import NestedDictAction  # noqa: E402
from espnet2.utils.types import str2bool, str_or_none  # noqa: E402

from ent.data.datadir import DataDir  # noqa: E402
from ent.data.dataset import EmotionASRDataset, collate_espnet  # noqa: E402
from ent.data.emotions import DEFAULT_EMOTIONS, parse_emotion_list  # noqa: E402
from ent.data.distributed_sampler import DistributedBatchSampler  # noqa: E402
from ent.data.sampler import LengthBucketBatchSampler, utterance_lengths  # noqa: E402
from ent.features.cmvn import build_global_cmvn, normalized_prosody_table, speaker_cmvn  # noqa: E402
from ent.features.fbank import Fbank  # noqa: E402
from ent.features.ssl import SSLFrontend  # noqa: E402
from ent.features.specaug import build_specaug  # noqa: E402
from ent.models.model_config import (  # noqa: E402
    GROUPS,
    MODEL_CONF_DEFAULTS,
    HeadConf,
    group_conf,
    group_defaults,
    migrate_model_config,
)
from ent.models.transducer import EmotionTransducer  # noqa: E402
from ent.nets.dropout import use_fast_dropout  # noqa: E402
from ent.nets.encoder import ConformerEncoder  # noqa: E402
from ent.nets.predictor import RNNPredictor, StatelessPredictor  # noqa: E402
from ent.tasks.iter_factory import ShardedIterFactory  # noqa: E402
from ent.tasks.trainer import ENTTrainer, weights_only_init_param  # noqa: E402
from ent.text.tokenizer import Tokenizer  # noqa: E402
from ent.utils.distributed import computed_on_rank0, sync_from_rank0, world_and_rank  # noqa: E402
from ent.utils.errors import DataError  # noqa: E402

MAX_FRAMES = 4000
"""Default ``--max_frames``: 40 s of 10 ms feature frames (``mini_emo``'s longest utterances are 20-s mixes)."""


def long_filter(utt_ids: Sequence[str], lengths: Dict[str, int], max_frames: int) -> Tuple[List[str], int]:
    """The utterances of at most ``max_frames`` frames (all of them when ``max_frames`` is 0), and how many were dropped."""
    if max_frames < 0:
        raise ValueError(f"--max_frames must be >= 0 (0: no limit), got {max_frames}")
    if max_frames == 0:
        return list(utt_ids), 0
    keep = [utt for utt in utt_ids if lengths[utt] <= max_frames]
    return keep, len(utt_ids) - len(keep)


def add_data_arguments(group: Any, token_help: str = "token list dir written by ent.bin.train_tokenizer") -> None:
    """The data options every training task of the toolkit shares (data dirs, token list, emotions, batching).

    Args:
        group: An argparse argument group.
        token_help: Help text of ``--token_dir``.
    """
    group.add_argument("--train_data_dir", type=str_or_none, default=None,
                       help="Kaldi-style training data dir (wav.scp, text, utt2emo, ...)")
    group.add_argument("--valid_data_dir", type=str_or_none, default=None,
                       help="validation data dir, used for model selection (never a test set)")
    group.add_argument("--token_dir", type=str_or_none, default=None, help=token_help)
    group.add_argument("--emotions", type=str, default=",".join(DEFAULT_EMOTIONS),
                       help="emotion classes, comma separated; their order defines the ids")
    group.add_argument("--max_frames_per_batch", type=int, default=20000,
                       help="batch budget in 10 ms feature frames, padding included")
    group.add_argument("--min_frames", type=int, default=20,
                       help="utterances shorter than this many feature frames are skipped")


# fbank: on-the-fly Kaldi fbank (ent.features.fbank); ssl: a local wav2vec 2.0 /
# HuBERT / WavLM model with learned layer weights (ent.features.ssl).
frontend_choices = ClassChoices("frontend", classes=dict(fbank=Fbank, ssl=SSLFrontend), default="fbank")
encoder_choices = ClassChoices("encoder", classes=dict(conformer=ConformerEncoder), default="conformer")
predictor_choices = ClassChoices(
    "predictor", classes=dict(rnn=RNNPredictor, stateless=StatelessPredictor), default="rnn"
)


class ENTTask(AbsTask):
    """Joint ASR and emotion recognition with ENT / FENT."""

    num_optimizers: int = 1
    class_choices_list = [frontend_choices, encoder_choices, predictor_choices]
    trainer = ENTTrainer  # atomic, ordered checkpoints; weights-only resume and averaging

    @classmethod
    def main_worker(cls, args: argparse.Namespace) -> None:
        """ESPnet's main_worker, reading ``--init_param`` files weights-only (``ent.tasks.trainer``)."""
        with weights_only_init_param():
            super().main_worker(args)

    # ------------------------------------------------------------- arguments
    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add ENT's options (data, tokens, frontend, model) to ESPnet's parser."""
        required = parser.get_default("required")
        required += ["token_dir", "train_data_dir", "valid_data_dir"]
        group = parser.add_argument_group("ENT data")
        add_data_arguments(group)
        group.add_argument("--max_frames", type=int, default=MAX_FRAMES,
                           help="utterances longer than this many feature frames are skipped (one of them "
                                "would make a batch of its own whose transducer lattice may not fit in "
                                "memory); 0: no limit. The default, 40 s, is above every mini_emo utterance "
                                "(its mixes are at most 20 s)")
        group.add_argument("--use_emo_segments", type=str2bool, default=True,
                           help="train the emotion lattice with the supervised interval loss on "
                                "utterances listed in emo_segments; false: utterance labels only "
                                "(lattice max pooling everywhere, the ENT paper's weak supervision)")
        group.add_argument("--speaker_cmvn", type=str2bool, default=False,
                           help="normalize the fbank features of every utterance with the mean and "
                                "std of its speaker (utt2spk) in its data dir, instead of the global "
                                "CMVN (Kaldi's per-speaker CMVN); decoding then computes the "
                                "statistics of each decoded set the same way")

        group = parser.add_argument_group("ENT model")
        # --frontend (fbank | ssl) and --frontend_conf come from frontend_choices.
        group.add_argument("--normalize_conf", action=NestedDictAction, default=dict(),
                           help="global CMVN: {stats_file: exp/stats_fbank80/feats_stats.npz}; "
                                "empty: no normalization. Not applied with --frontend ssl")
        group.add_argument("--specaug_conf", action=NestedDictAction, default=dict(),
                           help="SpecAugment options (see ent.features.specaug); empty: none")
        group.add_argument("--blank_predictor_conf", action=NestedDictAction, default=dict(),
                           help="FENT's blank predictor (same class as --predictor); "
                                "empty: same options as --predictor_conf")
        group.add_argument("--model_conf", action=NestedDictAction, default=dict(MODEL_CONF_DEFAULTS),
                           help="the core of EmotionTransducer: variant (ent | fent) and neutral (the "
                                "neutral class); the other options are in --joint_conf, --head_conf and "
                                "--loss_conf (ent/models/model_config.py). Configs of the old layout, "
                                "with every option here, are migrated")
        group.add_argument("--joint_conf", action=NestedDictAction, default=group_defaults("joint_conf"),
                           help="joint networks: dim, emotion_dim (None: dim), activation (tanh | relu)")
        group.add_argument("--head_conf", action=NestedDictAction, default=group_defaults("head_conf"),
                           help="utterance emotion head: dropout, prosody (a prosody expert, needs "
                                "frontend_conf pitch: true), prosody_l2, skip_mixed (mixes do not train "
                                "the head)")
        group.add_argument("--loss_conf", action=NestedDictAction, default=group_defaults("loss_conf"),
                           help="loss: rnnt_weight, head_weight, lattice_weight, ctc_weight, "
                                "predictor_lm_weight (FENT's LM loss), lattice_mode (one | full_t | full_u "
                                "| mil | topk), lattice_topk, label_smoothing. The compute back ends are "
                                "no option: environment ENT_RNNT_BACKEND, ENT_LATTICE_BACKEND, "
                                "ENT_FUSED_JOINT (docs/kernels_and_benchmarks.md)")
        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)

    # ------------------------------------------------------------------ data
    @classmethod
    def build_collate_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Callable[[Sequence[Tuple[str, Dict[str, np.ndarray]]]], Tuple[List[str], Dict[str, torch.Tensor]]]:
        """ESPnet collate contract: ``(utt_ids, batch dict)``."""
        return collate_espnet

    @classmethod
    def build_preprocess_fn(cls, args: argparse.Namespace, train: bool) -> Optional[Callable]:
        """Tokenization happens in the dataset; nothing to add here."""
        return None

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech",) if inference else ("speech", "text", "emotion")

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("emo_intervals",)

    @classmethod
    def build_iter_factory(
        cls,
        args: argparse.Namespace,
        distributed_option: DistributedOption,
        mode: str,
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> AbsIterFactory:
        """Iterators over a data dir, batched by frame budget and dealt anew to the ranks every epoch.

        The length buckets are dealt by :class:`DistributedBatchSampler`:
        disjoint across ranks, reshuffled every training epoch, the same
        number per rank (no validation batch repeated). Speaker statistics
        (``--speaker_cmvn``) are computed by rank 0 and broadcast.
        """
        train = mode == "train"
        data_dir = args.train_data_dir if train else args.valid_data_dir
        tokenizer = Tokenizer.from_dir(args.token_dir)
        data = DataDir.load(data_dir, allow_empty_text=True)
        lengths = utterance_lengths(data, unit="frames")
        keep = [utt for utt in data.utt_ids if lengths[utt] >= args.min_frames]
        if len(keep) < len(lengths):
            logging.warning(
                f"[{mode}] {data_dir}: skipping {len(lengths) - len(keep)} utterances shorter "
                f"than --min_frames {args.min_frames}"
            )
        keep, too_long = long_filter(keep, lengths, getattr(args, "max_frames", MAX_FRAMES))
        if too_long:
            logging.warning(
                f"[{mode}] {data_dir}: skipping {too_long} utterances longer than --max_frames "
                f"{args.max_frames} ({args.max_frames / 100:g} s of 10 ms frames)"
            )
        if not keep:
            raise RuntimeError(f"{data_dir}: no utterance between --min_frames and --max_frames to train on")
        spk_cmvn = None
        if getattr(args, "speaker_cmvn", False):
            spk_cmvn = computed_on_rank0(speaker_cmvn, data, cls.speaker_cmvn_frontend(args),
                                         prosody=cls.head_conf(args).prosody)
        dataset = EmotionASRDataset(data, tokenizer, parse_emotion_list(args.emotions), utt_ids=keep,
                                    use_intervals=getattr(args, "use_emo_segments", True),
                                    speaker_cmvn=spk_cmvn)
        buckets = LengthBucketBatchSampler(
            {utt: lengths[utt] for utt in keep},
            max_frames_per_batch=args.max_frames_per_batch,
            max_batch_size=args.max_batch_size,  # ESPnet's option; None: no bound
            shuffle=train,
            seed=args.seed,
        )
        world, rank = world_and_rank() if distributed_option.distributed else (1, 0)
        try:
            # list(buckets): the buckets in the order of the seed, then reshuffled every epoch by the
            # sampler (one process: the batch order of every epoch as before there was a sampler)
            sampler = DistributedBatchSampler(list(buckets), num_replicas=world, rank=rank, shuffle=train,
                                              seed=args.seed, repeat_to_fill=train)
        except ValueError as exc:
            raise DataError(data_dir, None, f"[{mode}] {exc}") from None
        sizes = [len(b) for b in sampler.batches]
        logging.info(
            f"[{mode}] {data_dir}: {len(dataset)} utterances in {len(sizes)} batches "
            f"(size mean {np.mean(sizes):.1f}, min {min(sizes)}, max {max(sizes)}), {len(sampler)} per rank"
            + (f" of {world}" if world > 1 else "")
        )
        return ShardedIterFactory(
            dataset=dataset,
            sampler=sampler,
            num_iters_per_epoch=args.num_iters_per_epoch if train else None,
            seed=args.seed,
            num_workers=args.num_workers,
            collate_fn=collate_espnet,
            pin_memory=args.ngpu > 0,
            mode=mode,
        )

    @classmethod
    def build_optimizers(cls, args: argparse.Namespace, model: torch.nn.Module) -> List[torch.optim.Optimizer]:
        """ESPnet's optimizers, after fitting the prosody expert of a model with ``head_conf.prosody``.

        ESPnet calls this only when it trains, after building the model and
        before loading a checkpoint to resume from, so this is where the
        prosody expert is fitted on the training set; a resumed run fits it
        again and then loads the checkpoint's weights. In distributed training
        rank 0 fits it and the others receive it.
        """
        if getattr(model, "head_prosody", False):
            computed_on_rank0(cls.fit_prosody_expert, args, model)
            sync_from_rank0(model)
        return super().build_optimizers(args, model)

    @classmethod
    def fit_prosody_expert(cls, args: argparse.Namespace, model: EmotionTransducer) -> None:
        """Fit the prosody expert on the training utterances with a known emotion (see the model).

        With ``head_conf.skip_mixed`` utterances whose intervals hold more than
        one emotion are left out, as from the head's cross entropy.
        """
        data = DataDir.load(args.train_data_dir, allow_empty_text=True)
        emotions = list(model.emotions)
        utts = [u for u in data.utt_ids if data.utt2emo.get(u) in emotions]
        if getattr(model, "head_skip_mixed", False):  # as for the head's cross entropy
            utts = [u for u in utts if len({iv.emotion for iv in data.emotion_intervals(u)}) <= 1]
        if not utts:
            raise RuntimeError(f"{args.train_data_dir}: no utterance with a known emotion to fit the prosody expert on")
        table = normalized_prosody_table(
            data, cls.speaker_cmvn_frontend(args), per_speaker=bool(getattr(args, "speaker_cmvn", False)),
            utt_ids=utts,
        )
        prosody = torch.from_numpy(np.stack([table[u] for u in utts]))
        labels = torch.tensor([emotions.index(data.utt2emo[u]) for u in utts])
        objective = model.fit_prosody_expert(prosody, labels)
        accuracy = float((model.head.prosody(prosody.to(model.head.prosody.weight)).argmax(-1).cpu() == labels)
                         .double().mean())
        logging.info(f"prosody expert fitted on {len(utts)} utterances of {args.train_data_dir}: "
                     f"objective {objective:.4f}, training accuracy {100 * accuracy:.1f} %")

    @classmethod
    def speaker_cmvn_frontend(cls, args: argparse.Namespace) -> Fbank:
        """The fbank frontend whose features ``--speaker_cmvn`` normalizes.

        Raises:
            ValueError: If the model's frontend is not fbank.
        """
        frontend_name = getattr(args, "frontend", None) or "fbank"
        if frontend_name != "fbank":
            raise ValueError(f"--speaker_cmvn needs the fbank frontend, not '{frontend_name}'")
        return Fbank(**(args.frontend_conf or {}))

    # ----------------------------------------------------------------- model
    @classmethod
    def head_conf(cls, args: argparse.Namespace) -> HeadConf:
        """The utterance head's options of a config of either layout (:mod:`ent.models.model_config`)."""
        return group_conf(HeadConf, migrate_model_config(vars(args)).get("head_conf"), "head_conf")

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> EmotionTransducer:
        """Build ENT or FENT from the parsed options.

        A config of the old layout (every model option in ``model_conf``) is
        migrated first (:func:`~ent.models.model_config.migrate_model_config`),
        in ``args`` too, so that the ``config.yaml`` training writes is in the
        current layout.

        Raises:
            DataError: One line naming the config, on a bad model option or
                an option this version removed.
        """
        try:
            migrated = migrate_model_config(vars(args), getattr(args, "config", None))
        except ValueError as exc:
            raise DataError(getattr(args, "config", None), None, str(exc)) from exc
        for key in ("model_conf", *GROUPS):
            setattr(args, key, migrated.get(key))
        tokenizer = Tokenizer.from_dir(args.token_dir)
        vocab_size = tokenizer.vocab_size
        emotions = parse_emotion_list(args.emotions)
        frontend_name = getattr(args, "frontend", None) or "fbank"  # older configs: fbank
        frontend = frontend_choices.get_class(frontend_name)(**args.frontend_conf)
        normalize = None
        if args.normalize_conf and frontend_name == "ssl":
            # ent.sh passes the fbank CMVN statistics to every model; they do
            # not describe SSL features (the weighted sum has its own scale).
            logging.info("--frontend ssl: --normalize_conf (global CMVN of fbank features) is not applied")
        elif args.normalize_conf:
            normalize = build_global_cmvn(**args.normalize_conf)
            stats_dim = int(normalize.mean.shape[-1])
            if stats_dim != frontend.output_size():
                raise ValueError(
                    f"{args.normalize_conf.get('stats_file')} holds CMVN statistics of {stats_dim}-dim features "
                    f"but the frontend ({frontend}) gives {frontend.output_size()}: compute them for this "
                    "frontend (ent.sh --feats_type fbank_pitch for `pitch: true`, fbank otherwise)"
                )
        specaug = build_specaug(args.specaug_conf) if args.specaug_conf else None
        encoder = encoder_choices.get_class(args.encoder)(
            input_size=frontend.output_size(), **args.encoder_conf
        )
        predictor_class = predictor_choices.get_class(args.predictor)
        predictor = predictor_class(vocab_size=vocab_size, **args.predictor_conf)
        model_conf = dict(args.model_conf or {})
        blank_predictor = None
        if model_conf.get("variant", "ent") == "fent":
            conf = args.blank_predictor_conf or args.predictor_conf
            blank_predictor = predictor_class(vocab_size=vocab_size, **conf)
        try:
            model = EmotionTransducer(
                vocab_size=vocab_size,
                emotions=emotions,
                frontend=frontend,
                normalize=normalize,
                specaug=specaug,
                encoder=encoder,
                predictor=predictor,
                blank_predictor=blank_predictor,
                joint_conf=args.joint_conf,
                head_conf=args.head_conf,
                loss_conf=args.loss_conf,
                **model_conf,
            )
        except TypeError as exc:  # an unknown model_conf key
            raise DataError(getattr(args, "config", None), None,
                            f"model_conf: {exc}; valid keys: {sorted(MODEL_CONF_DEFAULTS)}") from exc
        except ValueError as exc:  # a bad option value: one line naming the config
            raise DataError(getattr(args, "config", None), None, f"model options: {exc}") from exc
        # cheaper dropout masks on the CPU (the same torch.nn.Dropout elsewhere; ent/nets/dropout.py)
        use_fast_dropout(model)
        return model

