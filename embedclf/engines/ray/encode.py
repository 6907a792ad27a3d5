"""Encoding on Ray: numbered texts → actors → Parquet shards of (row, key, tokens, vector) → the local cache.

``row`` is a text's 0-based row in the input (files in sorted order), ``key`` the sha256 of the text.
Texts are not looked up in the cache before encoding (the texts live on the workers, the cache on the
driver), and a text repeated across batches is encoded once per batch; the import keeps one copy.
"""

from __future__ import annotations

import time

from embedclf.data import DataOptions
from embedclf.encode.cache import default_cache_root, space_id
from embedclf.encode.settings import EncoderSettings
from embedclf.engines.inputs import open_cache
from embedclf.engines.ray.pool import EncodeActor, actor_settings, map_on_pool
from embedclf.engines.ray.reading import numbered_texts
from embedclf.engines.ray.session import check_fits, ray_session, require_ray
from embedclf.engines.ray.shards import default_out_dir, dimension, import_shards, new_out_dir, write_parquet
from embedclf.engines.results import EncodeResult


def encode(path, options: DataOptions, settings: EncoderSettings, engine, *, cache=None, out_dir=None,
           progress: bool | None = None, actor_cls: type = EncodeActor) -> EncodeResult:
    """Encode every kept text of ``path`` on a pool of Ray actors; see :func:`embedclf.engines.encode_data`.

    ``out_dir`` (default ``CACHE/ray-SPACE/RUN``) must be a directory every node can write and the driver
    can read when the cluster has several machines. ``actor_cls`` may subclass :class:`EncodeActor`.
    """
    require_ray()
    start = time.perf_counter()
    store = open_cache(cache)
    settings = actor_settings(settings, engine.gpus_per_actor, store)
    key = settings.cache_key()
    with ray_session(engine.address, progress=progress) as startup:
        check_fits(engine)
        if out_dir is None:
            out_dir = default_out_dir(store.root if store is not None else default_cache_root(), space_id(key))
        out = new_out_dir(out_dir, "give a new --out-dir (shards of another run would mix in)")
        numbered = numbered_texts(path, options, rows_per_block=settings.chunk_size, actors=engine.actors)
        encode_start = time.perf_counter()
        if numbered.texts:
            vectors = map_on_pool(numbered.dataset, actor_cls, dict(settings=settings, expected=key), engine,
                                  batch_size=numbered.batch_size)
            write_parquet(vectors, out)
        stages = {"start-up": startup, "read": numbered.seconds, "encode": time.perf_counter() - encode_start}
    result = EncodeResult("ray", str(path), settings, numbered.rows, numbered.texts, numbered.skipped_empty,
                          numbered.skipped_unlabelled, actors=engine.actors, stages=stages, out_dir=str(out),
                          dimension=dimension(out), labels_read_as_missing=numbered.labels_read_as_missing,
                          id_col=numbered.id_col, row_ids=numbered.row_ids)
    import_start = time.perf_counter()
    if store is not None and numbered.texts:
        space = store.space({"model": settings.model, **key})
        result.cache_dir, result.imported = str(space.directory), import_shards(out, space)
    stages["import"] = time.perf_counter() - import_start
    result.seconds = time.perf_counter() - start
    return result
