"""Ray Data plumbing shared by the Ray engines: the session, reading inputs into numbered texts, the
actor pool, and the Parquet shards the actors write.

Rows get a global id here: Ray Data gives rows no position, so the inputs are read in order
(``preserve_order``), materialised (texts only, in the object store), and each block is numbered from
the row counts of the blocks before it. A retried batch therefore carries the same ids, and the
input order is restored by sorting on them.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from embedclf.data import detect_format, join_texts
from embedclf.errors import EmbedclfError, missing_extra

IMPORT_CHUNK = 65_536  # rows per cache commit, and at least this many per Parquet shard


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (ray without the [data] extra lacks pandas/pyarrow glue)
    except ImportError:
        raise missing_extra("Ray", "ray") from None
    return ray


# -- the Ray session --------------------------------------------------------------------------------
@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None):
    """Use the running Ray instance, connect to ``address`` ('auto', 'ray://head:10001'), or start a
    local one with ``num_cpus`` (default: this machine's); yields the seconds start-up took (0 if running)."""
    ray = require_ray()
    start = time.perf_counter()
    _quiet_ray_logging()
    ours = not ray.is_initialized()
    if ours:
        quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
        if address is None:
            ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = sys.stderr.isatty()
    try:
        yield time.perf_counter() - start if ours else 0.0
    finally:
        if ours:
            ray.shutdown()


class _Drop(logging.Filter):
    def __init__(self, function: str):
        super().__init__()
        self.function = function

    def filter(self, record: logging.LogRecord) -> bool:
        return record.funcName != self.function


def _quiet_ray_logging() -> None:
    """Ray's INFO lines off stderr, and two warnings about choices made here; Ray's other warnings stay."""
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # "Running Dataset ...", stats
    for name in ("ray.data.exceptions", "ray.data._internal.execution.streaming_executor_state"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # they log the exception the driver then raises
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "Progress bars disabled"
    auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _Drop) for f in auth.filters):
        auth.addFilter(_Drop("_warn_token_auth_enabled"))  # "token authentication is enabled": good, not news


# -- reading: files → numbered (row, text) blocks -----------------------------------------------------
def list_inputs(paths_or_dir) -> tuple[list[str], str]:
    """The data files (a file, a directory of files, or a list of either), sorted, and their one format."""
    items = [paths_or_dir] if isinstance(paths_or_dir, (str, Path)) else list(paths_or_dir)
    files = []
    for item in map(Path, items):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
            if not found:
                raise EmbedclfError(f"{item}: no data files in this directory")
            files += found
        elif item.exists():
            files.append(item)
        else:
            raise EmbedclfError(f"{item}: no such file or directory")
    formats = {detect_format(f) for f in files}
    if len(formats) > 1:
        raise EmbedclfError(f"{items[0]}: the files mix formats ({', '.join(sorted(formats))}); give one format")
    return [str(f.resolve()) for f in files], formats.pop()


def _check_columns(path: str, fmt: str, text_cols: Sequence[str], columns: Sequence[str] | None) -> None:
    """Fail on the driver, in embedclf's words, when the first file lacks a text column."""
    if columns:
        if fmt not in ("csv", "tsv"):
            raise EmbedclfError(f"{path}: --columns is for headerless CSV/TSV files; {fmt} names its columns")
        available = list(columns)
    elif fmt in ("csv", "tsv"):
        import csv

        import pandas as pd
        tsv = dict(sep="\t", quoting=csv.QUOTE_NONE) if fmt == "tsv" else dict(sep=",")
        available = list(pd.read_csv(path, nrows=0, encoding="utf-8", **tsv).columns)
    elif fmt == "parquet":
        import pyarrow.parquet as pq
        available = pq.read_schema(path).names
    else:
        return  # JSON lines name their fields per record: _json_texts checks each file
    for column in text_cols:
        if column not in available:
            hint = "; headerless file? name its columns with --columns" if fmt in ("csv", "tsv") and not columns else ""
            raise EmbedclfError(f"{path}: no column {column!r} (columns: {', '.join(map(str, available[:20]))}){hint}")


def read_dataset(files: list[str], fmt: str, text_cols: Sequence[str], columns: Sequence[str] | None = None):
    """A Ray dataset of the text columns, read as embedclf.data reads them (every cell a string, TSV unquoted),
    and the names of its text columns (JSON lines come joined already, in one column ``text``)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import ray.data

    # local paths get pyarrow's local file system rather than Ray's guess through fsspec
    local = {"filesystem": _local_filesystem()} if all("://" not in str(f) for f in files) else {}
    if fmt in ("csv", "tsv"):
        parse = pacsv.ParseOptions(delimiter="\t", quote_char=False) if fmt == "tsv" \
            else pacsv.ParseOptions(newlines_in_values=True)
        return ray.data.read_csv(
            files, parse_options=parse, **local,
            read_options=pacsv.ReadOptions(column_names=list(columns) if columns else None),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(text_cols), column_types={c: pa.string() for c in text_cols},
                strings_can_be_null=False, quoted_strings_can_be_null=False)), list(text_cols)
    if fmt == "jsonl":
        # Ray's read_json parses with pyarrow or pandas depending on its version, and both coerce types;
        # the local reader's own parser (json.loads per line) keeps every text as it is
        return ray.data.read_binary_files(files, include_paths=True, **local).map_batches(
            _json_texts, fn_kwargs=dict(text_cols=list(text_cols)), batch_size=None, batch_format="pyarrow"), ["text"]
    return ray.data.read_parquet(files, **local).select_columns(list(text_cols)), list(text_cols)


def _local_filesystem():
    import pyarrow.fs

    return pyarrow.fs.LocalFileSystem()


def _json_texts(batch, text_cols: Sequence[str]):
    """The joined texts of whole JSON-lines files (a batch of ``path``, ``bytes``), as embedclf.data reads them."""
    import io
    import json

    import pyarrow as pa

    from embedclf.data import json_records

    texts = []
    for path, data in zip(batch.column("path").to_pylist(), batch.column("bytes").to_pylist()):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EmbedclfError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
        records = json_records(io.StringIO(text, newline=None), path)
        if records is None:  # one JSON array
            records = [r for r in json.loads(text) if isinstance(r, dict)]
        for column in text_cols:
            if records and not any(column in r for r in records):
                names = list(dict.fromkeys(k for r in records[:1000] for k in r))
                raise EmbedclfError(f"{path}: no column {column!r} (columns: {', '.join(names[:20])})")
        texts += join_texts([[r.get(c) for r in records] for c in text_cols])
    return pa.table({"text": pa.array(texts, pa.string())})


def _count_rows(block) -> int:
    return block.num_rows


def _number_rows(block, first_row: int, text_cols: Sequence[str], rows_per_block: int):
    """The block's texts with their global row ids, in slices of ``rows_per_block`` rows (the last return
    value is ``(rows, skipped)``); empty texts are dropped and counted."""
    import pyarrow as pa

    texts = join_texts([block.column(c).to_pylist() for c in text_cols]) if block.num_rows else []  # may lack columns
    slices = []
    for start in range(0, max(len(texts), 1), rows_per_block):
        keep = [i for i in range(start, min(start + rows_per_block, len(texts))) if texts[i]]
        slices.append(pa.table({"row": pa.array([first_row + i for i in keep], pa.int64()),
                                "text": pa.array([texts[i] for i in keep], pa.string())}))
    return (*slices, (len(texts), sum(1 for t in texts if not t)))


@dataclass
class NumberedTexts:
    dataset: object  # ray.data.Dataset of (row, text), in blocks of at most one batch
    rows: int
    texts: int
    skipped_empty: int
    seconds: float


def numbered_texts(paths_or_dir, text_cols: Sequence[str], columns: Sequence[str] | None = None, *,
                   rows_per_block: int = 256) -> NumberedTexts:
    """Read the inputs in order and give every row its 0-based position in them, as ``Dataset.rows`` does
    (files in sorted order, one count across them). The numbered blocks hold ``rows_per_block`` rows
    (one batch), so every actor of the pool gets work even from a single file."""
    import ray
    from ray.data import DataContext

    start = time.perf_counter()
    files, fmt = list_inputs(paths_or_dir)
    _check_columns(files[0], fmt, text_cols, columns)
    context = DataContext.get_current()
    preserve = context.execution_options.preserve_order
    context.execution_options.preserve_order = True  # blocks come back in file order, rows in file order
    try:
        dataset, text_cols = read_dataset(files, fmt, text_cols, columns)
        blocks = run_action(dataset.to_arrow_refs)
    finally:
        context.execution_options.preserve_order = preserve
    counts = ray.get([ray.remote(_count_rows).remote(b) for b in blocks])
    tables, stats, first = [], [], 0
    for block, count in zip(blocks, counts):
        slices = max(1, -(-count // rows_per_block))
        *parts, block_stats = ray.remote(_number_rows).options(num_returns=slices + 1).remote(
            block, first, list(text_cols), rows_per_block)
        tables += parts
        stats.append(block_stats)
        first += count
    stats = ray.get(stats)
    rows, skipped = sum(s[0] for s in stats), sum(s[1] for s in stats)
    dataset = ray.data.from_arrow_refs(tables) if tables else None
    return NumberedTexts(dataset, rows, rows - skipped, skipped, time.perf_counter() - start)


def run_action(action):
    """Run a Ray Data action; an EmbedclfError raised in a worker becomes the driver's one-line error.

    Ray hands back a worker's exception as text inside its own exception type, so the message is
    found by the exception's qualified name.
    """
    try:
        return action()
    except Exception as exc:
        marker = f"{EmbedclfError.__module__}.{EmbedclfError.__qualname__}: "
        for line in str(exc).splitlines():
            if marker in line:
                raise EmbedclfError(line.split(marker, 1)[1].strip()) from None
        raise


# -- the actor pool ------------------------------------------------------------------------------------
def mismatch_message(config: dict, expected: dict) -> str:
    """What an actor says when its model or settings differ from the driver's (raised on its first batch)."""
    import socket

    different = ", ".join(f"{k} {config.get(k)!r} (driver: {expected.get(k)!r})"
                          for k in sorted(set(config) | set(expected)) if config.get(k) != expected.get(k))
    return (f"Ray worker {socket.gethostname()} encodes differently from the driver: {different}; "
            "install the same model files and embedclf version on every node")


def map_on_pool(dataset, actor_cls, constructor_kwargs: dict, *, actors: int, gpus_per_actor: float,
                 cpus_per_actor: float, batch_size: int, retries: int):
    """``dataset.map_batches`` over a fixed pool of ``actors``; a killed actor is restarted and its batch
    retried, at most ``retries`` times each (Ray Data's own default is forever)."""
    import warnings

    import ray
    from ray.data import ActorPoolStrategy

    # The pool: ``concurrency`` before Ray 2.51, ``compute`` since (each warns on the other). Ray Data queues
    # up to 4 batches on an actor by default, so one actor that loads its model first can take the work of
    # all; a CPU batch takes seconds, so one at a time costs nothing, and a GPU batch (tens of ms) gets one
    # more waiting behind it so the GPU never idles.
    if _ray_version(ray) >= (2, 51):
        size = dict(compute=ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=2 if gpus_per_actor else 1))
    else:
        size = dict(concurrency=actors)
    with warnings.catch_warnings():
        # max_restarts and max_task_retries have no named parameter yet; Ray 2.60 warns on **ray_remote_args
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=DeprecationWarning)
        return dataset.map_batches(actor_cls, fn_constructor_kwargs=constructor_kwargs, **size,
                                   num_gpus=gpus_per_actor or None, num_cpus=cpus_per_actor, batch_size=batch_size,
                                   batch_format="pyarrow", max_restarts=retries, max_task_retries=retries)


def _ray_version(ray) -> tuple[int, int]:
    return tuple(int(part) for part in ray.__version__.split(".")[:2])


def check_pool(actors: int, batch_size: int, retries: int) -> None:
    if actors < 1 or batch_size < 1:
        raise EmbedclfError(f"the actor pool needs at least 1 actor and 1 text per batch "
                            f"(not {actors} and {batch_size})")
    if retries < 0:
        raise EmbedclfError("retries must be 0 or more")


def check_fits(address: str | None, actors: int, cpus_per_actor: float, gpus_per_actor: float) -> None:
    """On a local instance (no autoscaler to add machines), a pool that cannot start would wait forever."""
    import ray

    if address is not None:
        return
    have = ray.cluster_resources()
    for name, each in (("CPU", cpus_per_actor), ("GPU", gpus_per_actor)):
        if each and actors * each > have.get(name, 0):
            raise EmbedclfError(f"{actors} actors x {each:g} {name} need {actors * each:g} {name}s; this machine's Ray "
                                f"instance has {have.get(name, 0):g}: lower --actors"
                                + (" or --gpus-per-actor" if name == "GPU" else ""))


# -- the output ----------------------------------------------------------------------------------------
def shard_files(out_dir) -> list[Path]:
    return sorted(Path(out_dir).glob("*.parquet"))


def write_parquet(dataset, out: Path) -> None:
    """Parquet shards of at least IMPORT_CHUNK rows (``num_rows_per_file`` before Ray 2.41 named it so)."""
    import inspect

    name = "min_rows_per_file" if "min_rows_per_file" in inspect.signature(dataset.write_parquet).parameters \
        else "num_rows_per_file"
    run_action(lambda: dataset.write_parquet(str(out), **{name: IMPORT_CHUNK}))
