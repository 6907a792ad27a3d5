"""embedclf sweep: grids from TOML, one encode for many heads, the fit split, failures, resume, the best folder."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from embedclf.data import DataOptions
from embedclf.encode.cache import EmbeddingCache
from embedclf.encode.encoder import Encoder
from embedclf.encode.settings import EncoderSettings
from embedclf.errors import EmbedclfError
from embedclf.fit import fit_classifier
from embedclf.heads import make_head
from embedclf.sweep import SweepSettings, default_grid, load_grid, sweep_files
from embedclf.sweep.grid import grid_from_dict
from tests.test_model import ROOT, goemotions_slice, run

GRID = """
threshold_modes = ["fixed", "micro"]
rule_thresholds = ["none", 0.5]
rule_min_support = 2

[[heads]]
head = "logreg"
C = [0.5, 2.0]

[[heads]]
head = "knn"
n_neighbors = [3, 1000]   # more neighbours than rows: fails, is recorded, the sweep goes on
"""
GO = DataOptions(["text"], ["labels"], columns=["text", "labels", "id"], label_sep=",")
GO_ARGS = ["--columns", "text,labels,id", "--text-col", "text", "--label-col", "labels", "--label-sep", ","]


@pytest.fixture
def grid_file(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    return path


def read_results(out) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_default_grid_has_twenty_linear_and_knn_configurations_and_the_example_grid_parses():
    grid = default_grid()
    assert len(grid.configurations()) >= 20 and {h.head for h in grid.heads} <= {"logreg", "svm", "knn"}
    assert len(grid.configurations(multilabel=False)) == len(grid.heads)  # decisions collapse for multi-class
    assert {c.features for c in grid.configurations() if c.head.head == "svm"} == {"hybrid"}
    assert {c.features for c in grid.configurations() if c.head.head != "svm"} == {"embedding"}
    example = load_grid(ROOT / "examples" / "grid.toml")
    assert {h.head for h in example.heads} == {"logreg", "svm", "knn", "mlp"}
    assert ("hidden", (512, 256)) in [p for h in example.heads for p in h.params]
    keys = [c.key for c in example.configurations()]
    fits = {"logreg": 3, "knn": 3, "svm": 2, "mlp": 1}  # embedding + hybrid at two weights; svm hybrid; mlp embedding
    assert len(keys) == len(set(keys)) == sum(fits[h.head] for h in example.heads) * 3 * 3


@pytest.mark.parametrize("document, message", [
    ({"heads": [{"head": "forest"}]}, "unknown head 'forest'"),
    ({"heads": [{"head": "logreg", "C": [1.0, -1.0]}]}, "logreg C=-1: --C must be positive"),
    ({"heads": [{"head": "logreg", "neighbors": [3]}]}, "the logreg head takes no 'neighbors'"),
    ({"heads": [{"head": "knn"}], "threshold_modes": ["median"]}, "threshold mode 'median' is not one of"),
    ({"heads": [{"head": "knn"}], "features": ["words"]}, "feature set 'words' is not one of"),
    ({"heads": [{"head": "mlp"}], "features": ["hybrid"]}, "no head in the grid takes it (logreg, svm, knn do)"),
    ({"heads": [{"head": "knn"}], "features": ["hybrid"], "tfidf_weights": [0]}, "tfidf_weights must be numbers"),
    ({"heads": [{"head": "mlp", "features": ["tfidf"]}]}, "mlp: the mlp head takes the embedding only"),
    ({"heads": [{"head": "knn"}], "features": ["tfidf"], "tfidf_ngrams": ["char"]},
     "tfidf_ngrams 'char' is not one of: word, word+char"),
    ({"heads": [{"head": "knn"}], "tfidf_ngrams": ["word", "word"]}, "tfidf_ngrams lists a value twice"),
    ({"heads": [{"head": "knn"}], "tfidf_ngrams": "word+char"}, "tfidf_ngrams must be a list"),
    ({"heads": [{"head": "knn", "features": ["words"]}]}, "feature set 'words' is not one of"),
    ({"heads": [{"head": "knn", "features": "hybrid"}]}, "features must be a list"),
    ({"heads": [{"head": "knn"}], "rule_thresholds": [1.5]}, "co-occurrence threshold must be in (0, 1]"),
    ({"heads": [{"head": "knn"}], "colour": "red"}, "unknown key 'colour'"),
    ({"heads": []}, "no heads to try"),
])
def test_bad_grids_are_one_line_naming_the_problem(document, message):
    with pytest.raises(EmbedclfError) as caught:
        grid_from_dict(document, "--grid g.toml")
    assert message in str(caught.value) and str(caught.value).startswith("--grid g.toml: ")
    assert "\n" not in str(caught.value)


def test_cli_refuses_a_bad_grid_before_any_work(tiny_model, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("heads = [")
    with pytest.raises(EmbedclfError, match=f"--grid {bad}: not valid TOML"):
        load_grid(bad)
    bad.write_text("[[heads]]\nhead = 'svm'\nC = [0]\n")
    result = run("sweep", ROOT / "examples" / "tickets.csv", "--label-col", "topics", "--label-sep", "|",
                 "--grid", bad, "--out", tmp_path / "sweep", "--model", tiny_model, "--cache", tmp_path / "cache",
                 cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"embedclf: error: --grid {bad}: svm C=0: --C must be positive, got 0"], result.stderr
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "cache").exists()


def test_cli_refuses_a_metric_the_task_lacks(tiny_model, tmp_path):
    result = run("sweep", ROOT / "examples" / "tickets.csv", "--text-col", "subject", "--label-col", "topics",
                 "--label-sep", "|", "--metric", "accuracy", "--out", tmp_path / "sweep", "--model", tiny_model,
                 "--cache", tmp_path / "cache", cwd=tmp_path)
    assert result.returncode == 2 and "--metric accuracy is not defined for the multilabel target" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "sweep").exists()
    assert sum(space.entries for space in EmbeddingCache(tmp_path / "cache").spaces()) == 0  # nothing encoded


def test_sweep_end_to_end_through_the_cli(tiny_model, tmp_path, grid_file):
    train, test = goemotions_slice(tmp_path, "train", 300), goemotions_slice(tmp_path, "test", 60)
    out = tmp_path / "sweep"
    common = ["--model", tiny_model, "--cache", tmp_path / "cache", "--device", "cpu"]
    swept = run("sweep", train, *GO_ARGS, "--grid", grid_file, "--out", out, "--jobs", "2", *common, cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr
    assert "300 encoded" in swept.stderr and swept.stderr.count("encoded") >= 1
    records = read_results(out)
    assert len(records) == 16 and len({r["key"] for r in records}) == 16
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 4 and all("knn n_neighbors=1000" in r["key"] for r in failed)
    assert all(re.fullmatch(r"ValueError: n_neighbors=1000 is more than the \d+ training rows; use at most \d+",
                            r["error"]) for r in failed), failed[0]["error"]
    board = pd.read_csv(out / "leaderboard.csv")
    scored = board[board["status"] == "ok"]
    assert list(scored["rank"]) == list(range(1, 13))
    assert list(scored["micro-f1"]) == sorted(scored["micro-f1"], reverse=True)
    assert (scored["fit_seconds"] > 0).all() and (scored["predict_ms_per_1k"] > 0).all()
    assert board[board["status"] == "failed"]["error"].str.contains("n_neighbors=1000").all()
    assert "| 1 | " in (out / "leaderboard.md").read_text()
    assert (out / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((out / "best" / "model.json").read_text())
    assert manifest["info"]["sweep"]["configuration"] == scored.iloc[0]["configuration"]
    assert manifest["info"]["train_rows"] == 300  # refitted on all of TRAIN
    predicted = run("predict", out / "best", test, "--out", tmp_path / "p.csv", *common[2:], cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == 60


def test_feature_sets_pair_with_the_heads_that_take_them():
    grid = grid_from_dict({"heads": [{"head": "logreg"}, {"head": "mlp", "epochs": [2]}],
                           "features": ["embedding", "tfidf", "hybrid"], "tfidf_weights": [0.5, 2.0],
                           "threshold_modes": ["fixed"]})
    keys = [c.fit_key for c in grid.configurations()]
    assert sorted(keys) == sorted(["logreg | features=embedding", "logreg | features=tfidf",
                                   "logreg | features=hybrid tfidf_weight=0.5",
                                   "logreg | features=hybrid tfidf_weight=2",
                                   "mlp epochs=2 | features=embedding"])
    assert grid.dense_only_pairs() == 3  # mlp x tfidf and mlp x hybrid at two weights
    own = grid_from_dict({"heads": [{"head": "logreg"}, {"head": "svm", "C": [0.1], "features": ["hybrid"]}],
                          "threshold_modes": ["fixed"]})
    assert [c.fit_key for c in own.configurations()] == ["logreg | features=embedding",
                                                          "svm C=0.1 | features=hybrid tfidf_weight=1"]


def test_word_and_char_ngrams_are_a_feature_axis_with_their_own_vectoriser():
    from embedclf.features.tfidf import term_count, tfidf_vectorizer
    from embedclf.sweep.features import fold_features

    grid = grid_from_dict({"heads": [{"head": "logreg"}, {"head": "mlp", "epochs": [2]}],
                           "features": ["embedding", "hybrid"], "tfidf_ngrams": ["word", "word+char"],
                           "threshold_modes": ["fixed"]})
    configurations = grid.configurations()
    assert sorted(c.fit_key for c in configurations) == sorted([
        "logreg | features=embedding", "logreg | features=hybrid tfidf_weight=1",  # word: keys as before
        "logreg | features=hybrid tfidf_weight=1 ngrams=word+char", "mlp epochs=2 | features=embedding"])
    assert grid.dense_only_pairs() == 2
    texts = ["red apple pie", "red apple tart", "green pear pie", "green pear tart", "blue plum jam"]
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    matrices = fold_features(configurations, X, texts, [(np.arange(4), np.arange(4, 5))])
    word, both = matrices["hybrid tfidf_weight=1"][0], matrices["hybrid tfidf_weight=1 ngrams=word+char"][0]
    assert word.train.shape[1] == 4 + term_count(tfidf_vectorizer("word").fit(texts[:4]))
    assert both.train.shape[1] == 4 + term_count(tfidf_vectorizer("word+char").fit(texts[:4])) > word.train.shape[1]


def test_tfidf_is_learnt_per_fold_from_training_rows_only():
    from embedclf.features.tfidf import tfidf_vectorizer
    from embedclf.sweep.features import fold_features

    grid = grid_from_dict({"heads": [{"head": "logreg"}], "features": ["embedding", "tfidf", "hybrid"]})
    texts = ["red apple pie", "red apple tart", "green pear pie", "green pear tart",
             "blue plum jam", "blue plum jam"]  # "blue plum jam" twice: in validation only below
    X = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    folds = [(np.arange(4), np.arange(4, 6))]
    matrices = fold_features(grid.configurations(), X, texts, folds)
    vocabulary = tfidf_vectorizer().fit(texts[:4]).vocabulary_
    tfidf = matrices["tfidf"][0]
    assert tfidf.train.shape == (4, len(vocabulary)) and tfidf.valid.nnz == 0  # no validation word was learnt
    hybrid = matrices["hybrid tfidf_weight=1"][0]
    assert hybrid.train.shape == (4, 4 + len(vocabulary))
    assert np.allclose(np.linalg.norm(hybrid.valid.toarray()[:, :4], axis=1), 1.0)  # the embedding, L2-normalised
    np.testing.assert_array_equal(matrices["embedding"][0].valid, X[4:])


def test_a_hybrid_best_configuration_is_saved_with_its_vectoriser_and_predicts(tiny_model, tmp_path):
    train, test = goemotions_slice(tmp_path, "train", 300), goemotions_slice(tmp_path, "test", 40)
    grid = tmp_path / "grid.toml"
    grid.write_text('features = ["hybrid"]\ntfidf_weights = [0.5, 2.0]\nthreshold_modes = ["micro"]\n'
                    '[[heads]]\nhead = "logreg"\nC = [1.0]\n[[heads]]\nhead = "mlp"\nepochs = [2]\n')
    out = tmp_path / "sweep"
    common = ["--model", tiny_model, "--cache", tmp_path / "cache", "--device", "cpu"]
    swept = run("sweep", train, *GO_ARGS, "--grid", grid, "--out", out, *common, cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr
    assert "2 head x feature set pairs left out: mlp and chain take the embedding only" in swept.stderr
    records = read_results(out)
    assert sorted(r["configuration"]["tfidf_weight"] for r in records) == [0.5, 2.0]
    assert all(r["status"] == "ok" and r["predict_ms_per_1k"] > 0 for r in records)
    best = json.loads((out / "best" / "model.json").read_text())
    assert best["info"]["sweep"]["configuration"] == ranked_first(out)
    assert best["features"]["kind"] == "hybrid" and (out / "best" / "features.skops").exists()
    assert best["features"]["tfidf_weight"] == float(ranked_first(out).split("tfidf_weight=")[1].split(" ")[0])
    predicted = run("predict", out / "best", test, "--out", tmp_path / "p.csv", *common[2:], cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == 40


def test_a_word_and_char_best_configuration_is_refitted_with_them(tiny_model, tmp_path):
    train = goemotions_slice(tmp_path, "train", 200)
    grid = tmp_path / "grid.toml"
    grid.write_text('features = ["tfidf"]\ntfidf_ngrams = ["word+char"]\nthreshold_modes = ["fixed"]\n'
                    '[[heads]]\nhead = "logreg"\nC = [1.0]\n')
    out = tmp_path / "sweep"
    swept = run("sweep", train, *GO_ARGS, "--grid", grid, "--out", out, "--model", tiny_model,
                "--cache", tmp_path / "cache", "--device", "cpu", cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr
    assert ranked_first(out) == "logreg C=1 | features=tfidf ngrams=word+char | thresholds=fixed | rules=none"
    assert [r["configuration"]["tfidf_ngrams"] for r in read_results(out)] == ["word+char"]
    assert json.loads((out / "best" / "model.json").read_text())["features"]["ngrams"] == "word+char"


def ranked_first(out) -> str:
    return pd.read_csv(out / "leaderboard.csv").iloc[0]["configuration"]


def test_validation_metrics_match_fit_on_the_same_split(tiny_model, tmp_path, grid_file):
    """A fixed-threshold configuration scores what ``fit --valid-split 0.1`` stores: same rows, same metrics."""
    train = GO.load(goemotions_slice(tmp_path, "train", 300), require_labels=True)
    settings = EncoderSettings(tiny_model, device="cpu", precision="fp32")
    result = sweep_files(train.path, tmp_path / "sweep", load_grid(grid_file), settings, SweepSettings(), GO,
                         cache=tmp_path / "cache")
    record = next(r for r in result["records"] if r["key"].startswith("logreg C=2 ") and
                  r["key"].endswith("thresholds=fixed | rules=none"))
    fitted = fit_classifier(train, make_head("logreg", C=2.0), Encoder(settings, cache=tmp_path / "cache"),
                            data_options=GO, valid_split=0.1, features="embedding")
    assert record["valid_rows"] == fitted.info["validation"]["rows"] > 0
    for name in ("micro_f1", "macro_f1", "hamming_loss"):
        assert record["metrics"]["labels"][name] == pytest.approx(fitted.info["validation"]["labels"][name])


def test_cv_folds_validate_every_row_once(tiny_model, tmp_path):
    grid = grid_from_dict({"heads": [{"head": "logreg", "C": [1.0]}], "threshold_modes": ["fixed", "macro"]})
    result = sweep_files(ROOT / "examples" / "tickets.csv", tmp_path / "sweep", grid,
                         EncoderSettings(tiny_model, device="cpu"), SweepSettings(cv=3, metric="macro-f1"),
                         DataOptions(("subject", "body"), ("priority",)), cache=tmp_path / "cache")
    assert [r["folds"] for r in result["records"]] == [3]  # multi-class: the threshold modes collapse to one
    assert result["records"][0]["valid_rows"] == 24
    assert result["best"]["score"] == pytest.approx(result["records"][0]["metrics"]["priority"]["macro_f1"])


def test_interrupted_sweep_resumes_skipping_finished_configurations(tiny_model, tmp_path, grid_file, monkeypatch):
    import embedclf.sweep.scoring as scoring

    train = goemotions_slice(tmp_path, "train", 200)
    out = tmp_path / "sweep"
    calls = []
    real = scoring.fit_and_score

    def interrupted(configurations, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the third head fits
        calls.append(configurations[0].fit_key)
        return real(configurations, *args, **kwargs)

    monkeypatch.setattr(scoring, "fit_and_score", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep_files(train, out, load_grid(grid_file), EncoderSettings(tiny_model, device="cpu"), SweepSettings(), GO,
                    cache=tmp_path / "cache")
    before = read_results(out)
    assert len(before) == 8 and {r["configuration"]["head"] for r in before} <= {"logreg", "knn"}
    assert not (out / "best").exists()

    common = [*GO_ARGS, "--grid", grid_file, "--out", out, "--model", tiny_model, "--cache", tmp_path / "cache",
              "--device", "cpu"]
    with pytest.raises(EmbedclfError, match="already holds a sweep; add --resume"):
        sweep_files(train, out, load_grid(grid_file), EncoderSettings(tiny_model, device="cpu"), SweepSettings(), GO,
                    cache=tmp_path / "cache")
    resumed = run("sweep", train, *common, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "8 already done, skipped" in resumed.stderr and "200 cached, 0 encoded" in resumed.stderr
    after = read_results(out)
    assert after[:8] == before and len(after) == 16 and len({r["key"] for r in after}) == 16
    assert (out / "best" / "model.json").exists()

    with pytest.raises(EmbedclfError, match="was swept with other train"):
        sweep_files(goemotions_slice(tmp_path, "dev", 200), out, load_grid(grid_file),
                    EncoderSettings(tiny_model, device="cpu"), SweepSettings(resume=True), GO, cache=tmp_path / "cache")


def test_multiclass_sweep_keeps_fixed_decisions(tiny_model, tmp_path):
    source = ROOT / "examples" / "tickets.csv"
    grid = grid_from_dict({"heads": [{"head": "knn", "n_neighbors": [1, 3]}], "rule_thresholds": ["none", 0.9]})
    result = sweep_files(source, tmp_path / "sweep", grid, EncoderSettings(tiny_model, device="cpu"),
                         SweepSettings(metric="accuracy", valid_split=0.25),
                         DataOptions(("subject", "body"), ("priority",)), cache=tmp_path / "cache")
    assert {r["configuration"]["thresholds"] for r in result["records"]} == {"fixed"}
    assert {r["configuration"]["rule_threshold"] for r in result["records"]} == {None}
    assert np.isclose(result["best"]["score"], result["best"]["metrics"]["priority"]["accuracy"])


def test_metrics_are_checked_against_the_task_and_lower_is_better_ranks_right():
    from embedclf.labels import LabelSpace, TargetSpace
    from embedclf.sweep.leaderboard import leaderboard_frame, ranked
    from embedclf.sweep.metrics import check_metric, metric_value

    space = LabelSpace([TargetSpace("a", "multiclass", ["x", "y"]), TargetSpace("b", "multilabel", ["p", "q"])])
    assert check_metric(space, "micro-f1") == "micro_f1" and check_metric(space, "exact-match") == "exact_match"
    with pytest.raises(EmbedclfError, match="--metric accuracy is not defined for the multilabel target 'b'; use "
                                            "one of: micro-f1, macro-f1, weighted-f1, macro-roc-auc, exact-match"):
        check_metric(space, "accuracy")
    report = {"targets": {"a": {"micro_f1": 0.5, "hamming_loss": None}, "b": {"micro_f1": 0.7, "hamming_loss": 0.2}},
              "exact_match": 0.25}
    assert metric_value(report, "micro_f1") == pytest.approx(0.6) and metric_value(report, "exact_match") == 0.25

    def record(key, loss):
        config = {"head": "knn", "params": {}, "features": "embedding", "thresholds": "fixed", "rule_threshold": None}
        return {"key": key, "configuration": config, "status": "ok", "score": -loss, "fit_seconds": 1.0,
                "predict_ms_per_1k": 1.0, "n_rules": 0, "folds": 1, "metrics": {"t": {"hamming_loss": loss}}}

    records = [record("worse", 0.3), record("better", 0.1)]
    assert [r["key"] for r in ranked(records)] == ["better", "worse"]
    assert list(leaderboard_frame(records, "hamming-loss")["hamming-loss"]) == [0.1, 0.3]


def test_sweep_settings_refuse_bad_values_in_one_line(tiny_model, tmp_path):
    for fields, message in [(dict(jobs=0), "--jobs must be a whole number of at least 1"),
                            (dict(cv=1), "--cv must be a whole number of at least 2 folds"),
                            (dict(metric="f2"), "--metric 'f2' is not one of"),
                            (dict(valid_split=1.5), "--valid-split must be between 0 and 1")]:
        with pytest.raises(EmbedclfError, match=re.escape(message)):
            SweepSettings(**fields)
    tickets = ROOT / "examples" / "tickets.csv"
    with pytest.raises(EmbedclfError, match="give either --valid or --cv, not both"):
        sweep_files(tickets, tmp_path / "s", default_grid(), EncoderSettings(tiny_model), SweepSettings(cv=3),
                    DataOptions(("subject",), ("priority",)), valid=tickets, cache=tmp_path / "cache")
    assert not (tmp_path / "s").exists()


def test_a_validation_file_is_the_one_fold_and_train_is_refitted_alone(tiny_model, tmp_path):
    train, valid = goemotions_slice(tmp_path, "train", 150), goemotions_slice(tmp_path, "dev", 60)
    grid = grid_from_dict({"heads": [{"head": "logreg", "C": [1.0]}], "threshold_modes": ["micro"]})
    result = sweep_files(train, tmp_path / "sweep", grid, EncoderSettings(tiny_model, device="cpu"), SweepSettings(),
                         GO, valid=valid, cache=tmp_path / "cache")
    [record] = result["records"]
    assert record["valid_rows"] == len(GO.load(valid, require_labels=True).texts) and record["folds"] == 1
    manifest = json.loads((result["best_dir"] / "model.json").read_text())
    assert manifest["info"]["train_rows"] == len(GO.load(train, require_labels=True).texts)
    assert manifest["thresholds"] == record["thresholds"] and len(set(record["thresholds"])) == 1  # one, for micro
