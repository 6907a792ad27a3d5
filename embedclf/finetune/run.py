"""``finetune()``: train, then write an ordinary model folder with the fine-tuned transformer inside."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from embedclf.data import DataOptions, Dataset
from embedclf.finetune.settings import FineTuneSettings
from embedclf.finetune.trainer import FineTuner
from embedclf.labels import block_probabilities


def finetune(train: Dataset, settings: FineTuneSettings, out: str | Path, *, data_options: DataOptions | None = None,
             valid: Dataset | None = None, valid_split: float | None = None, tune_thresholds: bool = False,
             tune_for: str = "macro", threshold: float = 0.5, resume: bool = False, cache=None,
             say: Callable[[str], None] | None = None):
    """Fine-tune ``settings.model`` on ``train`` and save a model folder at ``out``; returns the classifier.

    Checkpoints go to ``<out>.checkpoint`` (``resume=True`` continues from there) and are removed
    once the folder is written.
    """
    from embedclf.fit import training_splits
    from embedclf.model import TextClassifier

    say = say or (lambda message: None)
    for line in train.absent_label_names_lines():  # --label-names with no row in train: no class for them
        say(line)
    space, texts, Y, valid_texts, Y_valid = training_splits(train, valid, valid_split, tune_thresholds,
                                                            settings.seed, say, tune_for)
    out = Path(out)
    checkpoint_dir = out.with_name(out.name + ".checkpoint")
    tuner = FineTuner(settings, space, say)
    say(f"fine-tuning {tuner.ref.describe()} on {len(texts):,} texts, {tuner.device}"
        + (f" with {str(tuner.autocast_dtype).split('.')[-1]} autocast" if tuner.autocast_dtype else ""))
    started = time.perf_counter()
    state = tuner.train(texts, Y, valid_texts, Y_valid, checkpoint_dir, resume)
    seconds = time.perf_counter() - started
    info = {"finetune": {"epochs_run": state["epoch"], "steps": state["step"], "best_epoch": state["best_epoch"],
                         "history": state["history"], "seconds": round(seconds, 1), "settings": asdict(settings)},
            "train_rows": len(texts), "train_file": train.path, "fit_seconds": round(seconds, 1)}
    _save_folder(tuner, out, info, data_options, threshold, cache,
                 validation=None if valid_texts is None else (valid_texts, Y_valid, tune_thresholds, tune_for))
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return TextClassifier.load(out, cache=cache, device=settings.device)  # encoder now read from inside ``out``


def _save_folder(tuner: FineTuner, out: Path, info: dict, data_options, threshold: float, cache, validation) -> None:
    """Write the model folder: the transformer staged next to ``out``, then bundled into it; validation
    metrics (and tuned thresholds) from the trained network's scores."""
    from embedclf.encode.encoder import Encoder
    from embedclf.fit import score_validation
    from embedclf.model import TextClassifier

    settings = tuner.settings
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.encoder-", dir=out.parent if out.parent.exists() else None))
    try:
        tuner.save_encoder(staging)
        encoder = Encoder(str(staging), pooling="mean", max_length=settings.max_length, normalize=False,
                          precision="fp32", device=settings.device, batch_size=settings.batch_size * 2, cache=cache)
        classifier = TextClassifier(encoder, tuner.linear_head(), tuner.space, data_options=data_options,
                                    thresholds=threshold, info=info)
        if validation is not None:
            valid_texts, Y_valid, tune_thresholds, tune_for = validation
            scores = block_probabilities(tuner.logits(valid_texts), tuner.space.layout)
            score_validation(classifier, Y_valid, scores, tune_thresholds, threshold, tune_for)
        classifier.save(out, bundle={"encoder": staging})
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def finetune_files(train_path, out, settings: FineTuneSettings, fit_settings, data_options: DataOptions, *,
                   valid=None, resume: bool = False, cache=None, tracking=None,
                   say: Callable[[str], None] | None = None):
    """``embedclf finetune``: read TRAIN (and ``valid``), fine-tune, save the folder ``out``.

    ``fit_settings`` (:class:`~embedclf.fit.FitSettings`) says how to validate and decide, as for ``fit``;
    every setting was checked when it was built, so a mistake fails before any model loads.
    """
    from embedclf.fit import read_training_files

    say = say or (lambda message: None)
    train, valid_data = read_training_files(out, data_options, train_path, valid, say)
    fit_settings.check_validation(valid_data)
    classifier = finetune(train, settings, out, data_options=data_options, valid=valid_data,
                          valid_split=fit_settings.valid_split, tune_thresholds=fit_settings.tune_thresholds,
                          tune_for=fit_settings.tune_for, threshold=fit_settings.threshold, resume=resume, cache=cache,
                          say=say)
    details = classifier.info["finetune"]
    say(f"fine-tuned {details['steps']} steps in {details['seconds']:.0f}s; kept epoch {details['best_epoch']}; "
        f"saved to {out}")
    if tracking is not None:
        from dataclasses import asdict

        from embedclf.track_runs import track_fit

        run_id = track_fit(tracking, "finetune", classifier, out, train_path, valid,
                           {"finetune": asdict(settings), "decide": asdict(fit_settings)})
        say(f"tracked as MLflow run {run_id}")
    return classifier
