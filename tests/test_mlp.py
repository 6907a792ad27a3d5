"""The torch MLP head on small synthetic embeddings whose labels are (nearly) linearly separable."""

import numpy as np
import pytest
import skops.io
from sklearn.base import clone
from sklearn.metrics import f1_score, recall_score

from embedclf.heads.mlp import MLPHead

FAST = dict(hidden=(32,), epochs=40, batch_size=32)


def blobs(n, n_classes=3, dim=16, spread=0.5, seed=0):
    """Gaussian blobs around fixed centres: class ``i`` of ``n`` rows is separable at this spread."""
    centres = np.random.default_rng(123).normal(size=(n_classes, dim)) * 2
    rng = np.random.default_rng(seed)
    codes = rng.integers(n_classes, size=n)
    return (centres[codes] + spread * rng.normal(size=(n, dim))).astype(np.float32), codes


def linear_labels(n, n_labels=5, dim=16, seed=0):
    """Multi-label rows: label j is set when a fixed random projection of x is above a cut (about 30%)."""
    directions = np.random.default_rng(321).normal(size=(dim, n_labels))
    X = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    scores = X @ directions
    return X, (scores > 0.5 * np.sqrt(dim)).astype(np.int8)


def test_multiclass_predicts_class_labels():
    X, codes = blobs(400)
    X_test, codes_test = blobs(200, seed=1)
    names = np.array(["neg", "neu", "pos"])
    head = MLPHead(**FAST).fit(X, names[codes])
    assert list(head.classes_) == ["neg", "neu", "pos"]
    predicted = head.predict(X_test)
    assert set(predicted) <= set(names)
    assert np.mean(predicted == names[codes_test]) > 0.9
    assert np.allclose(head.predict_proba(X_test).sum(axis=1), 1)


def test_linear_head_without_hidden_layers():
    X, codes = blobs(400)
    X_test, codes_test = blobs(200, seed=1)
    head = MLPHead(**{**FAST, "hidden": ()}).fit(X, codes)
    assert len(head.weights_) == 1 and head.weights_[0].shape == (16, 3)
    assert np.mean(head.predict(X_test) == codes_test) > 0.9


@pytest.mark.parametrize("loss", ["bce", "focal"])
def test_multilabel_learns(loss):
    X, Y = linear_labels(600)
    X_test, Y_test = linear_labels(300, seed=1)
    head = MLPHead(**{**FAST, "epochs": 100}, loss=loss).fit(X, Y)  # focal learns slower: alpha=0.25 damps positives
    predicted = head.predict(X_test)
    assert predicted.shape == Y_test.shape and set(np.unique(predicted)) <= {0, 1}
    assert f1_score(Y_test, predicted, average="micro") > 0.8


def test_multi_output_blocks():
    X, codes = blobs(400)
    _, Y_multi = linear_labels(400)
    Y = np.hstack([np.eye(3, dtype=np.int8)[codes], Y_multi[:, :4]])
    layout = (("multiclass", 3), ("multilabel", 4))
    head = MLPHead(**FAST).fit(X, Y, layout=layout)
    proba = head.predict_proba(X)
    assert proba.shape == (400, 7)
    assert np.allclose(proba[:, :3].sum(axis=1), 1)
    assert ((proba >= 0) & (proba <= 1)).all()
    predicted = head.predict(X)
    assert (predicted[:, :3].sum(axis=1) == 1).all()
    assert np.mean(predicted[:, :3].argmax(axis=1) == codes) > 0.9


def test_unseen_multiclass_rows_add_no_loss():
    """Rows whose one-hot block is all zero train the other blocks and leave this one alone."""
    X, codes = blobs(400)
    Y = np.eye(3, dtype=np.int8)[codes]
    Y[:50] = 0
    head = MLPHead(**FAST).fit(X, Y, layout=(("multiclass", 3),))
    assert np.isfinite(head.loss_curve_).all()
    assert np.mean(head.predict(X).argmax(axis=1) == codes) > 0.9


def rare_class_data(n, seed):
    """Two overlapping classes, the second about 5% of rows: unweighted training mostly ignores it."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.05).astype(int)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    X[:, 0] += 1.5 * y
    return X, y


@pytest.mark.parametrize("multilabel", [False, True])
def test_balanced_class_weight_raises_rare_class_recall(multilabel):
    X, y = rare_class_data(1000, seed=0)
    X_test, y_test = rare_class_data(2000, seed=1)
    target, layout = (y[:, None], (("multilabel", 1),)) if multilabel else (y, None)
    recalls = []
    for class_weight in (None, "balanced"):
        head = MLPHead(hidden=(16,), epochs=20, batch_size=64, class_weight=class_weight).fit(X, target, layout=layout)
        predicted = head.predict(X_test)
        recalls.append(recall_score(y_test, predicted[:, 0] if multilabel else predicted))
    assert recalls[1] > recalls[0] + 0.2


def test_early_stopping_keeps_best_epoch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 32)).astype(np.float32)
    y = rng.integers(3, size=60)  # pure noise: validation loss rises once the head memorises
    head = MLPHead(hidden=(128,), epochs=300, lr=1e-2, batch_size=16, dropout=0.0).fit(X, y)
    assert head.n_epochs_ < 300
    assert head.best_epoch_ < head.n_epochs_
    assert len(head.loss_curve_) == len(head.validation_loss_curve_) == head.n_epochs_
    assert head.best_epoch_ == 1 + int(np.argmin(head.validation_loss_curve_))


def test_explicit_validation_set_and_restored_weights():
    X, Y = linear_labels(200, seed=0)
    X_valid, Y_valid = linear_labels(100, seed=1)
    Y = Y.copy()
    Y[np.random.default_rng(0).random(Y.shape) < 0.2] ^= 1  # noisy training labels: overfitting shows
    head = MLPHead(hidden=(256,), epochs=300, lr=1e-2, batch_size=16, dropout=0.0)
    head.fit(X, Y, validation=(X_valid, Y_valid))
    assert head.best_epoch_ < head.n_epochs_ < 300
    # The kept weights are the best epoch's: their loss on the validation set is the recorded minimum.
    p = np.clip(head.predict_proba(X_valid), 1e-12, 1 - 1e-12)
    loss = -(Y_valid * np.log(p) + (1 - Y_valid) * np.log(1 - p)).sum(axis=1).mean()
    assert loss == pytest.approx(min(head.validation_loss_curve_), rel=1e-4)


def test_small_data_trains_every_epoch():
    X, codes = blobs(15)
    head = MLPHead(hidden=(8,), epochs=7).fit(X, codes)
    assert head.n_epochs_ == head.best_epoch_ == 7
    assert head.validation_loss_curve_ == []


def test_same_seed_same_predictions():
    X, Y = linear_labels(300)
    first = MLPHead(**FAST).fit(X, Y).predict_proba(X)
    second = MLPHead(**FAST).fit(X, Y).predict_proba(X)
    other = MLPHead(**FAST, random_state=1).fit(X, Y).predict_proba(X)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_clone_and_get_params():
    head = MLPHead(hidden=(64, 32), loss="focal", class_weight="balanced", patience=None)
    params = head.get_params()
    assert params["hidden"] == (64, 32) and params["loss"] == "focal" and params["patience"] is None
    copy = clone(head)
    assert copy.get_params() == params
    assert MLPHead(**params).get_params() == params
    X, codes = blobs(100)
    fitted = MLPHead(**FAST).fit(X, codes)
    assert not hasattr(clone(fitted), "weights_")
    assert clone(fitted).set_params(epochs=3).get_params()["epochs"] == 3


def test_bad_params_fail_at_fit():
    X, codes = blobs(50)
    with pytest.raises(ValueError, match="loss"):
        MLPHead(loss="hinge").fit(X, codes)
    with pytest.raises(ValueError, match="class_weight"):
        MLPHead(class_weight="auto").fit(X, codes)
    with pytest.raises(ValueError, match="hidden must be positive layer sizes"):
        MLPHead(hidden=(8, 0)).fit(X, codes)


def test_a_column_vector_y_is_one_target_of_classes():
    """scikit-learn's convention: a (n, 1) y without a layout is 1-D y, with a warning."""
    from sklearn.exceptions import DataConversionWarning

    X, codes = blobs(100)
    with pytest.warns(DataConversionWarning):
        head = MLPHead(**FAST).fit(X, codes[:, None])
    assert list(head.classes_) == [0, 1, 2] and head.predict(X).shape == (100,)


def test_weighted_rows_and_weighted_early_stopping():
    """Row weights reach the training loss and the held-out loss; their scale does not matter."""
    X, Y = linear_labels(300)
    weight = np.random.default_rng(0).uniform(0.5, 2.0, size=300)
    head = MLPHead(**FAST).fit(X, Y, sample_weight=weight)
    assert len(head.validation_loss_curve_) == head.n_epochs_ and np.isfinite(head.loss_curve_).all()
    scaled = MLPHead(**FAST).fit(X, Y, sample_weight=10 * weight)
    np.testing.assert_allclose(scaled.predict_proba(X), head.predict_proba(X), atol=1e-5)
    assert not np.allclose(MLPHead(**FAST).fit(X, Y).predict_proba(X), head.predict_proba(X), atol=1e-3)
    with pytest.raises(ValueError, match="at least one non-zero"):
        MLPHead(**FAST).fit(X, Y, sample_weight=np.zeros(300))


@pytest.mark.parametrize("kind", ["multiclass", "multi-output"])
def test_skops_round_trip_needs_only_embedclf_types(kind):
    X, codes = blobs(200)
    if kind == "multiclass":
        head = MLPHead(**FAST).fit(X, np.array(["a", "b", "c"])[codes])
    else:
        Y = np.hstack([np.eye(3, dtype=np.int8)[codes], linear_labels(200)[1]])
        head = MLPHead(**FAST).fit(X, Y, layout=(("multiclass", 3), ("multilabel", 5)))
    data = skops.io.dumps(head)
    untrusted = skops.io.get_untrusted_types(data=data)
    assert untrusted == ["embedclf.heads.mlp.MLPHead"]
    loaded = skops.io.loads(data, trusted=untrusted)
    assert np.array_equal(loaded.predict_proba(X), head.predict_proba(X))
    assert np.array_equal(loaded.predict(X), head.predict(X))
    assert loaded.get_params() == head.get_params()


def test_predicting_does_not_import_torch():
    import subprocess
    import sys

    code = """
import sys
import numpy as np
from embedclf.heads.mlp import MLPHead
head = MLPHead(hidden=())
head.weights_, head.biases_ = [np.ones((4, 3), np.float32)], [np.zeros(3, np.float32)]
head.layout_, head.classes_, head.n_features_in_ = (("multiclass", 3),), None, 4
assert head.predict(np.eye(4)).shape == (4, 3)
assert "torch" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", code], check=True)
