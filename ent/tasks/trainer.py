"""ESPnet's Trainer, made to survive a kill at any moment and to load weights only.

:class:`ENTTrainer` runs ESPnet's training loop unchanged and changes how it
touches the disk:

- Every file is written to a temporary file and renamed into place
  (:func:`ent.utils.checkpoint_io.save_checkpoint`): a kill never leaves a
  truncated file behind.
- At the end of epoch N, ``{N}epoch.pth`` is written before ``checkpoint.pth``
  (ESPnet writes them the other way round), and the checkpoint it replaces is
  renamed to ``checkpoint.prev.pth`` (a run killed between the two renames
  resumes from it). Replacing ``checkpoint.pth`` is the moment
  epoch N counts as done: a run killed before it trains epoch N again on
  resumption, one killed after it starts at epoch N + 1.
- ``--resume true`` loads ``checkpoint.pth`` weights-only; when it is
  unreadable (a disk that filled up, a copy cut short), a warning names it,
  the file is kept as ``checkpoint.pth.bad`` and training resumes from
  ``checkpoint.prev.pth``, one epoch earlier. When neither loads, training
  stops with a one-line error.
- Averaging the n best epochs (``valid.loss.ave.pth``) uses the epoch files
  that are on disk and load: a missing or unreadable ``{N}epoch.pth`` is
  skipped with a warning and the next best epoch takes its place.

ESPnet's ``Trainer.run`` saves and averages inline, through its modules'
``torch`` and ``average_nbest_models`` names. While :meth:`ENTTrainer.run`
runs, those names in ``espnet2.train.trainer`` and
``espnet2.main_funcs.average_nbest_models`` point to stand-ins that do the
above (and are restored afterwards); ESPnet's files are not modified.
:func:`weights_only_init_param` does the same for ``--init_param``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Union

import torch

from ent.utils.espnet_imports import quiet_espnet_imports

quiet_espnet_imports()

import espnet2.main_funcs.average_nbest_models as espnet_average  # noqa: E402
import espnet2.torch_utils.load_pretrained_model as espnet_pretrained  # noqa: E402
import espnet2.train.trainer as espnet_trainer  # noqa: E402
from espnet2.train.reporter import Reporter  # noqa: E402
from espnet2.train.trainer import Trainer  # noqa: E402

from ent.utils.checkpoint_io import load_checkpoint, save_checkpoint  # noqa: E402
from ent.utils.errors import DataError  # noqa: E402

PathLike = Union[str, Path]

CHECKPOINT = "checkpoint.pth"
#: The checkpoint of the epoch before, kept when ``checkpoint.pth`` is replaced.
PREVIOUS_CHECKPOINT = "checkpoint.prev.pth"
#: Where an unreadable ``checkpoint.pth`` is moved when resuming falls back.
BAD_CHECKPOINT = "checkpoint.pth.bad"
EPOCH_FILE = re.compile(r"(\d+)epoch\.pth")
#: Temporary files of :func:`ent.utils.fileio.atomic_write` and of
#: :func:`_copy_atomic`, as a kill leaves them.
_TEMPORARY = re.compile(r"\..+\.pth\.[^/]+\.tmp")


class ENTTrainer(Trainer):
    """ESPnet's Trainer with atomic, ordered checkpoints and weights-only loading (see the module doc)."""

    @classmethod
    def resume(
        cls,
        checkpoint: PathLike,
        model: torch.nn.Module,
        reporter: Reporter,
        optimizers: Sequence[torch.optim.Optimizer],
        schedulers: Sequence[Any],
        scaler: Optional[Any],
        ngpu: int = 0,
        strict: bool = True,
    ) -> None:
        """Restore the training state from ``checkpoint`` (or the previous one when it is unreadable).

        Raises:
            DataError: If no checkpoint loads, or the one that loads does not
                fit the model or optimizers being trained (a changed config).
        """
        map_location = f"cuda:{torch.cuda.current_device()}" if ngpu > 0 else "cpu"
        states, used = load_resume_state(Path(checkpoint), map_location, repair=_is_rank0())
        try:
            model.load_state_dict(states["model"], strict=strict)
            reporter.load_state_dict(states["reporter"])
            for optimizer, state in zip(optimizers, states["optimizers"]):
                optimizer.load_state_dict(state)
            for scheduler, state in zip(schedulers, states["schedulers"]):
                if scheduler is not None:
                    scheduler.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(used, None, f"does not fit the model and optimizer being trained (was the config "
                                        f"changed?): {first}") from None
        if scaler is not None:
            if states.get("scaler") is None:
                logging.warning(f"{used}: no GradScaler state; the scaler starts afresh")
            else:
                scaler.load_state_dict(states["scaler"])
        logging.info(f"The training was resumed using {used} (end of epoch {reporter.get_epoch()})")

    @classmethod
    def run(cls, model: torch.nn.Module, optimizers: Sequence[torch.optim.Optimizer], schedulers: Sequence[Any],
            train_iter_factory: Any, valid_iter_factory: Any, plot_attention_iter_factory: Any,
            trainer_options: Any, distributed_option: Any) -> None:
        """ESPnet's training loop with the file handling of this module."""
        output_dir = Path(trainer_options.output_dir)
        is_writer = not distributed_option.distributed or distributed_option.dist_rank == 0
        if is_writer:
            remove_temporaries(output_dir)
            if trainer_options.resume:
                restore_missing_checkpoint(output_dir)
        if distributed_option.distributed and torch.distributed.is_initialized():
            torch.distributed.barrier()  # the other ranks look for checkpoint.pth once rank 0 has restored it
        writer = CheckpointWriter(output_dir, trust_existing=bool(trainer_options.resume))
        with _replaced(espnet_trainer, "torch", _TorchFiles(writer.save)), \
                _replaced(espnet_trainer, "average_nbest_models", average_available_models):
            super().run(
                model=model, optimizers=optimizers, schedulers=schedulers,
                train_iter_factory=train_iter_factory, valid_iter_factory=valid_iter_factory,
                plot_attention_iter_factory=plot_attention_iter_factory,
                trainer_options=trainer_options, distributed_option=distributed_option,
            )


def load_resume_state(checkpoint: Path, map_location: Any = "cpu",
                      repair: bool = True) -> "tuple[Dict[str, Any], Path]":
    """Load ``checkpoint``, else the previous checkpoint beside it (with a warning).

    When the previous checkpoint is used and ``repair`` is set (the process
    that writes checkpoints: rank 0), the unreadable one is moved to
    ``checkpoint.pth.bad`` and ``checkpoint.pth`` becomes a copy of the
    previous one, so that the next save keeps a good previous checkpoint.

    Returns:
        ``(states, path)``: ESPnet's checkpoint dict (model, reporter,
        optimizers, schedulers, scaler) and the file it came from.

    Raises:
        DataError: A one-line error when no checkpoint loads.
    """
    previous = checkpoint.with_name(PREVIOUS_CHECKPOINT)
    problems: List[str] = []
    for path in (checkpoint, previous):
        if not path.exists():
            continue
        try:
            states = _checked_layout(path, load_checkpoint(path, map_location))
        except DataError as exc:
            problems.append(exc.message)
            continue
        if path != checkpoint:
            logging.warning(
                f"{checkpoint}: {problems[0]}; resuming from {path.name} (end of epoch "
                f"{states['reporter']['epoch']}) instead, keeping the unreadable file as {BAD_CHECKPOINT}"
            )
            if not repair:
                return states, path
            if checkpoint.exists():
                os.replace(checkpoint, checkpoint.with_name(BAD_CHECKPOINT))
            _copy_atomic(previous, checkpoint)
        return states, path
    if not problems:
        raise DataError(checkpoint, None, "not found: nothing to resume from")
    detail = problems[0] + (f"; {previous.name}: {problems[1]}" if len(problems) > 1 else f"; no {previous.name}")
    raise DataError(checkpoint, None, f"cannot resume: {detail}. Move the checkpoint files away "
                                      f"to train again from epoch 1")


def _is_rank0() -> bool:
    """Whether this process writes the checkpoints (not distributed, or rank 0)."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _checked_layout(path: Path, states: Any) -> Dict[str, Any]:
    """``states`` if it has the layout of ESPnet's ``checkpoint.pth``, else a DataError."""
    if not isinstance(states, dict) or not {"model", "reporter", "optimizers", "schedulers"} <= set(states):
        raise DataError(path, None, "not a trainer checkpoint (needs model, reporter, optimizers, schedulers)")
    reporter = states["reporter"]
    if not isinstance(reporter, dict) or not isinstance(reporter.get("epoch"), int):
        raise DataError(path, None, "not a trainer checkpoint (no reporter epoch)")
    return states


def restore_missing_checkpoint(output_dir: Path) -> None:
    """Copy ``checkpoint.prev.pth`` to ``checkpoint.pth`` when only the former exists (with a warning)."""
    checkpoint, previous = output_dir / CHECKPOINT, output_dir / PREVIOUS_CHECKPOINT
    if not checkpoint.exists() and previous.exists():
        logging.warning(f"{checkpoint}: missing; resuming from {previous.name}")
        _copy_atomic(previous, checkpoint)


def remove_temporaries(output_dir: Path) -> None:
    """Delete the temporary ``.pth`` files that a killed run left in ``output_dir``."""
    if not output_dir.is_dir():
        return
    stale = sorted(p for p in output_dir.iterdir() if _TEMPORARY.fullmatch(p.name) and p.is_file())
    for path in stale:
        path.unlink()
    if stale:
        logging.info(f"removed {len(stale)} temporary file(s) of an interrupted run: "
                     + ", ".join(p.name for p in stale))


class CheckpointWriter:
    """Stands in for ``torch.save`` in ESPnet's trainer: atomic, epoch file first, previous checkpoint kept.

    Args:
        output_dir: The training output directory.
        trust_existing: Whether a ``checkpoint.pth`` found there is this
            run's resume point (``--resume true``, checked by
            :func:`load_resume_state`) and is worth keeping as the previous
            checkpoint when it is replaced.
    """

    def __init__(self, output_dir: Path, trust_existing: bool) -> None:
        self.output_dir = output_dir
        self._trusted = trust_existing
        self._epoch_states: Dict[int, Any] = {}

    def save(self, obj: Any, f: PathLike, *args: Any, **kwargs: Any) -> None:
        """Save ``obj`` to ``f`` (ESPnet's ``torch.save`` calls)."""
        path = Path(f)
        match = EPOCH_FILE.fullmatch(path.name)
        if path.name == CHECKPOINT and isinstance(obj, dict) and isinstance(obj.get("reporter"), dict):
            epoch = obj["reporter"].get("epoch")
            if isinstance(epoch, int) and "model" in obj:
                save_checkpoint(obj["model"], path.with_name(f"{epoch}epoch.pth"))
                self._epoch_states[epoch] = obj["model"]
            self._replace_checkpoint(obj, path)
        elif match and self._epoch_states.get(int(match.group(1))) is obj:
            pass  # written just before checkpoint.pth
        else:
            save_checkpoint(obj, path)

    def _replace_checkpoint(self, obj: Any, path: Path) -> None:
        previous = path.with_name(PREVIOUS_CHECKPOINT)

        def keep_previous() -> None:  # the new checkpoint is complete in its temporary file
            if self._trusted and path.exists():
                os.replace(path, previous)  # a kill right after this: restore_missing_checkpoint

        save_checkpoint(obj, path, before_replace=keep_previous)
        self._trusted = True


def _copy_atomic(source: Path, target: Path) -> None:
    """Make ``target`` a copy of ``source`` in one rename (a copy, not a link: damage to one spares the other)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


class _TorchFiles:
    """The ``torch`` module with ``save`` and ``load`` replaced (for one ESPnet module's global name).

    ``load`` is :func:`load_checkpoint` (weights only, one-line errors),
    served from ``preloaded`` (keyed by resolved path) when the file was
    loaded there already.
    """

    def __init__(self, save: Callable[..., None], preloaded: Optional[Dict[Path, Any]] = None) -> None:
        self._save = save
        self._preloaded = preloaded if preloaded is not None else {}

    def save(self, obj: Any, f: PathLike, *args: Any, **kwargs: Any) -> None:
        self._save(obj, f)

    def load(self, f: PathLike, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
        key = Path(f).resolve()
        if key in self._preloaded:
            return self._preloaded.pop(key)
        return load_checkpoint(f, map_location)

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)


@contextlib.contextmanager
def _replaced(module: Any, name: str, value: Any) -> Iterator[None]:
    """Point ``module.name`` at ``value`` for the duration of the block."""
    original = getattr(module, name)  # an AttributeError here means ESPnet changed: fail loudly
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


def average_available_models(output_dir: PathLike, reporter: Reporter,
                             best_model_criterion: Sequence[Sequence[str]], nbest: Union[int, Sequence[int]],
                             suffix: Optional[str] = None, use_deepspeed: bool = False) -> None:
    """ESPnet's ``average_nbest_models`` over the best epochs whose files are on disk and load.

    For each criterion, the epochs are taken best first, skipping any whose
    ``{N}epoch.pth`` is missing or unreadable (a warning names those among
    the n best), until n are found; the average is over those (fewer than n
    when fewer are there). Files are loaded weights-only and written
    atomically.

    Args:
        output_dir: The training output directory.
        reporter: The trainer's reporter (its epochs and their values).
        best_model_criterion: ``[(phase, key, "min" | "max"), ...]``.
        nbest: How many epochs to average (ESPnet's ``keep_nbest_models``).
        suffix: Suffix of the averaged file names (ESPnet's intermediate averages).
        use_deepspeed: Passed to ESPnet (DeepSpeed checkpoints are not supported by ENT).

    Raises:
        DataError: A one-line error when no file of the best epochs loads.
    """
    output_dir = Path(output_dir)
    n = max([nbest] if isinstance(nbest, int) else (list(nbest) or [1]))
    preloaded: Dict[Path, Any] = {}
    chosen: Set[int] = set()
    for phase, key, mode in best_model_criterion:
        if not reporter.has(phase, key):
            continue
        ranked = reporter.sort_epochs(phase, key, mode)
        found: List[int] = []
        for rank, epoch in enumerate(ranked):
            if len(found) == n:
                break
            path = output_dir / f"{epoch}epoch.pth"
            if path.resolve() not in preloaded:
                try:
                    preloaded[path.resolve()] = load_checkpoint(path)
                except DataError as exc:
                    if rank < n:  # one of the n best: say why it is left out
                        logging.warning(f"averaging {phase}.{key}: {exc}; left out")
                    continue
            found.append(epoch)
        if len(found) < min(n, len(ranked)):
            logging.warning(f"averaging {phase}.{key}: the files of {len(found)} of the {min(n, len(ranked))} "
                            f"best epochs are there (epochs {sorted(found)})")
        chosen.update(found)
    if not chosen:
        raise DataError(output_dir, None, "no file {N}epoch.pth of the best epochs is there and loads: "
                                          "nothing to average")
    # ESPnet ranks the epochs of the reporter it is given: give it only those whose files loaded.
    available = Reporter()
    stats = reporter.state_dict()["stats"]
    available.load_state_dict({"stats": {e: v for e, v in stats.items() if e in chosen}, "epoch": max(chosen)})
    with _replaced(espnet_average, "torch", _TorchFiles(save_checkpoint, preloaded)):
        espnet_average.average_nbest_models(output_dir=output_dir, reporter=available,
                                            best_model_criterion=best_model_criterion, nbest=nbest,
                                            suffix=suffix, use_deepspeed=use_deepspeed)


@contextlib.contextmanager
def weights_only_init_param() -> Iterator[None]:
    """Within the block, ESPnet's ``--init_param`` loading reads files weights-only (one-line errors)."""
    with _replaced(espnet_pretrained, "torch", _TorchFiles(save_checkpoint)):
        yield
