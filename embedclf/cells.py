"""What a table cell means: text (several columns joined), labels (one, separated, or a list) and label ids.

The local reader and the Ray engine both turn cells into texts with :func:`join_texts`, so a text,
and so its cache key, is the same whichever engine read it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from embedclf.errors import EmbedclfError

LIST_CELLS = (list, tuple, np.ndarray)


def missing(value) -> bool:
    """An empty cell: None, NaN, or pandas' NA / NaT."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def cell_text(value) -> str:
    return "" if missing(value) else str(value).strip()


def join_texts(columns: Sequence[Sequence]) -> list[str]:
    """One text per row: the row's non-empty cells of ``columns`` (title, body, ...), stripped and joined by a newline.

    An empty result means the row has no text.
    """
    return ["\n".join(t for t in (cell_text(v) for v in cells) if t) for cells in zip(*columns)]


def parse_labels(value, sep: str | None) -> list[str]:
    if isinstance(value, LIST_CELLS):
        return [text for text in (cell_text(v) for v in value) if text]
    if isinstance(value, (float, np.floating)) and not math.isnan(value) and float(value).is_integer():
        value = int(value)  # a label id read as a float (a column with gaps)
    text = cell_text(value)
    if not text:
        return []
    if sep:
        return [part.strip() for part in text.split(sep) if part.strip()]
    return [text]


def read_label_names(path: str | Path) -> list[str]:
    """The label names of a --label-names file, one a line, blank lines skipped; line i names id i."""
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise EmbedclfError(f"{path}: cannot read label names ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise EmbedclfError(f"{path}: label names are not UTF-8 text") from None
    names = [n for n in names if n]
    if len(set(names)) != len(names):
        raise EmbedclfError(f"{path}: label names repeat")
    return names


def map_ids(labels: list[str], names: list[str], path, column, row) -> list[str]:
    mapped = []
    for label in labels:
        try:
            mapped.append(names[_label_id(label, len(names))])
        except ValueError:
            raise EmbedclfError(f"{path}: row {row + 1}: column {column!r}: label {label!r} is not an id "
                                f"between 0 and {len(names) - 1} of --label-names") from None
    return mapped


def _label_id(label: str, n_names: int) -> int:
    """``label`` as an index into ``n_names`` names; ValueError for anything else (a name, -1, too big)."""
    number = int(label)
    if not 0 <= number < n_names:
        raise ValueError(label)
    return number
