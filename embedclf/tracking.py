"""Experiment tracking with MLflow (``--track``): a run per command; a sweep is a parent run, a child per configuration.

MLflow is an optional extra (``embedclf[track]``: mlflow-skinny, plus sqlalchemy and alembic for
MLflow's default store, ``sqlite:///mlflow.db`` in the working directory, which mlflow-skinny alone
cannot open). :class:`TrackSettings` checks, when it is made and so before any work, that MLflow
is installed and can open the store ``MLFLOW_TRACKING_URI`` names; a missing piece is one line
with the install command. A ``file:`` store (MLflow's older default, kept in maintenance mode)
is opened when the URI names it: whoever set it wants it.

Runs are written after the work they describe, from what it returned: params (head and its
hyperparameters, encoder settings, data file names and sha256), metrics (validation or test
headline metrics; the MLP's and the fine-tune's losses per epoch as steps) and artifacts.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from embedclf.errors import EmbedclfError, missing_extra

SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
MAX_PARAM = 500  # characters of a param value kept (MLflow refuses longer ones on some stores)


@dataclass(frozen=True)
class TrackSettings:
    """``--track`` and ``--experiment``: the experiment (None: $MLFLOW_EXPERIMENT_NAME, else MLflow's Default)."""

    experiment: str | None = None

    def __post_init__(self):
        if self.experiment is not None and not str(self.experiment).strip():
            raise EmbedclfError("--experiment must be a non-empty name")
        require_mlflow()


def require_mlflow():
    """MLflow, checked able to open its tracking store; else one line saying what to install."""
    try:
        import mlflow
    except ImportError:
        raise missing_extra("mlflow", "track") from None
    uri = mlflow.get_tracking_uri()
    scheme = uri.split(":", 1)[0].split("+", 1)[0] if ":" in uri else ""
    if scheme in SQL_SCHEMES:
        try:
            import alembic  # noqa: F401
            import sqlalchemy  # noqa: F401
        except ImportError:
            raise EmbedclfError(f"MLflow's tracking store {uri} needs sqlalchemy and alembic; run: pip install "
                                "'embedclf[track]' (or point MLFLOW_TRACKING_URI at a tracking server)") from None
    elif scheme in ("", "file"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return mlflow


def data_params(prefix: str, path) -> dict:
    """A data file's name and the sha256 of its content (a directory: of its files)."""
    from embedclf.io import file_sha256

    return {f"{prefix}.name": Path(path).name, f"{prefix}.sha256": file_sha256(path)}


def flatten(values: dict, prefix: str = "") -> dict:
    """Nested dicts as ``a.b.c`` keys, with MLflow's allowed characters only."""
    out = {}
    for key, value in values.items():
        name = re.sub(r"[^A-Za-z0-9_\-. /]", "_", f"{prefix}{key}")
        if isinstance(value, dict):
            out |= flatten(value, name + ".")
        else:
            out[name] = value
    return out


def metrics_of(values: dict, prefix: str = "") -> dict:
    """The finite numbers of a nested dict (booleans and None left out), flattened."""
    return {k: float(v) for k, v in flatten(values, prefix).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def params_of(values: dict, prefix: str = "") -> dict:
    return {k: str(v)[:MAX_PARAM] for k, v in flatten(values, prefix).items()}


class Tracker:
    """Writes runs to the experiment of ``settings`` through MLflow's client."""

    def __init__(self, settings: TrackSettings):
        self.mlflow = require_mlflow()
        self.client = self.mlflow.MlflowClient()
        name = settings.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if name:
            found = self.client.get_experiment_by_name(name)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(name)
        else:
            self.experiment_id = "0"  # MLflow's "Default" experiment
        self.parent_id: str | None = None

    def run(self, name: str, params: dict, metrics: dict, *, steps: dict | None = None, artifacts=(),
            tags: dict | None = None, status: str = "FINISHED") -> str:
        """One finished run: ``steps`` maps a metric name to its values per epoch; ``artifacts`` are
        ``(path, folder in the run)`` pairs, a path being a file or a directory."""
        from mlflow.entities import Metric, Param, RunTag

        tags = dict(tags or {})
        if self.parent_id is not None:
            tags["mlflow.parentRunId"] = self.parent_id
        run = self.client.create_run(self.experiment_id, run_name=name[:250], tags=tags)
        run_id = run.info.run_id
        stamp = int(run.info.start_time)
        logged = [Metric(k, v, stamp, 0) for k, v in metrics.items()]
        for key, values in (steps or {}).items():
            logged += [Metric(key, float(v), stamp, step) for step, v in enumerate(values, 1) if math.isfinite(v)]
        self._log(run_id, logged, [Param(k, v) for k, v in params.items()],
                  [RunTag(k, str(v)) for k, v in tags.items()])
        self._artifacts(run_id, artifacts)
        self.client.set_terminated(run_id, status)
        return run_id

    def _log(self, run_id: str, metrics: list, params: list, tags: list = ()) -> None:
        """In batches of MLflow's limits (1,000 metrics, 100 params, 100 tags per call)."""
        tags = list(tags)
        for start in range(0, max(len(metrics), 10 * len(params), 10 * len(tags), 1), 1000):
            part = slice(start // 10, start // 10 + 100)
            self.client.log_batch(run_id, metrics=metrics[start:start + 1000], params=params[part], tags=tags[part])

    def open_parent(self, name: str, params: dict) -> str:
        """The sweep's run: every run made until :meth:`close_parent` is its child."""
        from mlflow.entities import Param

        run = self.client.create_run(self.experiment_id, run_name=name, tags={"embedclf.command": "sweep"})
        self.parent_id = run.info.run_id
        self._log(self.parent_id, [], [Param(k, v) for k, v in params.items()])
        return self.parent_id

    def close_parent(self, metrics: dict, artifacts=(), status: str = "FINISHED") -> None:
        from mlflow.entities import Metric

        parent, self.parent_id = self.parent_id, None
        if parent is None:
            return
        self._log(parent, [Metric(k, v, int(time.time() * 1000), 0) for k, v in metrics.items()], [])
        self._artifacts(parent, artifacts)
        self.client.set_terminated(parent, status)

    def _artifacts(self, run_id: str, artifacts) -> None:
        for path, folder in artifacts:
            path = Path(path)
            if path.is_dir():
                self.client.log_artifacts(run_id, str(path), folder)
            elif path.exists():
                self.client.log_artifact(run_id, str(path), folder)
