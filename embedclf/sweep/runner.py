"""``embedclf sweep``: encode once through the cache, fit every configuration of a grid, rank, refit the best.

The split is ``fit``'s: a ``--valid`` file, or ``validation_split`` of TRAIN (``--valid-split``, 0.1
by default, same seed, same rows as ``embedclf fit --valid-split``), or ``--cv K`` stratified folds.
Head configurations run in parallel (joblib, ``--jobs``), each fitted once per fold while its threshold
modes and rule thresholds are tried on the same scores. Each finished configuration is written to
``results.jsonl`` at once, so ``--resume`` skips it; then come the leaderboard (CSV, Markdown,
picture) and the best configuration refitted on all of TRAIN as a model folder, ``OUT/best``.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from embedclf.errors import EmbedclfError
from embedclf.sweep.grid import Grid
from embedclf.sweep.metrics import metric_key

BEST = "best"


@dataclass(frozen=True)
class SweepSettings:
    """How a sweep validates, ranks and runs; checked once, here, before any data is read.

    ``valid_split`` is used when there is neither a ``--valid`` file nor ``cv``; ``threshold`` is the
    ``fixed`` mode's threshold and where tuning starts; ``jobs`` as joblib's ``n_jobs`` (-1: every core).
    """

    metric: str = "micro-f1"
    jobs: int = 1
    cv: int | None = None
    valid_split: float = 0.1
    threshold: float = 0.5
    seed: int = 0
    resume: bool = False
    progress: bool | None = None  # None: a bar on a terminal only

    def __post_init__(self):
        from embedclf.fit import FitSettings

        metric_key(self.metric)
        FitSettings(valid_split=self.valid_split, threshold=self.threshold, seed=self.seed)  # its own checks
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs == 0 or self.jobs < -1:
            raise EmbedclfError(f"--jobs must be a whole number of at least 1 (or -1 for every core), "
                                f"got {self.jobs!r}")
        if self.cv is not None and (isinstance(self.cv, bool) or not isinstance(self.cv, int) or self.cv < 2):
            raise EmbedclfError(f"--cv must be a whole number of at least 2 folds, got {self.cv!r}")


def sweep_files(train_path, out, grid: Grid, encoder_settings, settings: SweepSettings, data_options, *,
                valid=None, cache=None, tracking=None, say: Callable[[str], None] | None = None) -> dict:
    """Run ``grid`` on TRAIN; returns ``{"records", "best", "best_dir", "leaderboard"}``.

    ``tracking`` (:class:`~embedclf.tracking.TrackSettings`) records the sweep as an MLflow parent run
    with a child run per configuration.
    """
    from embedclf.encode.encoder import Encoder
    from embedclf.fit import read_training_files
    from embedclf.io import file_sha256
    from embedclf.labels import MULTILABEL, LabelSpace, labelled_matrix
    from embedclf.sweep.metrics import check_metric
    from embedclf.sweep.results import SweepFolder

    say = say or (lambda message: None)
    if settings.cv is not None and valid is not None:
        raise EmbedclfError("give either --valid or --cv, not both")
    encoder = Encoder(encoder_settings, cache=cache)
    encoder.settings  # the model's files found and checked before any data is read
    train, valid_data = read_training_files(out, data_options, train_path, valid, say)
    space = LabelSpace.from_dataset(train)
    metric = check_metric(space, settings.metric)
    Y = labelled_matrix(space, train, say)
    folds = _folds(Y, settings) if valid_data is None else None  # a split that cannot be made fails before encoding
    signature = {"train": {"name": Path(train_path).name, "sha256": file_sha256(train_path)},
                 "valid": None if valid is None else {"name": Path(valid).name, "sha256": file_sha256(valid)},
                 "data_options": _plain(data_options), "encoder": encoder.settings.cache_key(),
                 "split": {"cv": settings.cv, "valid_split": None if valid or settings.cv else settings.valid_split,
                           "seed": settings.seed, "threshold": settings.threshold}}
    folder = SweepFolder(out, signature, settings.resume)
    configurations = grid.configurations(multilabel=any(t.kind == MULTILABEL for t in space.targets))
    todo = [c for c in configurations if c.key not in folder.done]
    say(f"{len(configurations)} configurations ({len({c.fit_key for c in configurations})} heads to fit"
        + (f"; {len(configurations) - len(todo)} already done, skipped" if settings.resume else "") + ")")
    if grid.dense_only_pairs():
        say(f"{grid.dense_only_pairs()} head x feature set pairs left out: mlp and chain take the embedding only")
    X = encoder.encode(train.texts)
    say(f"train embeddings: {encoder.last_report.summary(encoder.max_length)}")
    Y_all, texts = Y, list(train.texts)
    if valid_data is not None:
        X_valid = encoder.encode(valid_data.texts)
        say(f"validation embeddings: {encoder.last_report.summary(encoder.max_length)}")
        Y_valid = labelled_matrix(space, valid_data, say)
        X, Y_all, texts = np.vstack([X, X_valid]), np.vstack([Y, Y_valid]), texts + list(valid_data.texts)
        folds = [(np.arange(len(Y)), np.arange(len(Y), len(Y_all)))]
    from embedclf.sweep.features import fold_features

    matrices = fold_features(todo, X, texts, folds)
    folder.start()
    from embedclf.track_runs import sweep_tracking

    with sweep_tracking(tracking, train_path, valid) as tracker:
        if tracker is not None:
            tracker.start_sweep(grid, settings, signature, encoder.settings.to_record())
            say(f"tracking as MLflow run {tracker.tracker.parent_id}, a child run per configuration")
        _run(todo, matrices, Y_all, folds, space, metric, grid, settings, folder, tracker)
        return _finish(folder, metric, settings, grid, train, space, encoder, data_options, out, tracker, say)


def _folds(Y: np.ndarray, settings: SweepSettings) -> list[tuple[np.ndarray, np.ndarray]]:
    """Row indices per fold: ``fit``'s validation split, or ``cv`` folds stratified over every label column."""
    from embedclf.fit import validation_split

    if settings.cv is None:
        return [validation_split(Y, settings.valid_split, settings.seed)]
    if settings.cv > len(Y):
        raise EmbedclfError(f"--cv {settings.cv} is more folds than the {len(Y):,} training rows")
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    splitter = MultilabelStratifiedKFold(n_splits=settings.cv, shuffle=True, random_state=settings.seed)
    return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(len(Y)), Y)]


def _run(todo, matrices, Y, folds, space, metric, grid: Grid, settings: SweepSettings, folder, tracker) -> None:
    """Fit the configurations still to do, in parallel, recording each group as it finishes."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from embedclf.sweep.scoring import fit_and_score

    groups = defaultdict(list)
    for configuration in todo:
        groups[configuration.fit_key].append(configuration)
    show = settings.progress if settings.progress is not None else sys.stderr.isatty()
    jobs = (delayed(fit_and_score)(group, matrices[group[0].feature_key], Y, folds, space, metric,
                                   settings.threshold, grid.rule_min_support, settings.seed)
            for group in groups.values())
    with tqdm(total=len(todo), unit="config", desc="sweep", disable=not show, file=sys.stderr) as bar:
        for records in Parallel(n_jobs=settings.jobs, return_as="generator_unordered")(jobs):
            folder.add(records)
            if tracker is not None:
                for record in records:
                    tracker.log_configuration(record)
            bar.update(len(records))


def _finish(folder, metric, settings, grid, train, space, encoder, data_options, out, tracker, say) -> dict:
    from embedclf.sweep.leaderboard import ranked, write_leaderboard

    records = [r for r in folder.records if r["key"] in {c.key for c in grid.configurations(True)}]
    paths = write_leaderboard(out, records, settings.metric)
    ok = ranked(records)
    failed = [r for r in records if r["status"] != "ok"]
    say(f"{len(ok)} configurations scored, {len(failed)} failed; leaderboard in {paths[1]}")
    for record in failed[:5]:
        say(f"  failed: {record['key']}: {record['error']}")
    if not ok:
        raise EmbedclfError(f"every configuration failed; see {folder.path}")
    best = ok[0]
    say(f"best by {settings.metric}: {best['key']} ({abs(best['score']):.4f})")
    best_dir = refit_best(best, train, space, encoder, data_options, settings, grid, Path(out) / BEST, say)
    if tracker is not None:
        tracker.finish_sweep(best, paths, best_dir)
    return {"records": records, "best": best, "best_dir": best_dir, "leaderboard": paths}


def refit_best(best: dict, train, space, encoder, data_options, settings: SweepSettings, grid: Grid, out: Path,
               say) -> Path:
    """The best configuration fitted on all of TRAIN and saved as a model folder; its decision thresholds are
    the ones tuned on validation during the sweep (the median over folds), its rules learnt from all of TRAIN."""
    from embedclf.features import DEFAULT_TFIDF_WEIGHT
    from embedclf.fit import FitSettings, fit_classifier
    from embedclf.sweep.grid import Configuration, HeadConfig
    from embedclf.sweep.scoring import build_head

    record = best["configuration"]
    params = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in record["params"].items()))
    configuration = Configuration(HeadConfig(record["head"], params), record["features"], record["thresholds"],
                                  record["rule_threshold"], record.get("tfidf_weight"), record.get("tfidf_ngrams"))
    rules = None
    if configuration.rule_threshold is not None:
        from embedclf.postprocess.model_rules import learn_rules

        rules = learn_rules(train, configuration.rule_threshold, grid.rule_min_support)
    classifier = fit_classifier(train, build_head(configuration, settings.seed, settings.jobs), encoder,
                                FitSettings(threshold=settings.threshold, seed=settings.seed,
                                            features=configuration.features,
                                            tfidf_weight=configuration.tfidf_weight or DEFAULT_TFIDF_WEIGHT,
                                            tfidf_ngrams=configuration.tfidf_ngrams or "word"),
                                data_options=data_options, rules=rules, say=say)
    classifier.thresholds = np.asarray(best["thresholds"], dtype=float)
    tuned = configuration.thresholds != "fixed"
    classifier.info["validation"] = {"rows": best["valid_rows"], "tuned_thresholds": tuned,
                                     **({"tuned_for": configuration.thresholds} if tuned else {}),
                                     **{k: v for k, v in best["metrics"].items() if isinstance(v, dict)}}
    classifier.info["sweep"] = {"configuration": best["key"], "metric": settings.metric, "score": best["score"],
                                "folds": best["folds"]}
    classifier.save(out)
    say(f"refitted the best configuration on all {len(train.texts):,} training rows; saved to {out}")
    return out


def _plain(options) -> dict:
    from dataclasses import asdict

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()}
