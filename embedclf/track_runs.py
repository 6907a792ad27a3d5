"""What each command records with ``--track``: ``fit``, ``finetune``, ``evaluate`` and ``sweep`` (parent + children).

Each function takes what its command returned (a classifier, a report, sweep records) and writes it
through :class:`embedclf.tracking.Tracker`; none of them changes what the command did.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from embedclf.tracking import TrackSettings, Tracker, data_params, metrics_of, params_of


def _model_params(classifier) -> dict:
    manifest = classifier.manifest()
    return {**params_of({"head": manifest["head"]["name"]}), **params_of(manifest["head"]["params"], "head."),
            **params_of(manifest["encoder"], "encoder."), **params_of(manifest["data"], "data_options."),
            "task": classifier.space.task}


def _curves(classifier) -> dict:
    """Per-epoch losses: the MLP head's (``loss_curve_``), or the fine-tune's history."""
    history = classifier.info.get("finetune", {}).get("history")
    if history:
        keys = sorted({k for entry in history for k in entry if k not in ("epoch", "steps")})
        return {k: [entry[k] for entry in history if isinstance(entry.get(k), (int, float))] for k in keys}
    head = classifier.head
    curves = {}
    if getattr(head, "loss_curve_", None):
        curves["train_loss"] = list(head.loss_curve_)
    if getattr(head, "validation_loss_curve_", None):
        curves["validation_loss"] = list(head.validation_loss_curve_)
    return curves


def track_fit(settings: TrackSettings, command: str, classifier, out, train_path, valid_path=None,
              extra_params: dict | None = None) -> str:
    """A ``fit`` or ``finetune`` run: the model's params, validation metrics, losses per epoch, the model folder."""
    params = {**_model_params(classifier), **data_params("train", train_path), **params_of(extra_params or {})}
    if valid_path is not None:
        params |= data_params("valid", valid_path)
    metrics = metrics_of(classifier.info.get("validation", {}), "validation.")
    metrics |= metrics_of({k: classifier.info[k] for k in ("fit_seconds", "train_rows") if k in classifier.info})
    return Tracker(settings).run(f"{command} {Path(out).name}", params, metrics, steps=_curves(classifier),
                                 artifacts=[(out, "model")], tags={"embedclf.command": command})


def track_evaluate(settings: TrackSettings, classifier, report: dict, model_dir, test_path, report_path=None,
                   plots_dir=None) -> str:
    """An ``evaluate`` run: the model's params, the test metrics (before and after rules), report JSON, pictures."""
    import json
    import tempfile

    params = {**_model_params(classifier), **data_params("test", test_path), "model_dir": str(model_dir)}
    headline = {name: {k: v for k, v in m.items() if not isinstance(v, dict)} for name, m in report["targets"].items()}
    metrics = metrics_of(headline, "test.") | metrics_of({"exact_match": report.get("exact_match")}, "test.")
    if "before_rules" in report:
        before = {n: {k: v for k, v in m.items() if not isinstance(v, dict)}
                  for n, m in report["before_rules"]["targets"].items()}
        metrics |= metrics_of(before, "test_before_rules.")
    with tempfile.TemporaryDirectory() as scratch:
        if report_path is None:  # the report JSON is an artifact even when --report was not given
            report_path = Path(scratch) / "report.json"
            report_path.write_text(json.dumps(report, indent=2))
        artifacts = [(report_path, "report")] + ([(plots_dir, "plots")] if plots_dir is not None else [])
        return Tracker(settings).run(f"evaluate {Path(model_dir).name} on {Path(test_path).name}", params, metrics,
                                     artifacts=artifacts, tags={"embedclf.command": "evaluate"})


class SweepTracker:
    """A sweep's parent run, opened when the configurations start and closed with the best one's metrics."""

    def __init__(self, settings: TrackSettings, train_path, valid_path=None):
        self.tracker = Tracker(settings)
        self.data = data_params("train", train_path) | (data_params("valid", valid_path) if valid_path else {})

    def start_sweep(self, grid, settings, signature: dict, encoder_record: dict) -> None:
        params = {**self.data, **params_of(encoder_record, "encoder."), **params_of(signature["split"], "split."),
                  "metric": settings.metric, "jobs": str(settings.jobs), "configurations":
                      str(len(grid.configurations())), **params_of(signature["data_options"], "data_options.")}
        self.tracker.open_parent(f"sweep of {self.data['train.name']}", params)

    def log_configuration(self, record: dict) -> None:
        config = record["configuration"]
        params = {"head": config["head"], **params_of(config["params"], "head."), "features": config["features"],
                  "tfidf_weight": str(config.get("tfidf_weight")), "tfidf_ngrams": str(config.get("tfidf_ngrams")),
                  "thresholds": config["thresholds"], "rule_threshold": str(config["rule_threshold"]), **self.data}
        if record["status"] != "ok":
            self.tracker.run(record["key"], params, {}, tags={"error": record["error"]}, status="FAILED")
            return
        metrics = metrics_of(record["metrics"], "validation.") | {"score": record["score"]}
        metrics |= metrics_of({k: record[k] for k in ("fit_seconds", "predict_ms_per_1k", "n_rules")})
        self.tracker.run(record["key"], params, metrics, steps=record.get("curves"))

    def finish_sweep(self, best: dict, leaderboard_paths, best_dir) -> None:
        metrics = {"best_score": best["score"], **metrics_of(best["metrics"], "best.validation.")}
        artifacts = [(path, "leaderboard") for path in leaderboard_paths] + [(best_dir, "best")]
        self.tracker.close_parent(metrics, artifacts)

    def fail(self) -> None:
        self.tracker.close_parent({}, status="FAILED")


@contextmanager
def sweep_tracking(settings: TrackSettings | None, train_path, valid_path=None):
    """A :class:`SweepTracker` (None without ``--track``) whose parent run is marked failed if the sweep stops."""
    if settings is None:
        yield None
        return
    tracker = SweepTracker(settings, train_path, valid_path)
    try:
        yield tracker
    except BaseException:
        tracker.fail()
        raise
