"""Reading for the Ray engine: files → numbered (row, text) blocks in Ray's object store.

Each file is read by a Ray task with ``DataOptions.load``, the local engine's reader, so a text (and
so its cache key), a skipped row and an error message are the same whichever engine read the file.
Ray Data gives rows no position, so rows get a global id here: a file's row counts follow those of the
files before it (sorted order, as the local engine reads a directory). A retried batch therefore
carries the same ids, and the input order is restored by sorting on them. Numbered blocks hold one
actor batch each, so every actor of the pool gets work even from a single file.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from embedclf.data import DataOptions
from embedclf.engines.inputs import list_inputs
from embedclf.engines.ray.session import run_action


@dataclass
class NumberedTexts:
    dataset: object  # ray.data.Dataset of (row, text), in blocks of one batch; None without texts
    batch_size: int  # rows per block: at most the one asked for, fewer where the pool would otherwise idle
    rows: int
    texts: int
    skipped_empty: int
    skipped_unlabelled: int
    seconds: float
    labels_read_as_missing: dict[str, int]  # label cells read as "no label", over all files
    id_col: str | None  # the files' id column, when every file has the same one
    row_ids: list | None  # its value in every row


def numbered_texts(path, options: DataOptions, *, labels: bool = True, rows_per_block: int = 256,
                   actors: int = 1) -> NumberedTexts:
    """Read ``path`` (a file or a directory of files) on Ray workers and number its rows as the local
    engine does (``Dataset.rows``: 0-based, one count across the files); a small input is cut into at
    least one block per actor."""
    import ray

    start = time.perf_counter()
    files = [str(f.resolve()) for f in list_inputs(path)]  # the workers' working directory is not ours
    read = ray.remote(_read_file).options(num_returns=2)
    tables, stats = zip(*(read.remote(f, options, labels) for f in files))
    stats = run_action(lambda: ray.get(list(stats)))
    rows, texts, empty, unlabelled = (sum(column) for column in list(zip(*stats))[:4])
    missing = sum((Counter(s[4]) for s in stats), Counter())
    id_cols = {s[5] for s in stats}
    id_col = id_cols.pop() if len(id_cols) == 1 else None
    row_ids = [value for s in stats for value in s[6]] if id_col is not None else None
    rows_per_block = max(1, min(rows_per_block, -(-texts // actors)))
    blocks, first = [], 0
    for table, (file_rows, file_texts, *_) in zip(tables, stats):
        if file_texts:
            slices = -(-file_texts // rows_per_block)
            parts = ray.remote(_number).options(num_returns=slices).remote(table, first, rows_per_block)
            blocks += parts if slices > 1 else [parts]
        first += file_rows
    dataset = ray.data.from_arrow_refs(blocks) if blocks else None
    return NumberedTexts(dataset, rows_per_block, rows, texts, empty, unlabelled, time.perf_counter() - start,
                         dict(missing), id_col, row_ids)


def _read_file(path: str, options: DataOptions, labels: bool):
    """A file's kept texts with their rows in it, and its counts (rows, texts, skipped empty, skipped unlabelled),
    the labels it read as missing, and its id column with the ids of its rows."""
    import pyarrow as pa

    data = options.load(path, labels=labels)
    columns = {"row": pa.array(data.rows, pa.int64()), "text": pa.array(data.texts, pa.string())}
    if data.id_col is not None:  # as text: blocks of every file share one schema
        columns["id"] = pa.array([None if v is None else str(v) for v in data.ids()], pa.string())
    table = pa.table(columns)
    return table, (data.n_rows, len(data.texts), data.skipped_empty, data.skipped_unlabelled,
                   data.labels_read_as_missing, data.id_col, data.row_ids or [])


def _number(table, first_row: int, rows_per_block: int):
    """The table's rows moved on by ``first_row``, in slices of ``rows_per_block``."""
    import pyarrow.compute as pc

    table = table.set_column(0, "row", pc.add(table.column("row"), first_row))
    slices = [table.slice(start, rows_per_block) for start in range(0, table.num_rows, rows_per_block)]
    return slices if len(slices) > 1 else slices[0]
