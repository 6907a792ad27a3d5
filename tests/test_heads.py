"""Every head on every task kind, on embeddings with a learnable signal; the estimator contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import skops.io
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score

from embedclf.errors import EmbedclfError
from embedclf.features import SPARSE_HEADS
from embedclf.heads import HEAD_NAMES, head_params, make_head
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
    ("knn", dict(n_neighbors=0), "--neighbors must be at least 1, got 0"),
    ("mlp", dict(epochs=2.5), "--epochs must be a whole number at least 1, got 2.5"),
    ("svm", dict(class_weight="auto"), "--class-weight 'auto' is not one of: balanced"),
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


@pytest.mark.parametrize("rows", [2, 3, 4])
def test_svm_fits_a_handful_of_rows_and_ranks_each_rows_class_first(rows, tmp_path):
    X, _, _ = signal(rows)
    y = np.arange(rows) % 2 if rows == 4 else np.arange(rows)  # one or two examples a class
    head = make_head("svm").fit(X, y)
    assert head.in_sample_calibration_
    proba = head.predict_proba(X)
    np.testing.assert_array_equal(proba.argmax(axis=1), y)
    skops.io.dump(head, tmp_path / "head.skops")  # the in-sample folds are plain arrays: the model folder loads them
    loaded = skops.io.load(tmp_path / "head.skops", trusted=skops.io.get_untrusted_types(file=tmp_path / "head.skops"))
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)


@pytest.mark.parametrize("sparse", [False, True])
def test_svm_scores_each_label_as_its_calibrated_classifier_does(sparse):
    from embedclf.heads.linear import platt_scores

    X, _, Y = signal(300)
    X = scipy.sparse.csr_matrix(X) if sparse else X
    head = make_head("svm").fit(X, Y)
    scores = head.predict_proba(X)
    fitted = [(j, e) for j, e in enumerate(head.estimators_[0]) if e is not None]
    assert len(fitted) == Y.shape[1]
    for j, calibrated in fitted:  # scikit-learn's own answer, fold by fold
        np.testing.assert_allclose(scores[:, j], calibrated.predict_proba(X)[:, 1], rtol=1e-6, atol=1e-7)
    j, calibrated = fitted[0]
    calibrated.calibrated_classifiers_[0].method = "isotonic"  # not what it knows: scikit-learn answers
    np.testing.assert_allclose(platt_scores(calibrated, X), calibrated.predict_proba(X)[:, 1])


BAD_FIT_INPUT = {  # what the heads did before they validated with scikit-learn
    "1-D X": (lambda X, y: (X[:, 0], y), ValueError, "Expected 2D array"),  # IndexError
    "continuous y": (lambda X, y: (X, X[:, 0]), ValueError, "Unknown label type: continuous"),  # 60 classes
    "complex X": (lambda X, y: (X + 1j, y), ValueError, "Complex data not supported"),  # imaginary part dropped
    "sparse X": (lambda X, y: (scipy.sparse.csr_matrix(X), y), TypeError, "Sparse data was passed"),  # cryptic
    "no features": (lambda X, y: (X[:, :0], y), ValueError, "0 feature"),  # the MLP trained on nothing
    "NaN in X": (lambda X, y: (np.where(np.eye(60, 6, dtype=bool), np.nan, X), y), ValueError, "contains NaN"),
}


@pytest.mark.parametrize("case", BAD_FIT_INPUT)
@pytest.mark.parametrize("name", HEAD_NAMES)
def test_bad_fit_input_is_a_clear_error(name, case):
    X, y, _ = signal(60)
    change, error, message = BAD_FIT_INPUT[case]
    if case == "sparse X" and name in SPARSE_HEADS:
        pytest.skip("takes sparse input: see test_sparse_input_is_kept_sparse_and_scores_as_dense")
    with pytest.raises(error, match=message):
        make_head(name, **FAST.get(name, {})).fit(*change(X, y))


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_bad_predict_input_is_a_clear_error(name):
    X, y, _ = signal(60)
    head = make_head(name, **FAST.get(name, {})).fit(X, y)
    with pytest.raises(ValueError, match="Input X contains NaN"):  # the MLP answered NaN
        head.predict_proba(np.where(np.eye(60, 6, dtype=bool), np.nan, X))
    with pytest.raises(ValueError, match="X has 5 features, but .* is expecting 6"):
        head.predict_proba(X[:, :5])
    with pytest.raises(ValueError, match="Expected 2D array"):
        head.predict_proba(X[0])


def test_misspelled_head_parameter_names_it_and_the_accepted_ones():
    with pytest.raises(EmbedclfError, match=r"the knn head takes no 'n_neigbors'; it takes: metric, n_neighbors, "
                                            r"weights"):
        make_head("knn", n_neigbors=5)
    with pytest.raises(EmbedclfError, match="takes no 'random_state'"):
        make_head("logreg", random_state=0)
    assert make_head("logreg", C=None).C == 1.0  # None: not given, the default stays


def test_head_params_tell_which_options_apply():
    assert head_params("logreg") == {"C", "class_weight", "max_iter", "n_jobs"}
    assert all("random_state" in head_params(name) for name in ("mlp", "chain", "svm"))
    assert "random_state" not in head_params("knn") | head_params("logreg")
    with pytest.raises(EmbedclfError, match="unknown head"):
        head_params("tree")


@pytest.mark.parametrize("name", ["logreg", "svm", "mlp"])
def test_zero_sample_weight_is_the_same_as_leaving_rows_out(name):
    X, y, Y = signal(200)
    weight = np.where(np.arange(200) % 4 == 0, 0.0, 1.0)
    kept = weight > 0
    for target in (y, Y):
        head = make_head(name, **FAST.get(name, {}))
        weighted = clone(head).fit(X, target, sample_weight=weight).predict_proba(X)
        np.testing.assert_array_equal(weighted, clone(head).fit(X[kept], target[kept]).predict_proba(X))


@pytest.mark.parametrize("name", ["logreg", "svm", "mlp"])
def test_sample_weight_is_used(name):
    """Weighing up the rows of class 0 makes the head predict class 0 more (the weights were dropped before)."""
    X, y, _ = signal(300)
    head = make_head(name, **FAST.get(name, {}))
    plain = clone(head).fit(X, y).predict(X)
    weighted = clone(head).fit(X, y, sample_weight=np.where(y == 0, 20.0, 1.0)).predict(X)
    assert (weighted == 0).sum() > (plain == 0).sum() + 10


def test_logreg_sample_weight_equals_repeated_rows():
    X, y, _ = signal(120)
    repeats = np.random.RandomState(1).randint(1, 4, size=120)
    weighted = make_head("logreg").fit(X, y, sample_weight=repeats).predict_proba(X)
    repeated = make_head("logreg").fit(X.repeat(repeats, axis=0), y.repeat(repeats)).predict_proba(X)
    np.testing.assert_allclose(weighted, repeated, atol=1e-4)  # lbfgs on float32 data


@pytest.mark.parametrize("name", ["knn", "chain"])
def test_heads_without_sample_weight_say_so(name):
    X, y, _ = signal(60)
    with pytest.raises(TypeError, match="does not support sample_weight"):
        make_head(name, **FAST.get(name, {})).fit(X, y, sample_weight=np.ones(60))


def test_knn_with_more_neighbours_than_rows_fails_at_fit():
    X, y, _ = signal(60)
    with pytest.raises(ValueError, match="n_neighbors=15 is more than the 10 training rows"):
        make_head("knn").fit(X[:10], np.arange(10) % 2)
    Y = np.zeros((20, 2), dtype=np.int8)
    Y[:6, 0], Y[6:12, 1] = 1, 1  # rows 12-19 have a class unseen in training: 12 rows to search
    with pytest.raises(ValueError, match="n_neighbors=15 is more than the 12 rows with a known class"):
        make_head("knn").fit(X[:20], Y, layout=(("multiclass", 2),))


def test_svm_balanced_class_weight_raises_rare_class_recall():
    """The calibration is weighted too: before, Platt scaling undid the SVM's class weights."""
    rng = np.random.default_rng(0)
    y = (rng.random(1500) < 0.06).astype(int)
    X = rng.normal(size=(1500, 4)).astype(np.float32)
    X[:, 0] += 1.5 * y
    recalls = []
    for class_weight in (None, "balanced"):
        predicted = make_head("svm", class_weight=class_weight).fit(X[:1000], y[:1000]).predict(X[1000:])
        recalls.append(predicted[y[1000:] == 1].mean())
    assert recalls[1] > recalls[0] + 0.3


@pytest.mark.parametrize("name", ["logreg", "svm", "mlp"])
def test_class_weight_dict_is_keyed_by_class_label(name):
    X, y, _ = signal(300)
    names = np.array(["a", "b", "c", "d"])[y]
    head = make_head(name, class_weight={"a": 20.0}, **FAST.get(name, {})).fit(X, names)
    plain = make_head(name, **FAST.get(name, {})).fit(X, names)
    assert (head.predict(X) == "a").sum() > (plain.predict(X) == "a").sum() + 10
    with pytest.raises(ValueError, match="class_weight names classes not in y"):
        make_head(name, class_weight={"z": 2.0}, **FAST.get(name, {})).fit(X, names)


@pytest.mark.parametrize("folder, head_class, n_columns", [("model-v0.1.0", "LogRegHead", 7),
                                                            ("mlp-v0.1.0", "MLPHead", 10)])
def test_heads_saved_by_version_0_1_0_still_predict(folder, head_class, n_columns):
    data = (Path(__file__).parent / "data" / folder / "head.skops").read_bytes()
    untrusted = skops.io.get_untrusted_types(data=data)
    assert untrusted == [f"embedclf.heads.{'mlp' if head_class == 'MLPHead' else 'linear'}.{head_class}"]
    head = skops.io.loads(data, trusted=untrusted)
    X = np.random.default_rng(0).normal(size=(5, 384)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    proba = head.predict_proba(X)
    assert proba.shape == (5, n_columns) and np.isfinite(proba).all()
    assert head.predict(X).shape == (5, n_columns)  # no target_dtype_ in 0.1.0: int8, as then
    assert clone(head).get_params() == head.get_params()


@pytest.mark.parametrize("name", SPARSE_HEADS)
def test_sparse_input_is_kept_sparse_and_scores_as_dense(name):
    X, y, _ = signal(80)
    X_sparse = scipy.sparse.csr_matrix(np.where(np.abs(X) > 0.5, X, 0))
    fitted = make_head(name).fit(X_sparse, y)
    dense = make_head(name).fit(X_sparse.toarray(), y)
    np.testing.assert_allclose(fitted.predict_proba(X_sparse), dense.predict_proba(X_sparse.toarray()), atol=2e-3)


@pytest.mark.parametrize("name", ["logreg", "svm"])
def test_labels_fitted_in_parallel_processes_score_as_fitted_one_by_one(name):
    X, _, Y = signal(300)
    Y = np.hstack([Y, np.zeros((len(Y), 1), np.int8)])
    Y[:1, -1] = 1  # one positive row: the svm cannot calibrate it and counts it
    one_by_one = make_head(name).fit(X, Y)
    parallel = make_head(name, n_jobs=2).fit(X, Y)
    np.testing.assert_allclose(parallel.predict_proba(X), one_by_one.predict_proba(X), atol=1e-6)
    if name == "svm":
        assert parallel.uncalibrated_labels_ == one_by_one.uncalibrated_labels_ == 1


def test_svm_refits_to_the_same_model_on_wide_sparse_features():
    # wider than tall: liblinear takes its dual solver, whose coordinate order random_state seeds
    X = scipy.sparse.random(300, 2000, density=0.01, format="csr", random_state=0, dtype=np.float32)
    Y = (np.random.default_rng(0).random((300, 3)) < 0.3).astype(int)
    fits = [make_head("svm").fit(X, Y, layout=[("multilabel", 3)]).predict_proba(X) for _ in range(2)]
    np.testing.assert_array_equal(fits[0], fits[1])
    other = make_head("svm", random_state=1).fit(X, Y, layout=[("multilabel", 3)]).predict_proba(X)
    assert not np.array_equal(fits[0], other)  # the seed is what fixes it
