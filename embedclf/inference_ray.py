"""The Ray engine for prediction: label a corpus on a pool of Ray actors, like ``embedclf predict`` does.

Each actor loads the model folder once (``TextClassifier.load``, no cache) and turns a batch of
(row, text) into the rows ``inference.predictions_frame`` writes: ``row`` (1-based, as in
``embedclf predict``), the labels per target and a probability per label, as Parquet shards in
``out_dir``. The reading, numbering and pool are the encode engine's (``encode.raydata``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from embedclf.encode.raydata import (check_fits, check_pool, map_on_pool, mismatch_message, numbered_texts,
                                     ray_session, require_ray, shard_files, write_parquet)
from embedclf.errors import EmbedclfError


class PredictActor:
    """One TextClassifier per actor, loaded once; labels a batch of (row, text) like ``embedclf predict``."""

    def __init__(self, model_dir: str, load: dict, cooccur: str | None, expected: dict):
        from embedclf.model import TextClassifier

        self.classifier = TextClassifier.load(model_dir, **load)
        if cooccur:
            from embedclf.postprocess.cooccur import CooccurrenceRules

            self.classifier.rules = CooccurrenceRules.load(cooccur)
        config = self.classifier.encoder.config
        self.mismatch = None if config == expected else mismatch_message(config, expected)

    def __call__(self, batch):
        import pyarrow as pa

        from embedclf.data import Dataset
        from embedclf.inference import predict_dataset, predictions_frame

        if self.mismatch:
            raise EmbedclfError(self.mismatch)
        dataset = Dataset("", batch.column("text").to_pylist(), batch.column("row").to_numpy())
        scores, Y, added = predict_dataset(self.classifier, dataset)
        return pa.Table.from_pandas(predictions_frame(self.classifier, dataset, Y, scores, added), preserve_index=False)


@dataclass
class RayPredictReport:
    out_dir: str
    rows: int = 0
    texts: int = 0
    skipped_empty: int = 0
    actors: int = 0
    startup_seconds: float = 0.0
    predict_seconds: float = 0.0
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.texts / self.predict_seconds if self.predict_seconds > 0 else 0.0
        return (f"{self.texts:,} texts on {self.actors} Ray actors, {rate:,.1f} texts/s, start-up "
                f"{self.startup_seconds:.1f}s, total {self.seconds:.1f}s")

    def lines(self, source) -> list[str]:
        read = f"read {self.rows:,} rows from {source}; {self.texts:,} texts"
        return [read + (f"; {self.skipped_empty:,} skipped (empty text)" if self.skipped_empty else ""),
                f"predicted {self.summary()}",
                f"wrote {self.texts:,} predictions to {self.out_dir} (Parquet shards; row is 1-based, as in predict)"]


def predict_with_ray(model_dir, paths_or_dir, out_dir, *, address: str | None = None, actors: int = 2,
                     gpus_per_actor: float = 0, cpus_per_actor: float = 1, batch_size: int = 256,
                     encode_batch_size: int | None = None, text_cols: Sequence[str] | None = None,
                     columns: Sequence[str] | None = None, cooccur: str | Path | None = None,
                     model: str | None = None, backend: str | None = None, precision: str | None = None,
                     retries: int = 3) -> RayPredictReport:
    """Label every non-empty text of ``paths_or_dir`` on Ray actors; Parquet shards of ``row`` (1-based, as
    ``embedclf predict`` writes it), the labels per target and a probability per label go to ``out_dir``.
    ``model_dir`` must be readable at the same path on every node. Data options default to the model's;
    the encoder's backend and precision to the ones it was fitted with."""
    from embedclf.model import TextClassifier, read_manifest

    require_ray()
    start = time.perf_counter()
    check_pool(actors, batch_size, retries)
    pool = dict(actors=actors, gpus_per_actor=gpus_per_actor, cpus_per_actor=cpus_per_actor, batch_size=batch_size,
                retries=retries)
    device = "cuda" if gpus_per_actor > 0 else "cpu"
    if precision is None and backend not in (None, read_manifest(Path(model_dir))["encoder"].get("backend", "torch")):
        precision = "auto"  # another backend than the model's: its own default precision, as TextClassifier.load does
    if precision == "auto":  # resolved for the actors' hardware, not the driver's
        precision = "fp16" if device == "cuda" and (backend or "torch") == "torch" else "fp32"
    load = dict(model=model, cache=False, device=device, batch_size=encode_batch_size)
    load |= {k: v for k, v in dict(backend=backend, precision=precision).items() if v is not None}
    classifier = TextClassifier.load(model_dir, **load)  # checks the folder and the model's files on the driver
    if cooccur:
        from embedclf.postprocess.cooccur import CooccurrenceRules, check_rules_fit

        check_rules_fit(CooccurrenceRules.load(cooccur), classifier.space, cooccur)
    options = classifier.data_options
    with ray_session(address) as startup:
        check_fits(address, actors, cpus_per_actor, gpus_per_actor)
        out = Path(out_dir).resolve()  # the workers' working directory is not ours on other machines
        if out.exists() and any(out.iterdir()):
            raise EmbedclfError(f"{out}: not empty; give a new output directory")
        numbered = numbered_texts(paths_or_dir, list(text_cols or options.text_cols),
                                  columns if columns is not None else options.columns, rows_per_block=batch_size)
        report = RayPredictReport(str(out), numbered.rows, numbered.texts, numbered.skipped_empty, actors, startup)
        predict_start = time.perf_counter()
        if numbered.texts:
            args = dict(model_dir=str(Path(model_dir).resolve()), load=load, expected=classifier.encoder.config,
                        cooccur=str(Path(cooccur).resolve()) if cooccur else None)
            labelled = map_on_pool(numbered.dataset, PredictActor, args, **pool)
            write_parquet(labelled, out)
        report.predict_seconds = time.perf_counter() - predict_start
    report.seconds = time.perf_counter() - start
    return report


def load_predictions(out_dir):
    """The predictions of a Ray run as one DataFrame, in input order."""
    import pandas as pd

    shards = shard_files(out_dir)
    if not shards:
        return pd.DataFrame()
    frame = pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True)
    return frame.sort_values("row", kind="stable").reset_index(drop=True)
