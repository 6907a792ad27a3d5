"""The Ray engine's outputs: Parquet shards in a directory, their vectors imported into the local cache,
and read back in input order (Parquet needs pyarrow only: reading shards back does not need Ray)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np

from embedclf.errors import EmbedclfError

IMPORT_CHUNK = 65_536  # vectors per cache commit, and at least this many rows per Parquet shard


def shard_files(out_dir) -> list[Path]:
    return sorted(Path(out_dir).glob("*.parquet"))


def new_out_dir(out_dir, hint: str) -> Path:
    """``out_dir`` created, or refused when it holds files (shards of another run would mix in)."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise EmbedclfError(f"{out}: not empty; {hint}")
    out.mkdir(parents=True, exist_ok=True)
    return out.resolve()  # the workers' working directory is not ours on other machines


def default_out_dir(cache_root, space: str) -> Path:
    """``CACHE/ray-SPACE/RUN``: only where every worker can write it, on a Ray instance of this machine alone."""
    import ray

    if len([n for n in ray.nodes() if n.get("Alive")]) > 1:
        raise EmbedclfError("the Ray cluster has several machines: give --out-dir, a directory every node can "
                            "write and this machine can read (a shared file system)")
    return Path(cache_root) / f"ray-{space}" / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def write_parquet(dataset, out: Path) -> None:
    """Parquet shards of at least IMPORT_CHUNK rows (``num_rows_per_file`` before Ray 2.41 named it so)."""
    import inspect

    from embedclf.engines.ray.session import run_action

    name = "min_rows_per_file" if "min_rows_per_file" in inspect.signature(dataset.write_parquet).parameters \
        else "num_rows_per_file"
    run_action(lambda: dataset.write_parquet(str(out), **{name: IMPORT_CHUNK}))


def import_vectors(batches, space) -> int:
    """Commit batches of (key, tokens, vector) to a cache space, one commit each, under the space's lock;
    returns how many vectors were new there."""
    return sum(space.add(batch.column("key").to_pylist(), matrix_of(batch.column("vector")),
                         batch.column("tokens").to_numpy()) for batch in batches)


def import_shards(out_dir, space) -> int:
    import pyarrow.dataset as pads

    shards = pads.dataset([str(p) for p in shard_files(out_dir)], format="parquet")
    return import_vectors(shards.to_batches(columns=["key", "tokens", "vector"], batch_size=IMPORT_CHUNK), space)


def dimension(out_dir) -> int:
    import pyarrow.parquet as pq

    shards = shard_files(out_dir)
    return pq.read_schema(shards[0]).field("vector").type.list_size if shards else 0


def load_matrix(out_dir) -> np.ndarray:
    """The ``(texts, dim)`` float32 matrix of a Ray encode run, in input order (sorted by row id)."""
    import pyarrow.parquet as pq

    shards = shard_files(out_dir)
    if not shards:
        return np.empty((0, 0), np.float32)
    table = pq.read_table([str(p) for p in shards], columns=["row", "vector"])
    order = np.argsort(table.column("row").to_numpy(), kind="stable")
    return matrix_of(table.column("vector"))[order]


def load_predictions(out_dir):
    """The predictions of a Ray predict run as one DataFrame, in input order."""
    import pandas as pd

    shards = shard_files(out_dir)
    if not shards:
        return pd.DataFrame()
    frame = pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True)
    return frame.sort_values("row", kind="stable").reset_index(drop=True)


def matrix_of(column) -> np.ndarray:
    """A fixed-size-list column of float32 as a ``(rows, dim)`` matrix."""
    column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)
