"""Labelling on Ray: numbered texts → actors that encode and apply the model's head → Parquet shards with
the columns ``embedclf predict`` writes (``row`` 1-based as there, labels per target, a probability per
label); the actors' vectors go into the driver's cache, as an encode run's do.

The driver loads and checks the model folder (checksums, trusted types, the model's files) and sends
the actors its head, label space, thresholds and rules: only the encoder's files must be on every node.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from embedclf.engines.inputs import open_cache
from embedclf.engines.ray.pool import VECTOR_COLUMNS, EncodeActor, actor_settings, map_on_pool
from embedclf.engines.ray.reading import numbered_texts
from embedclf.engines.ray.session import check_fits, ray_session, require_ray, run_action
from embedclf.engines.ray.shards import IMPORT_CHUNK, import_vectors, new_out_dir, write_parquet
from embedclf.engines.results import PredictResult
from embedclf.errors import EmbedclfError


class PredictActor(EncodeActor):
    """An encoding actor that also labels its batch like ``embedclf predict``; with ``vectors``, the
    vector columns stay in its output for the driver's cache."""

    def __init__(self, settings, expected: dict, decisions: dict, vectors: bool, id_col: str | None = None):
        from embedclf.model import TextClassifier

        super().__init__(settings, expected)
        if not self.mismatch:
            self.classifier = TextClassifier(self.encoder, **decisions)
        self.vectors, self.id_col = vectors, id_col

    def __call__(self, batch):
        import pyarrow as pa

        from embedclf.data import Dataset
        from embedclf.engines.ray.shards import matrix_of
        from embedclf.inference import predictions_frame

        encoded = super().__call__(batch)
        texts = batch.column("text").to_pylist()
        scores = self.classifier.scores(self.classifier.head_input(texts, matrix_of(encoded.column("vector"))))
        Y, added = self.classifier.decide(scores)
        rows = batch.column("row").to_numpy()
        dataset = Dataset("", texts, rows)
        if self.id_col is not None and "id" in batch.column_names:  # ids of this batch's rows, as the frame wants
            dataset.id_col, dataset.row_ids = self.id_col, dict(zip(rows.tolist(), batch.column("id").to_pylist()))
        table = pa.Table.from_pandas(predictions_frame(self.classifier, dataset, Y, scores, added),
                                     preserve_index=False)
        for name in VECTOR_COLUMNS if self.vectors else ():
            table = table.append_column(name, encoded.column(name))
        return table


def predict(model_dir, path, out, engine, *, data_overrides: dict, encoder_overrides: dict, cache=None,
            cooccur=None) -> PredictResult:
    """Label every kept text of ``path`` on Ray actors; see :func:`embedclf.engines.predict_data`."""
    from embedclf.inference import data_options_for, load_classifier
    from embedclf.io import TABLE_FORMATS

    require_ray()
    start = time.perf_counter()
    if Path(out).suffix in TABLE_FORMATS:
        raise EmbedclfError(f"{out}: with --engine ray, --out is a directory (of Parquet shards)")
    store = open_cache(cache)
    # checked on the driver as the local engine loads it, encoding nothing; the device is the actors' business
    classifier = load_classifier(model_dir, encoder_overrides=encoder_overrides | {"device": "cpu"},
                                 cache=store if store is not None else False, cooccur=cooccur)
    options = data_options_for(classifier, data_overrides)
    requested = replace(classifier.encoder.requested, device=encoder_overrides.get("device") or "auto")
    settings = actor_settings(requested, engine.gpus_per_actor, store)
    key = settings.cache_key()
    decisions = dict(head=classifier.head, space=classifier.space, thresholds=classifier.thresholds,
                     at_least_one=classifier.at_least_one, rules=classifier.rules, features=classifier.features,
                     tfidf=classifier.tfidf, tfidf_weight=classifier.tfidf_weight)  # the actors bring the encoder
    with ray_session(engine.address) as startup:
        check_fits(engine)
        out = new_out_dir(out, "give a new output directory")
        numbered = numbered_texts(path, options, labels=False, rows_per_block=settings.chunk_size,
                                  actors=engine.actors)
        result = PredictResult("ray", str(path), settings, numbered.rows, numbered.texts, numbered.skipped_empty,
                               actors=engine.actors, out=str(out))
        predict_start = time.perf_counter()
        if numbered.texts:
            args = dict(settings=settings, expected=key, decisions=decisions, vectors=store is not None,
                        id_col=numbered.id_col)
            labelled = map_on_pool(numbered.dataset, PredictActor, args, engine, batch_size=numbered.batch_size)
            if store is not None:
                labelled = run_action(labelled.materialize)  # in the object store (spilled to disk when large)
            write_parquet(labelled.drop_columns(list(VECTOR_COLUMNS)) if store is not None else labelled, out)
        result.stages = {"start-up": startup, "read": numbered.seconds, "predict": time.perf_counter() - predict_start}
        import_start = time.perf_counter()
        if store is not None and numbered.texts:
            space = store.space({"model": settings.model, **key})
            batches = labelled.select_columns(list(VECTOR_COLUMNS)).iter_batches(batch_size=IMPORT_CHUNK,
                                                                                 batch_format="pyarrow")
            result.cache_dir, result.imported = str(space.directory), import_vectors(batches, space)
        result.stages["import"] = time.perf_counter() - import_start
    result.seconds = time.perf_counter() - start
    return result
