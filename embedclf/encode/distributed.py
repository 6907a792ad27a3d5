"""The Ray engine for encoding: a corpus too large for one machine, on a Ray cluster (or this machine).

    driver:  list the input files, read them as a Ray dataset (read_csv / read_parquet; JSON lines with
             embedclf's own parser), number every row (``raydata.numbered_texts``)
    actors:  a pool of ``actors`` workers, each holding one Encoder loaded once: a batch of (row, text)
             in, (row, key, tokens, vector) out, computed by ``Encoder.encode``, the local engine's code
    workers: Parquet shards of those rows written to ``out_dir`` (``Dataset.write_parquet``)
    driver:  import the shards into the local embedding cache (``CacheSpace.add``), a chunk per commit

Workers never touch the embedding cache. It is a directory on the driver's machine, and a cache that
many machines wrote to at once would need a lock all of them can see (file locks on network file
systems are not that); the driver is the only writer here, and the cache's own file lock keeps it
safe beside any local ``embedclf`` run. Every actor checks that its ``Encoder.config`` (model
fingerprint, pooling, maximum length, normalisation, precision, backend) equals the driver's, so a
node with other model files fails the run instead of mixing vectors into the driver's cache space.
Ray restarts a killed actor and retries its batch (``retries`` times); a retried batch carries the
same row ids, so no text is lost or duplicated.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from embedclf.encode.cache import EmbeddingCache, default_cache_root, space_id, text_key
from embedclf.encode.raydata import (IMPORT_CHUNK, check_fits, check_pool, map_on_pool, mismatch_message,
                                     numbered_texts, ray_session, require_ray, shard_files, write_parquet)
from embedclf.errors import EmbedclfError


class EncodeActor:
    """One Encoder per actor, loaded once; encodes a batch of (row, text) into (row, key, tokens, vector)."""

    def __init__(self, encoder_kwargs: dict, expected: dict):
        from embedclf.encode.encoder import Encoder

        self.encoder = Encoder(**encoder_kwargs, cache=False, progress=False)
        config = self.encoder.config
        # raised on the first batch, not here: Ray would restart an actor whose constructor failed
        self.mismatch = None if config == expected else mismatch_message(config, expected)

    def __call__(self, batch):
        import pyarrow as pa

        if self.mismatch:
            raise EmbedclfError(self.mismatch)
        texts = batch.column("text").to_pylist()
        vectors = self.encoder.encode(texts)
        tokens = self.encoder.token_counts(texts)
        dim = vectors.shape[1]
        return pa.table({
            "row": batch.column("row"),
            "key": pa.array([text_key(t) for t in texts], pa.binary(32)),
            "tokens": pa.array(tokens, pa.int32()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim),
        })


def _actor_settings(encoder_kwargs: dict, gpus_per_actor: float) -> dict:
    """The encoder settings as the actors must use them: device and precision resolved for *their*
    hardware, so the driver (maybe without a GPU) computes the same configuration as they do."""
    settings = {k: v for k, v in encoder_kwargs.items() if k not in ("cache", "progress")}
    backend = settings.get("backend", "torch")
    device = settings.get("device", "auto")
    if gpus_per_actor and backend != "torch":
        raise EmbedclfError(f"the {backend} backend runs on the CPU; --gpus-per-actor needs --backend torch")
    if device == "auto":
        device = "cuda" if gpus_per_actor > 0 and backend == "torch" else "cpu"
    settings["device"] = device
    if settings.get("precision", "auto") == "auto":
        settings["precision"] = "fp16" if device.startswith("cuda") and backend == "torch" else "fp32"
    return settings


@dataclass
class RayEncodeReport:
    """What :func:`encode_with_ray` did; :func:`load_matrix` reads its vectors back in input order."""

    out_dir: str
    config: dict = field(default_factory=dict)
    rows: int = 0
    texts: int = 0
    skipped_empty: int = 0
    imported: int = 0
    dimension: int = 0
    actors: int = 0
    cache_dir: str | None = None
    startup_seconds: float = 0.0
    read_seconds: float = 0.0
    encode_seconds: float = 0.0
    import_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def texts_per_second(self) -> float:
        return self.texts / self.encode_seconds if self.encode_seconds > 0 else 0.0

    def summary(self) -> str:
        parts = [f"{self.texts:,} texts on {self.actors} Ray actors"]
        if self.texts:
            parts.append(f"{self.texts_per_second:,.1f} texts/s")
        parts.append(f"start-up {self.startup_seconds:.1f}s, read {self.read_seconds:.1f}s, "
                     f"encode {self.encode_seconds:.1f}s, import {self.import_seconds:.1f}s, total {self.seconds:.1f}s")
        return ", ".join(parts)

    def as_dict(self) -> dict:
        return asdict(self) | {"texts_per_second": self.texts_per_second}

    def lines(self, source) -> list[str]:
        """The command line's summary, like the local engine's."""
        c = self.config
        read = f"read {self.rows:,} rows from {source}; {self.texts:,} texts"
        shards = f"vectors in {self.out_dir} (Parquet: row, key, tokens, vector; {self.dimension} dims)"
        lines = [read + (f"; {self.skipped_empty:,} skipped (empty text)" if self.skipped_empty else ""),
                 f"encoded with {c.get('model')} ({str(c.get('fingerprint'))[:12]}), {c.get('pooling')} pooling, "
                 f"max {c.get('max_length')} tokens, {c.get('precision')}: {self.summary()}", shards]
        if self.cache_dir:
            lines.append(f"imported {self.imported:,} new vectors into the cache, {self.cache_dir}")
        return lines


def encode_with_ray(paths_or_dir, encoder_kwargs: dict | None = None, *, text_cols: Sequence[str] = ("text",),
                    columns: Sequence[str] | None = None, address: str | None = None, actors: int = 2,
                    gpus_per_actor: float = 0, cpus_per_actor: float = 1, batch_size: int = 256,
                    out_dir: str | Path | None = None, cache_root: str | Path | bool | None = None,
                    retries: int = 3, actor_cls: type = EncodeActor) -> RayEncodeReport:
    """Encode every non-empty text of ``paths_or_dir`` on a pool of Ray actors.

    Writes Parquet shards of (row, key, tokens, vector) to ``out_dir`` (default
    ``<cache root>/ray-<space id>/<run id>``; on a cluster of several machines give a directory
    every node can write and the driver can read) and imports them into the local embedding cache
    (``cache_root``: None for ``$EMBEDCLF_CACHE`` or ``./cache``; False not to import). ``row`` is a
    text's 0-based row in the inputs (files in sorted order). ``encoder_kwargs`` are
    :class:`~embedclf.encode.encoder.Encoder` arguments; ``actor_cls`` may subclass :class:`EncodeActor`.
    """
    from embedclf.encode.encoder import Encoder

    require_ray()
    start = time.perf_counter()
    settings = _actor_settings(dict(encoder_kwargs or {}), gpus_per_actor)
    check_pool(actors, batch_size, retries)
    pool = dict(actors=actors, gpus_per_actor=gpus_per_actor, cpus_per_actor=cpus_per_actor, batch_size=batch_size,
                retries=retries)
    cache = None if cache_root is False else EmbeddingCache(None if cache_root in (None, True) else cache_root)
    config = Encoder(**settings, cache=cache if cache is not None else False).config  # resolves, loads nothing
    with ray_session(address) as startup:
        check_fits(address, actors, cpus_per_actor, gpus_per_actor)
        out = _out_dir(out_dir, cache.root if cache else default_cache_root(), config)
        numbered = numbered_texts(paths_or_dir, text_cols, columns, rows_per_block=batch_size)
        report = RayEncodeReport(str(out), config, numbered.rows, numbered.texts, numbered.skipped_empty,
                                 actors=actors, startup_seconds=startup, read_seconds=numbered.seconds)
        encode_start = time.perf_counter()
        if numbered.texts:
            vectors = map_on_pool(numbered.dataset, actor_cls, dict(encoder_kwargs=settings, expected=config), **pool)
            write_parquet(vectors, out)
        report.encode_seconds = time.perf_counter() - encode_start
    import_start = time.perf_counter()
    report.dimension = _dimension(out)
    if cache is not None and numbered.texts:
        space = cache.space(config)
        report.cache_dir = str(space.directory)
        report.imported = import_shards(out, space)
    report.import_seconds = time.perf_counter() - import_start
    report.seconds = time.perf_counter() - start
    return report


def _out_dir(out_dir, cache_root: Path, config: dict) -> Path:
    import ray

    if out_dir is None:
        if len([n for n in ray.nodes() if n.get("Alive")]) > 1:
            raise EmbedclfError("the Ray cluster has several machines: give --out-dir, a directory every node can "
                                "write and this machine can read (a shared file system)")
        run = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        out_dir = Path(cache_root) / f"ray-{space_id(config)}" / run
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise EmbedclfError(f"{out}: not empty; give a new --out-dir (shards of another run would mix in)")
    out.mkdir(parents=True, exist_ok=True)
    return out.resolve()  # the workers' working directory is not ours on other machines


def import_shards(out_dir, space) -> int:
    """Commit the shards' vectors to a cache space, a chunk at a time; returns how many were new."""
    import pyarrow.dataset as pads

    added = 0
    shards = pads.dataset([str(p) for p in shard_files(out_dir)], format="parquet")
    for batch in shards.to_batches(columns=["key", "tokens", "vector"], batch_size=IMPORT_CHUNK):
        keys = batch.column("key").to_pylist()
        added += space.add(keys, _vectors(batch.column("vector")), batch.column("tokens").to_numpy())
    return added


def load_matrix(report_or_dir) -> np.ndarray:
    """The ``(texts, dim)`` float32 matrix of a Ray run, in input order (sorted by row id)."""
    import pyarrow.parquet as pq

    out = report_or_dir.out_dir if isinstance(report_or_dir, RayEncodeReport) else report_or_dir
    shards = shard_files(out)
    if not shards:
        return np.empty((0, 0), np.float32)
    table = pq.read_table([str(p) for p in shards], columns=["row", "vector"])
    order = np.argsort(table.column("row").to_numpy(), kind="stable")
    return _vectors(table.column("vector"))[order]


def _dimension(out_dir) -> int:
    import pyarrow.parquet as pq

    shards = shard_files(out_dir)
    return pq.read_schema(shards[0]).field("vector").type.list_size if shards else 0


def _vectors(column) -> np.ndarray:
    """A fixed-size-list column of float32 as a ``(rows, dim)`` matrix."""
    column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)
