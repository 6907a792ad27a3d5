"""Hybrid's TF-IDF weight: chosen on validation by ``fit`` when it tunes and no weight was given, recorded in
the model folder, and used by every way of predicting."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

import embedclf.features.hybrid as hybrid_module
import embedclf.features.weight as weight_module
from embedclf.data import DataOptions
from embedclf.encode.encoder import Encoder
from embedclf.features import DEFAULT_TFIDF_WEIGHT, TFIDF_WEIGHT_GRID
from embedclf.features.hybrid import join_blocks
from embedclf.features.tfidf import fit_terms, tfidf_vectorizer
from embedclf.fit import fit_classifier
from embedclf.heads import make_head
from embedclf.heads.linear import LogRegHead
from embedclf.features.weight import metric_label, target_metrics, validation_value
from embedclf.labels import MULTICLASS, MULTILABEL, LabelSpace, TargetSpace, block_decisions, labelled_matrix
from embedclf.model import TextClassifier
from embedclf.postprocess.thresholds import tune_thresholds
from tests.conftest import shared_file
from tests.test_model import GO, ROOT, encoder, goemotions_slice, run

@pytest.fixture
def counted(monkeypatch):
    """How many times the TF-IDF vectoriser and a logreg head were fitted."""
    counts = {"tfidf": 0, "head": 0}
    fit_terms_before, fit_before = hybrid_module.fit_terms, LogRegHead.fit

    def fit_terms_spy(vectorizer, texts):
        counts["tfidf"] += 1
        return fit_terms_before(vectorizer, texts)

    def fit_spy(self, *args, **kwargs):
        counts["head"] += 1
        return fit_before(self, *args, **kwargs)

    monkeypatch.setattr(hybrid_module, "fit_terms", fit_terms_spy)
    monkeypatch.setattr(LogRegHead, "fit", fit_spy)
    return counts


def test_fit_keeps_the_weight_with_the_best_validation_score(tiny_model, tmp_path, counted):
    train = GO.load(goemotions_slice(tmp_path, "train", 300), require_labels=True)
    valid = GO.load(goemotions_slice(tmp_path, "dev", 120), require_labels=True)
    lines = []
    classifier = fit_classifier(train, make_head("logreg"), encoder(tiny_model, tmp_path), data_options=GO,
                                valid=valid, tune_thresholds=True, tune_for="micro", say=lines.append)
    assert counted == {"tfidf": 1, "head": len(TFIDF_WEIGHT_GRID)}, "one vectoriser, one head fit per weight"

    # each weight scored independently: the same blocks, a fresh head, thresholds tuned for micro-F1
    space = LabelSpace.from_dataset(train)
    Y, Y_valid = labelled_matrix(space, train), labelled_matrix(space, valid)
    vectors = Encoder(tiny_model, cache=tmp_path / "cache", device="cpu", precision="fp32")
    dense, dense_valid = vectors.encode(train.texts), vectors.encode(valid.texts)
    vectoriser = tfidf_vectorizer()
    terms = fit_terms(vectoriser, train.texts)
    terms_valid = vectoriser.transform(valid.texts)
    expected = {}
    for weight in TFIDF_WEIGHT_GRID:
        head = make_head("logreg").fit(join_blocks(dense, terms, sparse_weight=weight), Y, layout=space.layout)
        scores = head.predict_proba(join_blocks(dense_valid, terms_valid, sparse_weight=weight))
        thresholds = tune_thresholds(Y_valid, scores, space.layout, objective="micro")
        expected[weight] = f1_score(Y_valid, block_decisions(scores, space.layout, thresholds), average="micro")

    record = classifier.info["tfidf_weight"]
    assert record["metric"] == "micro-F1"
    assert [t["weight"] for t in record["tried"]] == list(TFIDF_WEIGHT_GRID)
    for tried in record["tried"]:
        assert tried["validation"] == pytest.approx(expected[tried["weight"]], abs=1e-4)
    best = max(expected.values())
    winners = [w for w in TFIDF_WEIGHT_GRID if math.isclose(expected[w], best)]
    assert record["chosen"] == min(winners, key=lambda w: abs(math.log(w / DEFAULT_TFIDF_WEIGHT)))
    assert classifier.tfidf_weight == record["chosen"] == classifier.pipeline.named_steps["encode"].sparse_weight
    assert classifier.info["validation"]["labels"]["micro_f1"] == pytest.approx(best)  # the model kept is that one
    shown = [line for line in lines if line.startswith("tfidf weight: ")]
    assert shown == [f"tfidf weight: {record['chosen']:g} (validation micro-F1 {best:.3f}; "
                     + ", ".join(f"{w:g}: {expected[w]:.3f}" for w in TFIDF_WEIGHT_GRID if w != record["chosen"])
                     + ")"]


@pytest.mark.parametrize("changes, weight", [
    (dict(tune_thresholds=False), DEFAULT_TFIDF_WEIGHT),  # validation data but no tuning asked
    (dict(tune_thresholds=True, tfidf_weight=1.0), 1.0),  # a weight given, even the default, is kept
    (dict(tune_thresholds=True, tfidf_weight=3.0), 3.0),
    (dict(tune_thresholds=True, features="tfidf"), None),  # no embedding block to weigh against
])
def test_the_weight_is_tuned_only_when_asked_and_not_given(tiny_model, tmp_path, counted, changes, weight):
    train = GO.load(goemotions_slice(tmp_path, "train", 200), require_labels=True)
    classifier = fit_classifier(train, make_head("logreg"), encoder(tiny_model, tmp_path), data_options=GO,
                                valid_split=0.25, **changes)
    assert counted == {"tfidf": int(weight is not None), "head": 1}  # (the tfidf step fits in the pipeline)
    assert "tfidf_weight" not in classifier.info
    classifier.save(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "model.json").read_text())["features"].get("tfidf_weight") == weight


def test_every_way_of_predicting_uses_the_chosen_weight(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(weight_module, "TFIDF_WEIGHT_GRID", (0.25, 4.0))  # neither is the default of a reader
    train = GO.load(goemotions_slice(tmp_path, "train", 300), require_labels=True)
    test = goemotions_slice(tmp_path, "test", 60)
    classifier = fit_classifier(train, make_head("logreg"), encoder(tiny_model, tmp_path), data_options=GO,
                                valid_split=0.25, tune_thresholds=True)
    chosen = classifier.tfidf_weight
    assert chosen in (0.25, 4.0) and [t["weight"] for t in classifier.info["tfidf_weight"]["tried"]] == [0.25, 4.0]
    classifier.save(tmp_path / "model")
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    assert manifest["features"]["tfidf_weight"] == manifest["info"]["tfidf_weight"]["chosen"] == chosen
    texts = GO.load(test).texts
    expected = classifier.predict_proba(texts)

    predicted = run("predict", tmp_path / "model", test, "--out", tmp_path / "p.csv", "--cache", tmp_path / "cache",
                    "--device", "cpu")
    assert predicted.returncode == 0, predicted.stderr
    frame = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    columns = [f"p({name})" for name in classifier.space.targets[0].classes]
    np.testing.assert_allclose(frame[columns].to_numpy(), expected, rtol=0, atol=2e-5)
    loaded = TextClassifier.load(tmp_path / "model", cache=tmp_path / "cache")  # what evaluate and serve load
    np.testing.assert_allclose(loaded.predict_proba(texts), expected, rtol=0, atol=1e-6)
    served = loaded.scores(loaded.head_input(texts, loaded.encoder.encode(texts)))  # the service's path
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-6)
    loaded.pipeline.named_steps["encode"].sparse_weight = DEFAULT_TFIDF_WEIGHT
    assert not np.allclose(loaded.predict_proba(texts), expected, atol=1e-3), "the weight must matter here"


def test_a_multioutput_task_is_scored_by_its_targets_mean_accuracy(tiny_model, tmp_path):
    frame = pd.read_csv(shared_file("cfpb-complaints", "complaints.csv"), dtype=str, keep_default_na=False)
    frame.iloc[:1500].to_csv(tmp_path / "train.csv", index=False)
    options = DataOptions(("Consumer complaint narrative",), ("Product", "Issue"))
    train = options.load(tmp_path / "train.csv", require_labels=True)
    classifier = fit_classifier(train, make_head("logreg"), encoder(tiny_model, tmp_path), data_options=options,
                                valid_split=0.25, tune_thresholds=True, tune_for="macro")
    record, validation = classifier.info["tfidf_weight"], classifier.info["validation"]
    assert record["metric"] == "accuracy (mean of 2 targets)"  # multi-class targets: --tune-for is for multi-label
    kept = next(t for t in record["tried"] if t["weight"] == record["chosen"])
    assert kept["validation"] == pytest.approx((validation["Product"]["accuracy"] + validation["Issue"]["accuracy"])
                                               / 2, abs=1e-4)
    assert kept["validation"] == max(t["validation"] for t in record["tried"])


def test_target_metrics_follow_each_targets_kind():
    space = LabelSpace([TargetSpace("topics", MULTILABEL, ["a", "b"]), TargetSpace("priority", MULTICLASS, ["x", "y"])])
    metrics = target_metrics(space, "micro")
    assert metrics == {"topics": "micro_f1", "priority": "accuracy"}
    assert metric_label(metrics) == "accuracy/micro-F1 (mean of 2 targets)"
    validation = {"topics": {"micro_f1": 0.5, "accuracy": 0.0}, "priority": {"micro_f1": 0.0, "accuracy": 0.75},
                  "rows": 10}
    assert validation_value(validation, metrics) == 0.625


def test_cli_fit_tunes_the_weight_and_says_so(tiny_model, tmp_path):
    out = tmp_path / "model"
    fitted = run("fit", ROOT / "examples" / "tickets.csv", "--text-col", "subject", "--text-col", "body",
                 "--label-col", "topics", "--label-sep", "|", "--valid-split", "0.25", "--tune-thresholds",
                 "--tune-for", "micro", "--out", out, "--model", tiny_model, "--cache", tmp_path / "cache",
                 "--device", "cpu", cwd=tmp_path)
    assert fitted.returncode == 0, fitted.stderr
    manifest = json.loads((out / "model.json").read_text())
    chosen = manifest["info"]["tfidf_weight"]["chosen"]
    assert manifest["features"] | {"terms": 0} == {"kind": "hybrid", "file": "features.skops", "terms": 0,
                                                   "ngrams": "word", "tfidf_weight": chosen}
    assert [line for line in fitted.stderr.splitlines() if line.startswith("tfidf weight: ")][0].startswith(
        f"tfidf weight: {chosen:g} (validation micro-F1 ")


@pytest.mark.parametrize("value, message", [
    ("0", "embedclf: error: --tfidf-weight must be a number above 0 and at most 100, got 0.0"),
    ("-1", "embedclf: error: --tfidf-weight must be a number above 0 and at most 100, got -1.0"),
    ("nan", "embedclf: error: --tfidf-weight must be a number above 0 and at most 100, got nan"),
    ("abc", "Error: Invalid value for '--tfidf-weight': "),  # click's usage error: the usage, then one error line
])
def test_bad_weights_are_refused_in_one_line(tmp_path, value, message):
    result = run("fit", ROOT / "examples" / "tickets.csv", "--label-col", "topics", "--tfidf-weight", value,
                 "--out", tmp_path / "model", "--model", tmp_path / "no-such-model", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(message) and (value == "abc" or len(lines) == 1), result.stderr
    assert not (tmp_path / "model").exists()
