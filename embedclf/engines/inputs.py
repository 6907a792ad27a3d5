"""What both engines read: the data files (one file, or a directory of them) and the embedding cache.

A directory of data files is read file by file, in sorted order, and its rows are counted across
the files; each file is read by ``DataOptions.load``, the one reader of embedclf, whichever engine
runs (the Ray engine calls it inside its read tasks).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from embedclf.data import DataOptions, Dataset, Target
from embedclf.errors import EmbedclfError
from embedclf.labels import MULTICLASS, MULTILABEL


def list_inputs(path: str | Path) -> list[Path]:
    """The data files of ``path``: the file itself, or a directory's files (hidden and ``_*`` left out), sorted."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts))
        if not files:
            raise EmbedclfError(f"{path}: no data files in this directory")
        return files
    if not path.exists():
        raise EmbedclfError(f"{path}: no such file or directory")
    return [path]


def read_inputs(path: str | Path, options: DataOptions, *, labels: bool = True) -> Dataset:
    """Read a file, or a directory's files as one data set (rows numbered across them)."""
    files = list_inputs(path)
    if files == [Path(path)]:
        return options.load(path, labels=labels)
    parts = [options.load(f, labels=labels) for f in files]
    first = np.cumsum([0] + [p.n_rows for p in parts[:-1]])
    targets = [Target(ts[0].name, MULTILABEL if any(t.kind == MULTILABEL for t in ts) else MULTICLASS,
                      [row for t in ts for row in t.labels], ts[0].names_order)
               for ts in zip(*(p.targets for p in parts))]
    return Dataset(str(path), [t for p in parts for t in p.texts],
                   np.concatenate([p.rows + f for p, f in zip(parts, first)]), targets,
                   n_rows=sum(p.n_rows for p in parts), skipped_empty=sum(p.skipped_empty for p in parts),
                   skipped_unlabelled=sum(p.skipped_unlabelled for p in parts),
                   labels_read_as_missing=dict(sum((Counter(p.labels_read_as_missing) for p in parts), Counter())),
                   **_joined_ids(parts))


def _joined_ids(parts: list[Dataset]) -> dict:
    """The files' id columns as one, when every file has the same one."""
    names = {p.id_col for p in parts}
    if len(names) != 1 or None in names:
        return {}
    return dict(id_col=names.pop(), row_ids=[value for p in parts for value in p.row_ids])


def open_cache(cache):
    """The embedding cache: None for ``$EMBEDCLF_CACHE`` or ``./cache``, a directory, or False for none."""
    from embedclf.encode.cache import EmbeddingCache

    if cache is False:
        return None
    return cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(None if cache in (None, True) else cache)
