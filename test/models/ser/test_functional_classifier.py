"""The functional baseline's classifier: C chosen on dev, posteriors, saving, errors."""

from pathlib import Path

import numpy as np
import pytest

from ent.models.ser.functional_classifier import FunctionalClassifier, unweighted_accuracy
from ent.utils.errors import DataError

EMOTIONS = ("neutral", "happy", "angry", "sad")


def blobs(n: int, seed: int, noise: float = 1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    centers = np.eye(4, 6) * 3.0
    return centers[y] + noise * rng.normal(size=(n, 6)), y


def test_unweighted_accuracy_is_the_mean_class_recall() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1])
    preds = np.array([0, 0, 0, 0, 0, 1])
    assert unweighted_accuracy(labels, preds, 4) == pytest.approx((1.0 + 0.5) / 2)


def test_fit_chooses_c_on_dev_and_gives_posteriors(tmp_path: Path) -> None:
    train_x, train_y = blobs(200, 0)
    dev_x, dev_y = blobs(80, 1)
    from sklearn.linear_model import LogisticRegression

    cs = (1e-4, 0.01, 1.0)
    model = FunctionalClassifier.fit(train_x, train_y, dev_x, dev_y, EMOTIONS, cs=cs)
    for c in cs:  # the recorded dev UA of every C is that of scikit-learn's model with it
        ref = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(train_x, train_y)
        assert model.dev_ua[repr(c)] == pytest.approx(unweighted_accuracy(dev_y, ref.predict(dev_x), 4))
    best = max(cs, key=lambda c: (model.dev_ua[repr(c)], -c))  # the best, the smallest C on ties
    assert model.c == best
    test_x, test_y = blobs(80, 2)
    post = model.posteriors(test_x)
    assert post.shape == (80, 4) and np.allclose(post.sum(1), 1.0)
    assert unweighted_accuracy(test_y, post.argmax(1), 4) > 0.85
    # the same posteriors as scikit-learn's own model with that C
    ref = LogisticRegression(C=best, max_iter=2000, class_weight="balanced").fit(train_x, train_y)
    assert np.allclose(post, ref.predict_proba(test_x), atol=1e-6)
    model.save(tmp_path, {"n_train": 200})
    loaded = FunctionalClassifier.load(tmp_path)
    assert loaded.emotions == EMOTIONS and loaded.c == best and np.allclose(loaded.posteriors(test_x), post)


def test_two_classes_and_errors(tmp_path: Path) -> None:
    x, y = blobs(100, 0)
    keep = y < 2
    model = FunctionalClassifier.fit(x[keep], y[keep], x[keep], y[keep], ("neutral", "angry"), cs=(1.0,))
    assert model.posteriors(x[keep]).shape == (int(keep.sum()), 2)
    assert (model.posteriors(x[keep]).argmax(1) == y[keep]).mean() > 0.9
    with pytest.raises(ValueError, match=r"no utterance of \['angry', 'sad'\]"):
        FunctionalClassifier.fit(x[keep], y[keep], x, y, EMOTIONS)
    with pytest.raises(ValueError, match=r"expected \(N, 6\)"):
        model.logits(np.zeros((2, 5)))
    with pytest.raises(DataError, match="not found: fit the classifier first"):
        FunctionalClassifier.load(tmp_path)
