"""evaluate() on small matrices whose expected metrics are counted by hand in the comments."""

import json
import warnings

import numpy as np
import pytest

from embedclf.evaluate import compare_reports, evaluate, format_report
from embedclf.labels import LabelSpace, TargetSpace


def pair_auc(truth, scores):
    """ROC-AUC as the share of (positive, negative) pairs ranked right, ties counting half."""
    truth, scores = np.asarray(truth), np.asarray(scores, dtype=float)
    pos, neg = scores[truth == 1], scores[truth == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def onehot(indices, k):
    Y = np.zeros((len(indices), k), dtype=np.int8)
    for row, i in enumerate(indices):
        if i is not None:
            Y[row, i] = 1
    return Y


# --- multi-class: classes a, b, c; the last row's true label was unseen at fit time ------------
MC_SPACE = LabelSpace([TargetSpace("topic", "multiclass", ["a", "b", "c"])])
MC_TRUE = onehot([0, 0, 1, 1, 2, None], 3)   # a a b b c ?
MC_PRED = onehot([0, 1, 1, 1, 0, 2], 3)      # a b b b a c  -> right on rows 0, 2, 3
MC_SCORES = np.array([[.9, .05, .05], [.4, .5, .1], [.1, .8, .1],
                      [.2, .7, .1], [.6, .1, .3], [.3, .2, .5]])


def test_multiclass_metrics_counted_by_hand():
    report = evaluate(MC_SPACE, MC_TRUE, MC_PRED, MC_SCORES)
    m = report["metrics"]
    assert report["task"] == "multiclass" and report["n"] == 6
    assert m == report["targets"]["topic"]
    assert m["accuracy"] == pytest.approx(3 / 6)          # the unseen row is an error
    assert m["unseen_rows"] == 1
    # a: TP1 FP1 FN1; b: TP2 FP1 FN0; c: TP0 FP1 (the unseen row) FN1
    a, b, c = (m["per_class"][k] for k in "abc")
    assert (a["support"], a["predicted"], a["precision"], a["recall"], a["f1"]) == (2, 2, .5, .5, .5)
    assert (b["support"], b["predicted"]) == (2, 3)
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == 1 and b["f1"] == pytest.approx(.8)
    assert (c["support"], c["predicted"], c["precision"], c["recall"], c["f1"]) == (1, 1, 0, 0, 0)
    assert [m["per_class"][k]["accuracy"] for k in "abc"] == [.5, 1.0, 0.0]
    # the unseen row is a false negative of the pseudo-class "(unseen)" (F1 0, support 1) in every average
    assert m["macro_f1"] == pytest.approx((.5 + .8 + 0 + 0) / 4)
    assert m["weighted_f1"] == pytest.approx((2 * .5 + 2 * .8 + 1 * 0 + 1 * 0) / 6)
    # micro: TP 3, FP 3 (every wrong prediction), FN 3 (every wrong row, the unseen one too)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 3 + 3))
    aucs = [pair_auc(MC_TRUE[:, j], MC_SCORES[:, j]) for j in range(3)]
    assert aucs[0] == pytest.approx(7 / 8)
    assert [m["per_class"][k]["roc_auc"] for k in "abc"] == pytest.approx(aucs)
    assert m["macro_roc_auc"] == pytest.approx(np.mean(aucs))
    assert m["classification_report"]["b"]["f1-score"] == pytest.approx(.8)
    assert m["classification_report"]["(unseen)"]["support"] == 1
    assert m["classification_report"]["weighted avg"]["f1-score"] == pytest.approx(m["weighted_f1"])


def test_unseen_labels_cannot_inflate_any_multiclass_average():
    # two seen rows right, four rows of a label the model never saw: accuracy 1/3, and so every F1
    space = LabelSpace([TargetSpace("t", "multiclass", ["a", "b"])])
    truth, pred = onehot([0, 1, None, None, None, None], 2), onehot([0, 1, 0, 0, 1, 1], 2)
    m = evaluate(space, truth, pred)["metrics"]
    assert m["accuracy"] == pytest.approx(1 / 3) and m["unseen_rows"] == 4
    # a and b: TP 1, FP 2, FN 0 -> F1 1/2 each (support 1); "(unseen)": F1 0, support 4
    assert m["macro_f1"] == pytest.approx((.5 + .5 + 0) / 3)     # was 1/2 without the unseen rows
    assert m["weighted_f1"] == pytest.approx((.5 + .5 + 4 * 0) / 6)  # was 1/2
    assert m["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 4 + 4))  # TP 2, FP 4, FN 4; was 1/2
    # without unseen rows nothing changes: the pseudo-class is not averaged in
    clean = evaluate(space, truth[:2], pred[:2])["metrics"]
    assert (clean["macro_f1"], clean["weighted_f1"], clean["micro_f1"]) == (1.0, 1.0, 1.0)
    assert "(unseen)" not in clean["classification_report"]


def test_format_report_names_the_unseen_labels():
    report = evaluate(MC_SPACE, MC_TRUE, MC_PRED, MC_SCORES)
    report["unseen_labels"] = {"topic": {"d": 1}}
    text = format_report(report)
    assert "1 rows with a label unseen at fit time, counted as errors in every metric" in text
    assert text.rstrip().count("(unseen)") >= 1 and ": d (1)" in text
    ml = evaluate(ML_SPACE, ML_TRUE, ML_PRED)
    ml["unseen_labels"] = {"tags": {"w": 3, "v": 1}}
    assert "4 labels unseen at fit time have no column and are not scored: w (3), v (1)" in format_report(ml)
    assert "unseen" not in format_report(evaluate(ML_SPACE, ML_TRUE, ML_PRED))


def test_unseen_row_is_an_error_even_when_the_prediction_is_empty():
    space = LabelSpace([TargetSpace("t", "multiclass", ["a", "b"])])
    report = evaluate(space, onehot([0, None], 2), onehot([0, None], 2))
    assert report["metrics"]["accuracy"] == .5
    assert report["metrics"]["unseen_rows"] == 1


# --- multi-label: labels x, y, z; z never true (constant column), two rows predict nothing ------
ML_SPACE = LabelSpace([TargetSpace("tags", "multilabel", ["x", "y", "z"])])
ML_TRUE = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.int8)
ML_PRED = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 0], [0, 0, 0]], dtype=np.int8)
ML_SCORES = np.array([[.9, .3, .1], [.8, .6, .7], [.2, .4, .2], [.1, .1, .3]])


def test_multilabel_metrics_counted_by_hand():
    m = evaluate(ML_SPACE, ML_TRUE, ML_PRED, ML_SCORES)["metrics"]
    # x: TP2 FP0 FN0; y: TP0 FP0 FN2; z: TP0 FP1 FN0  ->  micro TP2 FP1 FN2
    assert m["micro_precision"] == pytest.approx(2 / 3)
    assert m["micro_recall"] == pytest.approx(2 / 4)
    assert m["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    assert m["macro_f1"] == pytest.approx(1 / 3)
    assert m["macro_precision"] == pytest.approx(1 / 3) and m["macro_recall"] == pytest.approx(1 / 3)
    assert m["weighted_f1"] == pytest.approx((2 * 1 + 2 * 0 + 0 * 0) / 4)
    # per row F1: 2/3, 2/3, 0, and 0 for the empty/empty row (zero_division=0)
    assert m["samples_f1"] == pytest.approx((2 / 3 + 2 / 3) / 4)
    assert m["jaccard"] == pytest.approx((1 / 2 + 1 / 2) / 4)
    assert m["hamming_loss"] == pytest.approx(3 / 12)
    assert m["subset_accuracy"] == pytest.approx(1 / 4)
    assert m["label_cardinality_true"] == pytest.approx(4 / 4)
    assert m["label_cardinality_pred"] == pytest.approx(3 / 4)
    assert m["rows_with_no_prediction"] == 2
    z = m["per_label"]["z"]
    assert (z["support"], z["predicted"], z["precision"], z["f1"]) == (0, 1, 0, 0)
    assert m["per_label"]["x"]["f1"] == 1 and m["per_label"]["y"]["recall"] == 0


def test_multilabel_auc_is_none_for_a_constant_column():
    m = evaluate(ML_SPACE, ML_TRUE, ML_PRED, ML_SCORES)["metrics"]
    assert m["per_label"]["x"]["roc_auc"] == pytest.approx(1.0)
    assert m["per_label"]["y"]["roc_auc"] == pytest.approx(.5)    # 2 of 4 pairs ranked right
    assert m["per_label"]["z"]["roc_auc"] is None
    assert m["macro_roc_auc"] == pytest.approx(.75)               # over x and y only
    assert m["micro_roc_auc"] == pytest.approx(pair_auc(ML_TRUE.ravel(), ML_SCORES.ravel()))


def test_without_scores_every_auc_is_none():
    for space, T, P in ((ML_SPACE, ML_TRUE, ML_PRED), (MC_SPACE, MC_TRUE, MC_PRED)):
        m = evaluate(space, T, P)["metrics"]
        assert m["macro_roc_auc"] is None
        assert all(v["roc_auc"] is None for v in (m.get("per_label") or m["per_class"]).values())
    assert evaluate(ML_SPACE, ML_TRUE, ML_PRED)["metrics"]["micro_roc_auc"] is None


def test_single_label_multilabel_target_is_not_read_as_binary():
    space = LabelSpace([TargetSpace("flag", "multilabel", ["spam"])])
    T = np.array([[1], [0], [1], [0]], dtype=np.int8)
    P = np.array([[1], [1], [0], [0]], dtype=np.int8)
    m = evaluate(space, T, P)["metrics"]
    # TP1 FP1 FN1 on the one label; per row F1: 1, 0, 0, 0 (empty/empty is 0)
    assert m["micro_f1"] == m["macro_f1"] == pytest.approx(.5)
    assert m["samples_f1"] == pytest.approx(1 / 4)
    assert m["hamming_loss"] == pytest.approx(2 / 4)


def test_constant_truth_everywhere_does_not_crash():
    T = np.zeros((3, 3), dtype=np.int8)
    m = evaluate(ML_SPACE, T, T, np.full((3, 3), .2))["metrics"]
    assert m["micro_roc_auc"] is None and m["macro_roc_auc"] is None
    assert m["subset_accuracy"] == 1 and m["hamming_loss"] == 0


# --- multi-output: a multi-class and a multi-label target side by side --------------------------
MO_SPACE = LabelSpace([TargetSpace("topic", "multiclass", ["a", "b"]),
                       TargetSpace("tags", "multilabel", ["x", "y"])])
MO_TRUE = np.hstack([onehot([0, 1, None], 2), np.array([[1, 0], [0, 1], [1, 1]], np.int8)])
MO_PRED = np.hstack([onehot([0, 0, None], 2), np.array([[1, 0], [0, 1], [1, 1]], np.int8)])


def test_multioutput_exact_match_needs_every_target_right():
    report = evaluate(MO_SPACE, MO_TRUE, MO_PRED)
    assert report["task"] == "multioutput" and "metrics" not in report
    assert list(report["targets"]) == ["topic", "tags"]
    # tags right on every row; topic right on row 0 only (row 2 is unseen, its empty prediction too)
    assert report["targets"]["tags"]["subset_accuracy"] == 1
    assert report["targets"]["topic"]["accuracy"] == pytest.approx(1 / 3)
    assert report["exact_match"] == pytest.approx(1 / 3)


def test_reports_are_json_serialisable():
    for report in (evaluate(MC_SPACE, MC_TRUE, MC_PRED, MC_SCORES), evaluate(ML_SPACE, ML_TRUE, ML_PRED),
                   evaluate(MO_SPACE, MO_TRUE, MO_PRED, np.random.default_rng(0).random(MO_TRUE.shape))):
        assert json.loads(json.dumps(report, allow_nan=False))["n"] == report["n"]


def test_no_undefined_metric_warnings_escape():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(ML_SPACE, ML_TRUE, ML_PRED, ML_SCORES)
        evaluate(MC_SPACE, MC_TRUE, MC_PRED)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shape"):
        evaluate(ML_SPACE, ML_TRUE, ML_PRED[:, :2])


# --- text ---------------------------------------------------------------------------------------

def test_format_report_shows_targets_metrics_and_the_cut():
    text = format_report(evaluate(MC_SPACE, MC_TRUE, MC_PRED, MC_SCORES), top=2)
    lines = text.splitlines()
    assert "task: multiclass" in lines[0] and "rows: 6" in lines[0]
    assert any(line.startswith("topic (multiclass, 3 classes)") for line in lines)
    header = next(i for i, line in enumerate(lines) if "accuracy" in line and "macro_f1" in line)
    assert "0.5000" in lines[header + 1] and "0.4333" in lines[header + 1]
    class_rows = [line.split() for line in lines if line.split()[:1] in (["a"], ["b"], ["c"])]
    assert [row[0] for row in class_rows] == ["a", "b"]               # by support, ties by name
    assert class_rows[1][:3] == ["b", "2", "3"] and "0.6667" in class_rows[1]
    assert "1 of 3 classes left out" in text

    text = format_report(evaluate(MO_SPACE, MO_TRUE, MO_PRED))
    assert "exact_match: 0.3333" in text.splitlines()[0]
    assert "tags (multilabel, 2 classes)" in text and "samples_f1" in text
    assert "left out" not in text


def test_compare_reports_shows_before_after_and_delta():
    before = evaluate(ML_SPACE, ML_TRUE, ML_PRED)
    after = evaluate(ML_SPACE, ML_TRUE, ML_TRUE)           # a perfect post-processor
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in compare_reports(before, after).splitlines()}
    assert rows[("tags", "micro_f1")] == ["0.5714", "1.0000", "+0.4286"]
    assert rows[("tags", "hamming_loss")] == ["0.2500", "0.0000", "-0.2500"]
    assert rows[("tags", "rows_with_no_prediction")] == ["2", "1", "-1"]
    assert rows[("tags", "micro_roc_auc")] == ["-", "-", "-"]

    mo = compare_reports(evaluate(MO_SPACE, MO_TRUE, MO_PRED), evaluate(MO_SPACE, MO_TRUE, MO_TRUE))
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in mo.splitlines()}
    assert rows[("(all)", "exact_match")] == ["0.3333", "0.6667", "+0.3333"]
    assert rows[("topic", "accuracy")][:2] == ["0.3333", "0.6667"]
