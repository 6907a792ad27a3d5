"""``embedclf sweep``: encode once, fit a grid of heads and decisions, rank them, keep the best."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from embedclf.cli import app
from embedclf.cli.options import (BackendOption, Cache, ChunkSize, Columns, Device, Experiment, LabelCol, LabelNames,
                                  LabelSep, MaxBatchTokens, MaxLength, Model, NoCache, Normalize, PoolingOption,
                                  PrecisionOption, Strict, Task, TextCol, Threshold, Track, ENCODER, cache_option,
                                  data_options, encoder_settings, say, track_settings)
from embedclf.sweep.metrics import METRICS

SWEEP = "Sweep options"
MetricName = Enum("MetricName", {name: name for name in METRICS}, type=str)


def _sweep_option(help: str, *names: str):
    return typer.Option(*names, help=help, rich_help_panel=SWEEP)


@app.command()
def sweep(
    train: Annotated[Path, typer.Argument(help="Labelled training data (CSV, TSV, JSON lines, Parquet).")],
    out: Annotated[Path, typer.Option(help="Sweep folder: results.jsonl, leaderboard.{csv,md,png}, best/ (a model "
                                           "folder).")],
    grid: Annotated[str, _sweep_option("A grid TOML file (see examples/grid.toml), or a built-in grid: default "
                                       "(21 linear and kNN heads) or mlp (6 MLPs).")] = "default",
    metric: Annotated[MetricName, _sweep_option("What ranks the configurations (validation, averaged over "
                                                "targets and folds).")] = "micro-f1",
    jobs: Annotated[int, _sweep_option("Configurations fitted at once (joblib processes; -1: every core).")] = 1,
    cv: Annotated[Optional[int], _sweep_option("K stratified folds instead of one validation split.")] = None,
    valid: Annotated[Optional[Path], _sweep_option("Validation data, read with the same data options.")] = None,
    valid_split: Annotated[float, _sweep_option(
        "Without --valid or --cv: hold out this fraction of TRAIN (the rows embedclf fit --valid-split holds "
        "out).")] = 0.1,
    resume: Annotated[bool, _sweep_option("Continue the sweep in --out, skipping finished configurations.",
                                          "--resume")] = False,
    seed: Annotated[int, _sweep_option("Random seed (split, folds, MLP).")] = 0,
    threshold: Threshold = 0.5,
    track: Track = False, experiment: Experiment = None,
    columns: Columns = None, text_col: TextCol = None, label_col: LabelCol = None, label_sep: LabelSep = None,
    label_names: LabelNames = None, task: Task = None, strict: Strict = False,
    model: Model = None,
    encode_batch_size: Annotated[int, typer.Option(help="Texts per forward pass when encoding.",
                                                   rich_help_panel=ENCODER)] = 32,
    max_batch_tokens: MaxBatchTokens = None, chunk_size: ChunkSize = 1024, max_length: MaxLength = None,
    pooling: PoolingOption = None, normalize: Normalize = True, device: Device = "auto",
    precision: PrecisionOption = "auto", backend: BackendOption = "torch", cache: Cache = None,
    no_cache: NoCache = False,
):
    """Encode TRAIN once, fit every configuration of a grid on the same split, rank them, refit the best to OUT/best."""
    from embedclf.sweep import SweepSettings, load_grid, sweep_files

    tracking = track_settings(track, experiment)
    settings = SweepSettings(metric=metric.value, jobs=jobs, cv=cv, valid_split=valid_split, threshold=threshold,
                             seed=seed, resume=resume)
    chosen = load_grid(grid)
    encoder = encoder_settings(model, encode_batch_size, max_length, pooling, normalize, device, precision, backend,
                               max_batch_tokens, chunk_size)
    options = data_options(columns, text_col, label_col, label_sep, label_names, task, strict)
    sweep_files(train, out, chosen, encoder, settings, options, valid=valid, cache=cache_option(cache, no_cache),
                tracking=tracking, say=say)
