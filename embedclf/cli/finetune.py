"""``embedclf finetune``: train the whole transformer, for comparison with the heads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from embedclf.cli import app
from embedclf.cli.options import (Cache, Columns, Device, LabelCol, LabelNames, LabelSep, Model, Strict, Task, TextCol,
                                  TuneFor, data_options, say)


@app.command()
def finetune(
    train: Annotated[Path, typer.Argument(help="Labelled training data.")],
    out: Annotated[Path, typer.Option(help="Model folder to write (predict/evaluate/--cooccur work on it).")],
    valid: Annotated[Optional[Path], typer.Option(help="Validation data, evaluated after each epoch.")] = None,
    valid_split: Annotated[Optional[float], typer.Option(help="Hold out this fraction of TRAIN for validation.")] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training data.")] = 3,
    lr: Annotated[float, typer.Option(help="Peak learning rate of the transformer (AdamW).")] = 2e-5,
    head_lr: Annotated[float, typer.Option(help="Peak learning rate of the new classification layer.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Texts per training step.")] = 16,
    max_length: Annotated[int, typer.Option(help="Tokens per text.")] = 128,
    warmup: Annotated[float, typer.Option(help="Fraction of steps with a linear warm-up.")] = 0.1,
    pos_weight: Annotated[Optional[str], typer.Option(help="'balanced' to weigh rare labels' positives up (BCE).")] = None,
    threshold: Annotated[float, typer.Option(help="Global multi-label decision threshold.")] = 0.5,
    tune_thresholds: Annotated[bool, typer.Option("--tune-thresholds", help="Tune the multi-label thresholds on "
                                                  "validation (see --tune-for).")] = False,
    tune_for: TuneFor = "macro",
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from OUT.checkpoint.")] = False,
    checkpoint_every: Annotated[int, typer.Option(help="Also checkpoint every N steps (0: each epoch only).")] = 0,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after N steps in total (a quick look).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    model: Model = None, device: Device = "auto", cache: Cache = None,
    columns: Columns = None, text_col: TextCol = None, label_col: LabelCol = None, label_sep: LabelSep = None,
    label_names: LabelNames = None, task: Task = None, strict: Strict = False,
):
    """Fine-tune the whole transformer plus a classification layer on TRAIN; saves an ordinary model folder."""
    from embedclf.encode.models import DEFAULT_MODEL
    from embedclf.finetune import FineTuneSettings, finetune as run

    options = data_options(columns, text_col, label_col, label_sep, label_names, task, strict)
    train_data = options.load(train, require_labels=True)
    say(train_data.summary())
    valid_data = options.load(valid, require_labels=True) if valid else None
    settings = FineTuneSettings(model=model or DEFAULT_MODEL, epochs=epochs, lr=lr, head_lr=head_lr, batch_size=batch_size,
                                max_length=max_length, warmup=warmup, pos_weight=pos_weight, seed=seed, device=device,
                                checkpoint_every=checkpoint_every, max_steps=max_steps)
    classifier = run(train_data, settings, out, data_options=options, valid=valid_data, valid_split=valid_split,
                     tune_thresholds=tune_thresholds, tune_for=tune_for, threshold=threshold, resume=resume,
                     cache=cache, say=say)
    details = classifier.info["finetune"]
    say(f"fine-tuned {details['steps']} steps in {details['seconds']:.0f}s; kept epoch {details['best_epoch']}; "
        f"saved to {out}")
