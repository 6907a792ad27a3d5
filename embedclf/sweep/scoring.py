"""One unit of a sweep's work: fit one head configuration on each fold, then try every decision on its scores.

This runs in a joblib worker, so it takes plain arrays and returns plain records (JSON-ready dicts).
Fitting is the head's own ``fit``; thresholds are :func:`~embedclf.postprocess.thresholds.tune_thresholds`;
rules are :class:`~embedclf.postprocess.rules.CooccurrenceRules` applied with
:func:`~embedclf.postprocess.model_rules.apply_rules`; every number is :func:`embedclf.evaluate.evaluate`'s.
A configuration that fails becomes a record with ``status: failed`` and a one-line reason.
"""

from __future__ import annotations

import inspect
import time

import numpy as np

from embedclf.labels import MULTILABEL, LabelSpace, block_decisions
from embedclf.sweep.grid import Configuration
from embedclf.sweep.metrics import headline, metric_value


def build_head(configuration: Configuration, seed: int, n_jobs: int | None = None):
    """The configuration's head, seeded like ``embedclf fit --seed`` seeds it; ``n_jobs`` processes for the
    heads that fit their labels in parallel (the refit of the best, which has the machine to itself)."""
    from embedclf.heads import head_params

    takes = head_params(configuration.head.head)
    extra = {"random_state": seed} if "random_state" in takes else {}
    if n_jobs not in (None, 1) and "n_jobs" in takes:
        extra["n_jobs"] = n_jobs
    extra = {k: v for k, v in extra.items() if k not in dict(configuration.head.params)}
    return configuration.head.build(**extra)


def fit_and_score(configurations: list[Configuration], matrices, Y: np.ndarray, folds, space: LabelSpace,
                  metric: str, threshold: float = 0.5, min_support: int = 5, seed: int = 0) -> list[dict]:
    """Records for ``configurations`` (all sharing one ``fit_key``): validation metrics averaged over ``folds``.

    ``matrices`` are their feature set's :class:`~embedclf.sweep.features.FoldFeatures`, one per fold.
    """
    try:
        return _fit_and_score(configurations, matrices, Y, folds, space, metric, threshold, min_support, seed)
    except Exception as exc:  # noqa: BLE001 (any failure of one configuration is recorded; the sweep goes on)
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
        return [{"key": c.key, "configuration": c.as_record(), "status": "failed", "error": reason}
                for c in configurations]


def _fit_and_score(configurations, matrices, Y, folds, space, metric, threshold, min_support, seed) -> list[dict]:
    from embedclf.evaluate import evaluate
    from embedclf.postprocess.thresholds import tune_thresholds

    per_config = {c.key: {"reports": [], "thresholds": [], "n_rules": []} for c in configurations}
    fit_seconds, predict_ms, curves = [], [], {}
    first = configurations[0]
    for fold, (train_rows, valid_rows) in enumerate(folds):
        X_train, X_valid = matrices[fold].train, matrices[fold].valid
        Y_train, Y_valid = Y[train_rows], Y[valid_rows]
        head = build_head(first, seed)
        fit_params = {"layout": space.layout}
        if "validation" in inspect.signature(head.fit).parameters:  # the MLP stops early on it, as in ``fit``
            fit_params["validation"] = (X_valid, Y_valid)
        start = time.perf_counter()
        head.fit(X_train, Y_train, **fit_params)
        fit_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        scores = np.asarray(head.predict_proba(X_valid), dtype=np.float32)
        predict_ms.append((time.perf_counter() - start) * 1e6 / len(valid_rows) + matrices[fold].transform_ms_per_1k)
        if fold == 0 and hasattr(head, "loss_curve_"):
            curves = {"train_loss": [float(v) for v in head.loss_curve_],
                      "validation_loss": [float(v) for v in getattr(head, "validation_loss_curve_", [])]}
        tuned = {"fixed": np.full(space.n_columns, threshold)}
        rules = _rules(space, Y_train, {c.rule_threshold for c in configurations}, min_support)
        for configuration in configurations:
            mode = configuration.thresholds
            if mode not in tuned:
                tuned[mode] = tune_thresholds(Y_valid, scores, space.layout, default=threshold, objective=mode)
            decided = block_decisions(scores, space.layout, tuned[mode])
            found = rules.get(configuration.rule_threshold)
            n_rules = 0
            if found is not None:
                from embedclf.postprocess.model_rules import apply_rules

                decided, _ = apply_rules(found, decided, space)
                n_rules = len(found.rules_)
            entry = per_config[configuration.key]
            entry["reports"].append(evaluate(space, Y_valid, decided, scores))
            entry["thresholds"].append(tuned[mode])
            entry["n_rules"].append(n_rules)
    records = []
    for configuration in configurations:
        entry = per_config[configuration.key]
        metrics = _mean_headlines([headline(r) for r in entry["reports"]])
        records.append({
            "key": configuration.key, "configuration": configuration.as_record(), "status": "ok",
            "score": float(np.mean([metric_value(r, metric) for r in entry["reports"]])),
            "metrics": metrics, "folds": len(folds), "valid_rows": int(sum(len(v) for _, v in folds)),
            "fit_seconds": round(float(np.mean(fit_seconds)), 4),
            "predict_ms_per_1k": round(float(np.mean(predict_ms)), 3),
            "thresholds": [round(float(t), 4) for t in np.median(entry["thresholds"], axis=0)],
            "n_rules": int(np.max(entry["n_rules"])),
            **({"curves": curves} if curves else {}),
        })
    return records


def _rules(space: LabelSpace, Y_train: np.ndarray, thresholds: set, min_support: int) -> dict:
    """Co-occurrence rules learnt from this fold's training labels (the first multi-label target), per threshold."""
    from embedclf.postprocess.rules import CooccurrenceRules

    wanted = sorted(t for t in thresholds if t is not None)
    target = next(((t, b) for t, b in zip(space.targets, space.slices) if t.kind == MULTILABEL), None)
    if not wanted or target is None:
        return {}
    classes, block = target[0].classes, target[1]
    return {t: CooccurrenceRules(t, min_support).fit(Y_train[:, block], classes) for t in wanted}


def _mean_headlines(headlines: list[dict]) -> dict:
    """Fold headlines averaged key by key (a metric undefined in some fold averages over the others)."""
    out: dict = {}
    for key in headlines[0]:
        if isinstance(headlines[0][key], dict):
            out[key] = _mean_headlines([h[key] for h in headlines])
        else:
            values = [h[key] for h in headlines if h.get(key) is not None]
            out[key] = float(np.mean(values)) if values else None
    return out
