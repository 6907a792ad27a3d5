"""--track: runs written to a temporary MLflow store and read back with MLflow's client; evaluate --plots."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from embedclf.data import DataOptions
from embedclf.encode.encoder import Encoder
from embedclf.encode.settings import EncoderSettings
from embedclf.fit import FitSettings, fit_files
from embedclf.heads import make_head
from tests.test_model import GO, ROOT, goemotions_slice, run

mlflow = pytest.importorskip("mlflow")
TICKETS = ROOT / "examples" / "tickets.csv"


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A file store in tmp_path, for this process and the CLI's subprocesses."""
    uri = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return mlflow.MlflowClient(uri)


def runs_of(client, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    return client.search_runs([found.experiment_id], max_results=500)


def artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def test_fit_run_has_params_metrics_losses_per_epoch_and_the_model(tiny_model, tmp_path, store):
    from embedclf.tracking import TrackSettings

    train = goemotions_slice(tmp_path, "train", 200)
    classifier = fit_files(train, tmp_path / "model", make_head("mlp", hidden=(16,), epochs=4, patience=None),
                           EncoderSettings(tiny_model, device="cpu"), FitSettings(valid_split=0.2), GO,
                           cache=tmp_path / "cache", tracking=TrackSettings("fits"))
    [logged] = runs_of(store, "fits")
    params, metrics = logged.data.params, logged.data.metrics
    assert params["head"] == "mlp" and params["head.hidden"] == "[16]" and params["train.name"] == train.name
    assert params["train.sha256"] == hashlib.sha256(train.read_bytes()).hexdigest()
    assert params["encoder.fingerprint"] == classifier.encoder.ref.fingerprint and params["valid_split"] == "0.2"
    validation = classifier.info["validation"]["labels"]
    assert metrics["validation.labels.micro_f1"] == pytest.approx(validation["micro_f1"])
    losses = store.get_metric_history(logged.info.run_id, "train_loss")
    assert [m.step for m in losses] == [1, 2, 3, 4]
    assert [m.value for m in losses] == pytest.approx(classifier.head.loss_curve_)
    assert {"model/model.json", "model/head.skops"} <= artifact_paths(store, logged.info.run_id)


def test_evaluate_plots_and_tracked_run(tiny_model, tmp_path, store):
    train, test = goemotions_slice(tmp_path, "train", 300), goemotions_slice(tmp_path, "test", 80)
    rules = tmp_path / "rules.json"
    made = run("cooccur", train, "--columns", "text,labels,id", "--text-col", "text", "--label-col", "labels",
               "--label-sep", ",", "--threshold", "0.3", "--min-support", "2", "--out", rules, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    from embedclf.fit import fit_classifier
    from embedclf.postprocess.rules import CooccurrenceRules

    classifier = fit_classifier(GO.load(train, require_labels=True), make_head("logreg"),
                                Encoder(tiny_model, cache=tmp_path / "cache", device="cpu"), data_options=GO,
                                valid_split=0.2, tune_thresholds=True, rules=CooccurrenceRules.load(rules))
    classifier.save(tmp_path / "model")
    result = run("evaluate", tmp_path / "model", test, "--plots", tmp_path / "plots", "--track", "--experiment",
                 "evals", "--cache", tmp_path / "cache", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pictures = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pictures == ["cooccurrence-labels.png", "f1-labels.png", "pr-labels.png", "thresholds-labels.png"]
    assert all((tmp_path / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pictures)
    [logged] = runs_of(store, "evals")
    assert logged.data.params["test.name"] == test.name and logged.data.tags["embedclf.command"] == "evaluate"
    assert {"test.labels.micro_f1", "test_before_rules.labels.micro_f1"} <= set(logged.data.metrics)
    assert {"report/report.json"} | {f"plots/{p}" for p in pictures} == artifact_paths(store, logged.info.run_id)
    report = json.loads(open(store.download_artifacts(logged.info.run_id, "report/report.json")).read())
    assert logged.data.metrics["test.labels.micro_f1"] == pytest.approx(report["targets"]["labels"]["micro_f1"])


def test_multioutput_multiclass_evaluation_draws_a_confusion_matrix_per_target(tiny_model, tmp_path):
    from embedclf.fit import fit_classifier
    from embedclf.inference import evaluate_arrays
    from embedclf.plots import write_plots

    options = DataOptions(("subject", "body"), ("priority", "topics"))
    data = options.load(TICKETS, require_labels=True)
    classifier = fit_classifier(data, make_head("logreg"), Encoder(tiny_model, cache=tmp_path / "cache"),
                                data_options=options)
    report, Y_true, scores, Y_pred = evaluate_arrays(classifier, data)
    written = write_plots(tmp_path / "plots", classifier, report, Y_true, scores, Y_pred)
    assert sorted(p.name for p in written) == ["confusion-priority.png", "confusion-topics.png", "f1-priority.png",
                                               "f1-topics.png", "pr-priority.png", "pr-topics.png"]


def test_sweep_is_a_parent_run_with_a_child_per_configuration(tiny_model, tmp_path, store):
    from embedclf.sweep import SweepSettings, sweep_files
    from embedclf.sweep.grid import grid_from_dict
    from embedclf.tracking import TrackSettings

    grid = grid_from_dict({"heads": [{"head": "logreg", "C": [1.0]}, {"head": "knn", "n_neighbors": [2, 99]}],
                           "threshold_modes": ["fixed", "micro"]})
    result = sweep_files(TICKETS, tmp_path / "sweep", grid, EncoderSettings(tiny_model, device="cpu"),
                         SweepSettings(valid_split=0.25), DataOptions(("subject",), ("topics",), label_sep="|"),
                         cache=tmp_path / "cache", tracking=TrackSettings("sweeps"))
    runs = runs_of(store, "sweeps")
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(result["records"]) == 6 and len(runs) == 7
    failed = [c for c in children if c.info.status == "FAILED"]
    assert {c.data.params["head.n_neighbors"] for c in failed} == {"99"} and len(failed) == 2
    assert "is more than the" in failed[0].data.tags["error"]
    assert parent.data.metrics["best_score"] == pytest.approx(result["best"]["score"])
    assert {"leaderboard/leaderboard.csv", "best/model.json"} <= artifact_paths(store, parent.info.run_id)


def test_track_without_mlflow_is_one_line_and_exit_2_before_any_work(tmp_path):
    code = ("import sys; sys.modules['mlflow'] = None; from embedclf.cli import main; "
            f"sys.argv = ['embedclf', 'fit', {str(TICKETS)!r}, '--text-col', 'subject', '--label-col', 'priority', "
            f"'--out', {str(tmp_path / 'model')!r}, '--track']; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    assert result.stderr.strip() == "embedclf: error: mlflow is not installed; run: pip install 'embedclf[track]'"
    assert not (tmp_path / "model").exists() and not (tmp_path / "cache").exists()


def test_mlflows_default_sqlite_store_works_or_says_what_to_install(tmp_path, monkeypatch):
    from embedclf.errors import EmbedclfError
    from embedclf.tracking import TrackSettings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        import alembic  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError:
        with pytest.raises(EmbedclfError, match="needs sqlalchemy and alembic; run: pip install 'embedclf\\[track\\]'"):
            TrackSettings("x")
        return
    from embedclf.tracking import Tracker

    run_id = Tracker(TrackSettings("x")).run("a run", {"p": "1"}, {"m": 0.5})
    assert mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(run_id).data.metrics == {"m": 0.5}


def test_finetune_run_has_the_loss_of_every_epoch(tiny_model, tmp_path, store):
    from embedclf.finetune import FineTuneSettings, finetune_files
    from embedclf.tracking import TrackSettings

    classifier = finetune_files(TICKETS, tmp_path / "ft", FineTuneSettings(tiny_model, epochs=3, batch_size=8,
                                                                           max_length=32, device="cpu"),
                                FitSettings(valid_split=0.25), DataOptions(("subject",), ("priority",)),
                                cache=tmp_path / "cache", tracking=TrackSettings("tunes"))
    [logged] = runs_of(store, "tunes")
    history = classifier.info["finetune"]["history"]
    losses = store.get_metric_history(logged.info.run_id, "train_loss")
    assert [m.value for m in losses] == pytest.approx([entry["train_loss"] for entry in history]) and len(losses) == 3
    assert logged.data.params["finetune.epochs"] == "3" and logged.data.tags["embedclf.command"] == "finetune"
    assert "model/model.json" in artifact_paths(store, logged.info.run_id)
