"""The functional baseline: a logistic regression on speaker-normalized eGeMAPS functionals.

What practitioners try first, and the floor every neural system must beat:
the 88 eGeMAPS v02 functionals of an utterance (openSMILE,
:mod:`ent.features.functionals`), z-normalized per speaker, and a
multinomial logistic regression (scikit-learn, L2 penalty). The inverse
regularization strength ``C`` is chosen on the validation set (unweighted
accuracy, i.e. the mean class recall; never a test set), then the model is
refitted on the training set with that ``C``. Class weights are balanced, so
that a skewed training set does not buy weighted accuracy with the rare
classes.

It is not an :class:`~ent.models.ser.abs_ser_model.AbsSERModel` (nothing is
trained by gradient descent); :mod:`ent.bin.train_ser_functional` fits it and
:mod:`ent.bin.ser_inference` decodes it into the same ``utt2emo`` and
``posteriors`` as the neural baselines. The fitted model is stored as plain
arrays (``functional_classifier.npz``) and a JSON record, not a pickle.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write

logger = logging.getLogger(__name__)

MODEL_FILE = "functional_classifier.npz"
RECORD_FILE = "functional_classifier.json"
DEFAULT_CS: Tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def unweighted_accuracy(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    """Mean recall over the classes present in ``labels``."""
    recalls = [float(np.mean(predictions[labels == c] == c)) for c in range(num_classes) if np.any(labels == c)]
    return float(np.mean(recalls))


@dataclass
class FunctionalClassifier:
    """A fitted linear classifier of utterance functionals.

    Attributes:
        emotions: Class names; their order defines the class ids.
        coef: (C, D) weights. intercept: (C,) biases.
        c: The chosen inverse regularization strength.
        dev_ua: Validation UA of every tried ``C`` (its record).
    """

    emotions: Tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray
    c: float
    dev_ua: Dict[str, float] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        train_x: np.ndarray,
        train_y: np.ndarray,
        dev_x: np.ndarray,
        dev_y: np.ndarray,
        emotions: Sequence[str],
        cs: Sequence[float] = DEFAULT_CS,
        max_iter: int = 2000,
    ) -> "FunctionalClassifier":
        """Choose ``C`` on the validation set and fit.

        Args:
            train_x: (N, D) normalized functionals; train_y: (N,) class ids.
            dev_x: (M, D); dev_y: (M,) class ids.
            emotions: Class names.
            cs: Candidate values of ``C``.
            max_iter: Iterations of the L-BFGS solver.

        Returns:
            The classifier fitted with the best ``C`` (the smallest on ties).
        """
        from sklearn.linear_model import LogisticRegression

        emotions = tuple(emotions)
        present = set(np.unique(train_y).tolist())
        if present != set(range(len(emotions))):
            missing = [emotions[i] for i in range(len(emotions)) if i not in present]
            raise ValueError(f"the training set has no utterance of {missing}: a linear classifier needs every class")
        scores: Dict[str, float] = {}
        best: Tuple[float, float] = (-1.0, 0.0)
        fitted = None
        for c in sorted(cs):
            model = LogisticRegression(C=c, max_iter=max_iter, class_weight="balanced")
            model.fit(train_x, train_y)
            ua = unweighted_accuracy(dev_y, model.predict(dev_x), len(emotions))
            scores[repr(float(c))] = ua
            logger.info("C %g: dev UA %.2f %%", c, 100 * ua)
            if ua > best[0]:
                best, fitted = (ua, float(c)), model
        assert fitted is not None
        logger.info("chosen C %g (dev UA %.2f %%)", best[1], 100 * best[0])
        coef, intercept = fitted.coef_.astype(np.float64), fitted.intercept_.astype(np.float64)
        if len(emotions) == 2:  # scikit-learn keeps one score (class 1 against class 0)
            coef = np.concatenate([np.zeros_like(coef), coef])
            intercept = np.concatenate([np.zeros_like(intercept), intercept])
        return cls(emotions, coef, intercept, best[1], scores)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(N, C) class scores of (N, D) normalized functionals."""
        if x.ndim != 2 or x.shape[1] != self.coef.shape[1]:
            raise ValueError(f"expected (N, {self.coef.shape[1]}) functionals, got {x.shape}")
        return x @ self.coef.T + self.intercept

    def posteriors(self, x: np.ndarray) -> np.ndarray:
        """(N, C) class posteriors (softmax of :meth:`logits`)."""
        z = self.logits(x)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def save(self, model_dir: Path, extra: Dict[str, object]) -> None:
        """Write :data:`MODEL_FILE` and :data:`RECORD_FILE` into ``model_dir``."""
        with atomic_write(model_dir / MODEL_FILE, "wb") as fh:
            np.savez(fh, coef=self.coef, intercept=self.intercept)
        record = {"model": "functional_classifier", "features": "egemaps_v02_speaker_znorm",
                  "emotions": list(self.emotions), "C": self.c, "dev_ua": self.dev_ua, **extra}
        with atomic_write(model_dir / RECORD_FILE) as fh:
            json.dump(record, fh, indent=2, allow_nan=False)
            fh.write("\n")

    @classmethod
    def load(cls, model_dir: Path) -> "FunctionalClassifier":
        """Read a classifier written by :meth:`save`.

        Raises:
            DataError: If a file is missing or inconsistent.
        """
        record_path, model_path = model_dir / RECORD_FILE, model_dir / MODEL_FILE
        for path in (record_path, model_path):
            if not path.is_file():
                raise DataError(path, None, "not found: fit the classifier first (python -m ent.bin.train_ser_functional)")
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            emotions: List[str] = list(record["emotions"])
            with np.load(model_path) as npz:
                coef, intercept = npz["coef"], npz["intercept"]
        except (KeyError, ValueError, OSError) as exc:
            raise DataError(record_path, None, f"unreadable classifier ({exc})") from None
        if coef.shape[0] != len(emotions) or intercept.shape != (len(emotions),):
            raise DataError(model_path, None, f"{coef.shape[0]} classes for {len(emotions)} emotions")
        return cls(tuple(emotions), coef, intercept, float(record["C"]), dict(record.get("dev_ua", {})))
