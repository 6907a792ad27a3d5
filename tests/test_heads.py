"""Every head on every task kind, on embeddings with a learnable signal; the estimator contract."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score

from embedclf.heads import HEAD_NAMES, make_head
from embedclf.heads.chain import cooccurrence_order
from embedclf.labels import block_decisions

FAST = {"mlp": dict(epochs=30, hidden=(32,)), "chain": dict(ensemble=2)}


def signal(n=400, dim=6, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, dim).astype(np.float32)
    W = rng.randn(dim, 8)
    logits = X @ W
    y = logits[:, :4].argmax(axis=1)                      # a multi-class target
    Y = (logits[:, 4:] > 0.8).astype(np.int8)             # a 4-label multi-label target
    return X, y, Y


def layouts():
    X, y, Y = signal()
    onehot = np.eye(4, dtype=np.int8)[y]
    return {
        "multiclass": (X, y, None),
        "multilabel": (X, Y, None),
        "multioutput": (X, np.hstack([onehot, Y]), (("multiclass", 4), ("multilabel", 4))),
    }


@pytest.mark.parametrize("name", HEAD_NAMES)
@pytest.mark.parametrize("task", ["multiclass", "multilabel", "multioutput"])
def test_head_learns_each_task_kind(name, task):
    X, y, layout = layouts()[task]
    head = make_head(name, **FAST.get(name, {}))
    assert head.fit(X[:300], y[:300], layout=layout) is head
    proba = head.predict_proba(X[300:])
    assert proba.shape == (100, 4 if task != "multioutput" else 8)
    assert np.all((proba >= 0) & (proba <= 1))
    if task == "multiclass":
        assert (head.predict(X[300:]) == y[300:]).mean() > 0.6
        np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    else:
        decided = block_decisions(proba, head.layout_)
        truth = np.asarray(y[300:])
        assert (decided == truth).mean() > 0.75
        if task == "multioutput":
            np.testing.assert_allclose(proba[:, :4].sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_estimator_contract(name):
    X, y, _ = signal(200)
    head = make_head(name, **FAST.get(name, {}))
    twin = clone(head)
    assert twin.get_params() == head.get_params() and twin is not head
    assert not hasattr(twin, "layout_")
    twin.set_params(**twin.get_params())
    scores = cross_val_score(twin, X, y, cv=3)
    assert scores.mean() > 0.5


def test_grid_search_over_a_head():
    X, y, _ = signal(240)
    search = GridSearchCV(make_head("logreg"), {"C": [0.01, 10.0]}, cv=3).fit(X, y)
    assert search.best_params_ == {"C": 10.0}


def test_constant_and_rare_labels_do_not_break_heads():
    X, _, Y = signal(200)
    Y = Y.copy()
    Y[:, 0] = 0          # never present
    Y[:, 1] = 0
    Y[5, 1] = 1          # one example only
    for name in HEAD_NAMES:
        proba = make_head(name, **FAST.get(name, {})).fit(X, Y).predict_proba(X)
        assert np.all(proba[:, 0] < 0.5), name  # a label never seen is never predicted
        if name != "mlp":
            assert np.all(proba[:, 0] == 0), name  # estimators that cannot learn it keep its rate, 0
        assert np.isfinite(proba).all(), name


def test_unknown_head_is_a_clear_error():
    from embedclf.errors import EmbedclfError

    with pytest.raises(EmbedclfError, match="unknown head 'tree'"):
        make_head("tree")


def test_cooccurrence_order_puts_implied_labels_after_their_antecedent():
    # label 2 always comes with label 0; label 1 is independent and most frequent
    Y = np.array([[1, 1, 1], [1, 1, 1], [0, 1, 0], [0, 1, 0], [1, 0, 1], [0, 1, 0]])
    order = list(cooccurrence_order(Y))
    assert order[0] == 1 and order.index(0) < order.index(2) or order.index(2) == order.index(0) + 1


@pytest.mark.parametrize("name, params, message", [
    ("mlp", dict(loss="hinge"), "--loss 'hinge' is not one of: bce, focal"),
    ("chain", dict(order="alphabetic"), "--order 'alphabetic' is not one of"),
    ("logreg", dict(C=-1.0), "--C must be positive"),
    ("mlp", dict(dropout=1.5), "--dropout must be in"),
    ("knn", dict(n_neighbors=0), "--neighbors must be positive"),
])
def test_bad_head_parameters_are_one_line_errors(name, params, message):
    from embedclf.errors import EmbedclfError

    with pytest.raises(EmbedclfError, match=message):
        make_head(name, **params)


def test_svm_keeps_classes_too_rare_for_cross_validated_calibration():
    X, y, _ = signal(200)
    y = y.copy()
    y[:2] = 7          # a class with two examples: fewer than the three calibration folds
    head = make_head("svm").fit(X, y)
    assert head.in_sample_calibration_ and 7 in head.classes_
    np.testing.assert_allclose(head.predict_proba(X).sum(axis=1), 1, atol=1e-6)
