"""Label co-occurrence rules on hand-made label matrices whose rules are known, plus one real data set."""

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import f1_score

from embedclf.data import Dataset, Target
from embedclf.errors import EmbedclfError
from embedclf.labels import MULTILABEL, LabelSpace, TargetSpace
from embedclf.postprocess.cooccur import (CooccurrenceRules, RuleSettings, learn_rules, select_threshold,
                                          tune_rule_threshold)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rows(n, *labels_per_row):
    """``n`` copies of each row pattern, e.g. rows(3, [0, 1]) -> three rows with labels 0 and 1."""
    return [pattern for pattern in labels_per_row for _ in range(n)]


def matrix(label_rows, n_labels):
    Y = np.zeros((len(label_rows), n_labels), dtype=np.int8)
    for i, labels in enumerate(label_rows):
        Y[i, labels] = 1
    return Y


def pairs(rules):
    return {(r["antecedent"], r["consequent"]) for r in rules.rules_}


# At threshold 0.8: A -> B (8/10) and B -> C (12/14), but not A -> C directly (6/10), nor anything back.
CHAIN = matrix(rows(6, [0, 1, 2]) + rows(2, [0, 1]) + rows(2, [0]) + rows(6, [1, 2]) + rows(20, [2]), 3)


def test_chain_is_followed_to_its_closure():
    rules = CooccurrenceRules(threshold=0.8, min_support=5).fit(CHAIN, ["A", "B", "C"])
    assert pairs(rules) == {("A", "B"), ("B", "C")}
    assert rules.rules_ == [
        {"antecedent": "B", "consequent": "C", "confidence": 12 / 14, "support": 14, "joint": 12},
        {"antecedent": "A", "consequent": "B", "confidence": 0.8, "support": 10, "joint": 8},
    ]
    assert rules.label_counts_.tolist() == [10, 14, 32]
    Y_new, added = rules.apply(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]]))
    assert Y_new.tolist() == [[1, 1, 1], [0, 1, 1], [0, 0, 1]]
    assert added.tolist() == [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    assert Y_new.dtype == np.int8 and added.dtype == np.int8


def test_cycle_sets_both_ways():
    Y = matrix(rows(6, [0, 1], [2]), 3)
    rules = CooccurrenceRules(0.9, 5).fit(Y, ["A", "B", "C"])
    assert pairs(rules) == {("A", "B"), ("B", "A")}
    Y_new, added = rules.apply(np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]]))
    assert Y_new.tolist() == [[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert added.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_threshold_is_inclusive():
    # P(B|A) = 9/10 exactly; P(C|A) = 8/10 just below.
    Y = matrix(rows(1, *([[0, 1, 2]] * 8 + [[0, 1]] + [[0]])), 3)
    rules = CooccurrenceRules(threshold=0.9, min_support=5).fit(Y, ["A", "B", "C"])
    assert ("A", "B") in pairs(rules) and ("A", "C") not in pairs(rules)
    assert {("A", "B"), ("A", "C")} <= pairs(CooccurrenceRules(threshold=0.8, min_support=5).fit(Y, ["A", "B", "C"]))
    assert ("A", "B") not in pairs(CooccurrenceRules(threshold=0.91, min_support=5).fit(Y, ["A", "B", "C"]))


def test_min_support_and_zero_support():
    # A appears 4 times, always with B; Z never appears.
    Y = matrix(rows(4, [0, 1]) + rows(10, [1]), 3)
    names = ["A", "B", "Z"]
    assert CooccurrenceRules(0.9, min_support=5).fit(Y, names).rules_ == []
    assert pairs(CooccurrenceRules(0.9, min_support=4).fit(Y, names)) == {("A", "B")}
    with np.errstate(all="raise"):  # no division by a zero count
        rules = CooccurrenceRules(0.1, min_support=1).fit(Y, names)
    assert not any("Z" in pair for pair in pairs(rules))
    assert rules.label_counts_.tolist() == [4, 14, 0]


def test_empty_rows_stay_empty_and_input_is_not_changed():
    rules = CooccurrenceRules(0.8, 5).fit(CHAIN, ["A", "B", "C"])
    Y_pred = np.array([[0, 0, 0], [1, 0, 0]], dtype=np.int8)
    Y_new, added = rules.apply(Y_pred)
    assert Y_new.tolist() == [[0, 0, 0], [1, 1, 1]] and added[0].tolist() == [0, 0, 0]
    assert Y_pred.tolist() == [[0, 0, 0], [1, 0, 0]]
    Y_new, added = rules.apply(np.zeros((0, 3)))
    assert Y_new.shape == added.shape == (0, 3)


def test_sparse_input_gives_the_same_rules_and_decisions():
    dense = CooccurrenceRules(0.5, 5).fit(CHAIN, ["A", "B", "C"])
    sparse = CooccurrenceRules(0.5, 5).fit(sp.csr_matrix(CHAIN), ["A", "B", "C"])
    assert sparse.rules_ == dense.rules_
    Y_pred = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 0]])
    for got, want in zip(sparse.apply(sp.csc_matrix(Y_pred)), dense.apply(Y_pred)):
        assert np.array_equal(got, want)


def test_bad_input_is_a_clear_error():
    with pytest.raises(EmbedclfError, match="only 0 and 1"):
        CooccurrenceRules().fit(np.array([[2, 0]]), ["A", "B"])
    with pytest.raises(EmbedclfError, match="3 label columns but 2"):
        CooccurrenceRules().fit(np.zeros((2, 3)), ["A", "B"])
    with pytest.raises(EmbedclfError, match=r"threshold must be in \(0, 1\]"):
        CooccurrenceRules(threshold=1.5).fit(CHAIN, ["A", "B", "C"])


def test_save_load_round_trip(tmp_path):
    rules = CooccurrenceRules(0.5, 5).fit(CHAIN, ["A", "B", "C"])
    path = tmp_path / "rules.json"
    rules.save(path)
    document = json.loads(path.read_text())
    assert document["threshold"] == 0.5 and document["min_support"] == 5
    assert document["labels"] == [{"name": "A", "count": 10}, {"name": "B", "count": 14}, {"name": "C", "count": 32}]
    confidences = [(r["confidence"], r["support"]) for r in document["rules"]]
    assert confidences == sorted(confidences, key=lambda c: (-c[0], -c[1]))
    loaded = CooccurrenceRules.load(path)
    assert loaded.rules_ == rules.rules_ and loaded.label_names_ == rules.label_names_
    assert loaded.get_params() == rules.get_params()
    assert np.array_equal(loaded.apply(np.eye(3))[0], rules.apply(np.eye(3))[0])
    assert not list(tmp_path.glob(".tmp-*"))  # written by an atomic rename


def test_load_errors(tmp_path):
    with pytest.raises(EmbedclfError, match="no such rules file"):
        CooccurrenceRules.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(EmbedclfError, match="not valid JSON"):
        CooccurrenceRules.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"threshold": 0.9}')
    with pytest.raises(EmbedclfError, match="malformed"):
        CooccurrenceRules.load(tmp_path / "other.json")


def test_graph_and_graphml(tmp_path):
    rules = CooccurrenceRules(0.8, 5).fit(CHAIN, ["A", "B", "C"])
    path = tmp_path / "rules.graphml"
    rules.save_graphml(path)
    graph = nx.read_graphml(path)
    assert set(graph.edges) == {("A", "B"), ("B", "C")}
    assert graph.nodes["C"]["count"] == 32
    assert graph.edges["B", "C"]["confidence"] == pytest.approx(12 / 14) and graph.edges["B", "C"]["joint"] == 12


@pytest.mark.parametrize("threshold", [0.5, 1.0])
def test_plot_writes_a_png(tmp_path, threshold):
    Y = CHAIN if threshold == 0.5 else matrix(rows(5, [0], [1]), 3)  # the second case has no rules
    rules = CooccurrenceRules(threshold, 5).fit(Y, ["A", "B", "C"])
    path = tmp_path / "rules.png"
    rules.plot(path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_align_to_a_model_with_other_label_order():
    rules = CooccurrenceRules(0.8, 5).fit(CHAIN, ["A", "B", "C"])
    # The model orders its labels C, X, A and has no B: both rules go, but A -> B -> C still holds.
    aligned = rules.align(["C", "X", "A"])
    assert aligned.dropped_labels_ == ["B"] and aligned.dropped_rules_ == 2 and aligned.rules_ == []
    assert aligned.label_counts_.tolist() == [32, 0, 10]
    Y_new, added = rules.apply(np.array([[0, 0, 1], [0, 1, 0]]), label_names=["C", "X", "A"])
    assert Y_new.tolist() == [[1, 0, 1], [0, 1, 0]] and added.tolist() == [[1, 0, 0], [0, 0, 0]]


def test_rules_for_other_labels_raise(tmp_path):
    rules = CooccurrenceRules(0.8, 5).fit(CHAIN, ["A", "B", "C"])
    rules.save(tmp_path / "rules.json")
    loaded = CooccurrenceRules.load(tmp_path / "rules.json")
    with pytest.raises(EmbedclfError, match="rules file .*rules.json is for other labels than the model's"):
        loaded.apply(np.zeros((1, 2)), label_names=["joy", "anger"])


def test_select_threshold_picks_the_predictable_threshold():
    # Training: P(B|A) = P(A|B) = 1.0, P(C|A) = P(C|B) = 0.75, P(A|C) = P(B|C) = 15/35.
    Y_train = matrix(rows(15, [0, 1, 2]) + rows(5, [0, 1]) + rows(20, [2]), 3)
    names = ["A", "B", "C"]
    # Validation: whenever A is true so is B, C never is; the head only predicts A.
    Y_true = matrix(rows(4, [0, 1]) + rows(4, [2]), 3)
    Y_pred = matrix(rows(4, [0]) + rows(4, [2]), 3)
    best, curve = select_threshold(Y_train, names, Y_true, Y_pred, grid=(0.5, 0.7, 0.8, 0.9, 1.0))
    # >= 0.8 keeps only A <-> B (perfect); <= 0.7 also adds the wrong C. Ties go to the highest: 1.0.
    assert best == 1.0
    by_threshold = {p["threshold"]: p for p in curve}
    assert by_threshold[None]["n_rules"] == 0 and by_threshold[None]["micro_f1"] == pytest.approx(2 * 8 / (8 + 12))
    assert [by_threshold[t]["n_rules"] for t in (0.5, 0.7, 0.8, 0.9, 1.0)] == [4, 4, 2, 2, 2]
    assert by_threshold[1.0]["micro_f1"] == 1.0 and by_threshold[0.5]["micro_f1"] < 1.0
    with_c = CooccurrenceRules(0.5, 5).fit(Y_train, names).apply(Y_pred)[0]  # the scores agree with sklearn's
    assert by_threshold[0.5]["micro_f1"] == pytest.approx(f1_score(Y_true, with_c, average="micro"))
    assert by_threshold[0.5]["macro_f1"] == pytest.approx(f1_score(Y_true, with_c, average="macro"))
    # Rules that only hurt: the baseline (None) wins.
    best, _ = select_threshold(Y_train, names, matrix(rows(4, [0]), 3), matrix(rows(4, [0]), 3), grid=(0.9,))
    assert best is None


def test_reuters_grain_rules():
    path = SHARED / "reuters21578" / "train.jsonl"
    if not path.is_file():
        pytest.skip(f"shared Reuters data not found at {path}")
    labels = [json.loads(line)["labels"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    names = sorted({label for row in labels for label in row})
    index = {name: i for i, name in enumerate(names)}
    Y = matrix([[index[label] for label in row] for row in labels], len(names))
    found = pairs(CooccurrenceRules(threshold=0.9, min_support=5).fit(Y, names))
    assert {("corn", "grain"), ("wheat", "grain")} <= found


@pytest.mark.parametrize("threshold", [0, 0.0, -0.5, 1.5, float("nan"), float("inf"), float("-inf"), True, "0.5", None])
def test_thresholds_outside_0_1_are_refused_in_one_line(threshold):
    with pytest.raises(EmbedclfError, match=r"^co-occurrence threshold must be in \(0, 1\], got [^\n]+$"):
        RuleSettings(threshold, 5)
    with pytest.raises(EmbedclfError, match=r"threshold must be in \(0, 1\]"):
        CooccurrenceRules(threshold, 5).fit(CHAIN, ["A", "B", "C"])
    with pytest.raises(EmbedclfError, match=r"threshold must be in \(0, 1\]"):
        select_threshold(CHAIN, ["A", "B", "C"], CHAIN, CHAIN, grid=(0.5, threshold))


@pytest.mark.parametrize("min_support", [0, -1, 2.5, True])
def test_bad_min_support_is_refused(min_support):
    with pytest.raises(EmbedclfError, match="min support must be a whole number >= 1"):
        RuleSettings(0.9, min_support)


def test_settings_are_frozen_and_accept_the_edges():
    settings = RuleSettings(1.0, 1)
    assert (settings.threshold, settings.min_support) == (1.0, 1)
    assert RuleSettings(np.float32(0.5), np.int64(3)).min_support == 3
    with pytest.raises(AttributeError):
        settings.threshold = 2.0


def labelled(path, label_rows):
    return Dataset(path, [f"text {i}" for i in range(len(label_rows))], np.arange(len(label_rows)),
                   [Target("labels", MULTILABEL, [list(r) for r in label_rows])], n_rows=len(label_rows))


def test_learn_rules_refuses_a_bad_threshold_before_counting():
    dataset = labelled("train.csv", [["A", "B"]] * 6)
    with pytest.raises(EmbedclfError, match=r"threshold must be in \(0, 1\], got 1.5"):
        learn_rules(dataset, 1.5, 5)
    assert pairs(learn_rules(dataset, 1.0, 5)) == {("A", "B"), ("B", "A")}


class FixedClassifier:
    """A stand-in for a fitted model over labels A, B, C whose decisions are given up front."""

    def __init__(self, decisions):
        self.space = LabelSpace([TargetSpace("labels", MULTILABEL, ["A", "B", "C"])])
        self.decisions = np.asarray(decisions, dtype=np.int8)

    def embed(self, texts):
        return np.zeros((len(texts), 1))

    def scores(self, X):
        return self.decisions.astype(np.float32)

    def decide(self, scores, *, rules=True):
        return (scores > 0.5).astype(np.int8), None


# Training: A always comes with B (and B mostly with A); the validation truth never pairs them.
TRAIN_ROWS = [["A", "B"]] * 12 + [["B"]] * 2 + [["C"]] * 6


def test_auto_threshold_with_no_helpful_rule_reports_no_support_beyond_the_rows(tmp_path):
    valid = labelled("valid.csv", [["A"]] * 4 + [["C"]] * 4)
    classifier = FixedClassifier([[1, 0, 0]] * 4 + [[0, 0, 1]] * 4)  # already perfect: any rule hurts
    rules, curve = tune_rule_threshold(labelled("train.csv", TRAIN_ROWS), classifier, valid, min_support=5)
    assert curve[0]["micro_f1"] == 1.0 and all(p["micro_f1"] < 1.0 for p in curve[1:] if p["n_rules"])
    assert rules.rules_ == [] and rules.n_rows_ == len(TRAIN_ROWS)
    assert rules.min_support == 5 <= rules.n_rows_ and rules.threshold == 1.0
    assert rules.summary().startswith("no co-occurrence rules: none of thresholds 0.5 to 1")
    assert str(len(TRAIN_ROWS) + 1) not in rules.summary()
    rules.save(tmp_path / "rules.json")
    document = json.loads((tmp_path / "rules.json").read_text())
    assert document["min_support"] <= document["n_rows"] == len(TRAIN_ROWS) and document["rules"] == []
    loaded = CooccurrenceRules.load(tmp_path / "rules.json")
    assert loaded.note_ == rules.note_ and loaded.summary() == rules.summary()
    assert np.array_equal(loaded.apply(np.eye(3))[0], np.eye(3))
    rules.plot(tmp_path / "rules.png")
    assert (tmp_path / "rules.png").read_bytes().startswith(PNG_MAGIC)


def test_auto_threshold_keeps_the_rules_that_help():
    valid = labelled("valid.csv", [["A", "B"]] * 4 + [["C"]] * 4)
    classifier = FixedClassifier([[1, 0, 0]] * 4 + [[0, 0, 1]] * 4)  # misses B, which A -> B restores
    rules, curve = tune_rule_threshold(labelled("train.csv", TRAIN_ROWS), classifier, valid, min_support=5)
    assert ("A", "B") in pairs(rules) and rules.note_ is None
    assert rules.threshold == max(p["threshold"] for p in curve[1:] if p["micro_f1"] == 1.0)
    assert rules.min_support == 5 and "support >= 5" in rules.summary()
    with pytest.raises(EmbedclfError, match=r"threshold must be in \(0, 1\]"):
        tune_rule_threshold(labelled("train.csv", TRAIN_ROWS), classifier, valid, grid=(0.5, 2.0))
