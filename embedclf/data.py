"""Reading labelled text tables: CSV, TSV, JSON lines and Parquet, chosen by extension.

Everything a command needs from an input file goes through ``load_dataset``: the texts (one or
several columns joined), the labels of each target, and counts of what was skipped. Errors name
the file, the column and the row, and are raised as ``EmbedclfError``.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from embedclf.errors import EmbedclfError
from embedclf.labels import MULTICLASS, MULTILABEL, MULTIOUTPUT, TASK_KINDS

_COMPRESSIONS = {".gz", ".bz2", ".xz", ".zst", ".zip"}
_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".jsonl": "jsonl",
            ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


@dataclass
class Target:
    """One labelled column: its name, whether a row holds one label or a set, and the labels."""

    name: str
    kind: str  # MULTICLASS (one label per row) or MULTILABEL (a set per row)
    labels: list[list[str]]
    names_order: list[str] | None = None  # label order from --label-names, if given


@dataclass
class Dataset:
    """Texts and (optionally) their targets, with what was skipped on the way."""

    path: str
    texts: list[str]
    rows: np.ndarray  # 0-based row numbers in the file of the kept texts
    targets: list[Target] = field(default_factory=list)
    n_rows: int = 0
    skipped_empty: int = 0
    skipped_unlabelled: int = 0

    @property
    def task(self) -> str | None:
        if not self.targets:
            return None
        if len(self.targets) > 1:
            return MULTIOUTPUT
        return self.targets[0].kind

    def subset(self, index: Sequence[int]) -> "Dataset":
        index = np.asarray(index, dtype=int)
        targets = [Target(t.name, t.kind, [t.labels[i] for i in index], t.names_order) for t in self.targets]
        return Dataset(self.path, [self.texts[i] for i in index], self.rows[index], targets,
                       n_rows=len(index))

    def summary(self) -> str:
        parts = [f"read {self.n_rows:,} rows from {self.path}", f"{len(self.texts):,} texts"]
        if self.skipped_empty:
            parts.append(f"{self.skipped_empty:,} skipped (empty text)")
        if self.skipped_unlabelled:
            parts.append(f"{self.skipped_unlabelled:,} skipped (no label)")
        if self.targets:
            parts.append(f"task {self.task} (" + ", ".join(
                f"{t.name}: {t.kind}, {len({x for row in t.labels for x in row})} labels" for t in self.targets) + ")")
        return "; ".join(parts)


@dataclass
class DataOptions:
    """How to read a file: the data options every command shares, stored with a fitted model."""

    text_cols: list[str] = field(default_factory=lambda: ["text"])
    label_cols: list[str] = field(default_factory=list)
    columns: list[str] | None = None
    label_sep: str | None = None
    label_names: list[str] = field(default_factory=list)
    task: str | None = None
    strict: bool = False

    def load(self, path: str | Path, *, require_labels: bool = False, labels: bool = True) -> Dataset:
        """Read ``path``; ``labels=False`` reads texts only (for prediction on unlabelled data)."""
        return load_dataset(path, self.text_cols, self.label_cols if labels else (), columns=self.columns,
                            label_sep=self.label_sep, label_names=self.label_names if labels else (),
                            task=self.task if labels else None, strict=self.strict,
                            require_labels=require_labels)


def detect_format(path: str | Path) -> str:
    suffixes = [s.lower() for s in Path(path).suffixes]
    while suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes.pop()
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise EmbedclfError(f"{path}: unknown file type; expected one of "
                            + ", ".join(sorted(_FORMATS)) + " (optionally compressed)")
    return fmt


def read_table(path: str | Path, columns: Sequence[str] | None = None):
    """Read a table into a DataFrame; ``columns`` names the columns of a headerless CSV/TSV."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise EmbedclfError(f"{path}: no such file")
    if path.is_dir():
        raise EmbedclfError(f"{path}: is a directory, expected a data file")
    fmt = detect_format(path)
    try:
        if fmt in ("csv", "tsv"):
            options = dict(sep="," if fmt == "csv" else "\t", dtype=str, keep_default_na=False,
                           na_values=[], encoding="utf-8")
            if fmt == "tsv":
                options["quoting"] = csv.QUOTE_NONE  # TSV cells are raw text: quotes are content
            if columns:
                options.update(header=None, names=list(columns))
            frame = pd.read_csv(path, **options)
            if columns and len(frame.columns) != len(columns):
                raise EmbedclfError(f"{path}: --columns names {len(columns)} columns, the file has {len(frame.columns)}")
        elif fmt == "jsonl":
            frame = _read_json_lines(path)
        else:
            frame = pd.read_parquet(path)
            if columns:
                raise EmbedclfError(f"{path}: --columns is for headerless CSV/TSV files; Parquet names its columns")
    except UnicodeDecodeError:
        raise EmbedclfError(f"{path}: not valid UTF-8 ({_first_bad_utf8(path)})") from None
    except EmbedclfError:
        raise
    except Exception as exc:  # pandas/pyarrow parser errors carry the line number in their text
        message = " ".join(str(exc).split())
        raise EmbedclfError(f"{path}: cannot read as {fmt.upper()}: {message}") from None
    return frame


def _read_json_lines(path: Path):
    import pandas as pd

    with _open_text(path) as handle:
        records = json_records(handle, path)
    if records is None:  # a JSON array, not JSON lines
        return pd.DataFrame(json.loads(Path(path).read_text(encoding="utf-8")))
    return pd.DataFrame.from_records(records)


def json_records(lines: Iterable[str], path) -> list[dict] | None:
    """The objects of JSON lines, blank lines skipped; None when the first line opens a JSON array instead."""
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == 1 and line.lstrip().startswith("["):
                return None
            raise EmbedclfError(f"{path}: line {number}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise EmbedclfError(f"{path}: line {number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return records


def _open_text(path: Path):
    suffix = path.suffix.lower()
    if suffix == ".gz":
        import gzip
        return gzip.open(path, "rt", encoding="utf-8")
    if suffix == ".bz2":
        import bz2
        return bz2.open(path, "rt", encoding="utf-8")
    if suffix == ".xz":
        import lzma
        return lzma.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _first_bad_utf8(path: Path) -> str:
    """Locate the first byte that is not UTF-8, as 'line N, byte B'."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                newlines = chunk[:exc.start].count(b"\n")
                return f"line {line + newlines}, byte {offset + exc.start}"
            line += chunk.count(b"\n")
            offset += len(chunk)
    return "at end of file"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell_text(value) -> str:
    return "" if _missing(value) else str(value).strip()


def join_texts(columns: Sequence[Sequence]) -> list[str]:
    """One text per row: the row's non-empty cells of ``columns`` (title, body, ...), stripped and joined by a newline.

    An empty result means the row has no text. The local reader and the Ray engine both call this,
    so a text, and so its cache key, is the same whichever engine read it.
    """
    return ["\n".join(t for t in (_cell_text(v) for v in cells) if t) for cells in zip(*columns)]


def _parse_labels(value, sep: str | None) -> list[str]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if not _missing(v) and str(v).strip()]
    if _missing(value):
        return []
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text:
        return []
    if sep:
        return [part.strip() for part in text.split(sep) if part.strip()]
    return [text]


def read_label_names(path: str | Path) -> list[str]:
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise EmbedclfError(f"{path}: cannot read label names ({exc.strerror})") from None
    names = [n for n in names if n]
    if len(set(names)) != len(names):
        raise EmbedclfError(f"{path}: label names repeat")
    return names


def load_dataset(path: str | Path, text_cols: Sequence[str] = ("text",), label_cols: Sequence[str] = (),
                 *, columns: Sequence[str] | None = None, label_sep: str | None = None,
                 label_names: Sequence[str | Path] = (), task: str | None = None,
                 strict: bool = False, require_labels: bool = False) -> Dataset:
    """Read ``path`` into a :class:`Dataset`.

    ``text_cols`` are joined with a newline (title + body). Each of ``label_cols`` is a target:
    a cell holds one label, several joined by ``label_sep``, or a JSON list. ``label_names`` (one
    file per target, in order) maps integer label ids to names. Rows whose text is empty are
    skipped and counted, or rejected when ``strict``. ``task`` forces the inferred task kind.
    """
    text_cols, label_cols = list(text_cols), list(label_cols)
    if not text_cols:
        raise EmbedclfError("give at least one --text-col")
    if require_labels and not label_cols:
        raise EmbedclfError("this command needs labels: give --label-col (repeat it for multi-output)")
    if task is not None and task not in TASK_KINDS:
        raise EmbedclfError(f"unknown task {task!r}; expected one of {', '.join(TASK_KINDS)}")
    if task == MULTIOUTPUT and len(label_cols) < 2:
        raise EmbedclfError("a multi-output task needs two or more --label-col")
    if task in (MULTICLASS, MULTILABEL) and len(label_cols) > 1:
        raise EmbedclfError(f"--task {task} takes one --label-col; {len(label_cols)} were given")
    if len(label_names) > max(len(label_cols), 1):
        raise EmbedclfError("more --label-names files than --label-col columns")

    frame = read_table(path, columns)
    available = [str(c) for c in frame.columns]
    for column in text_cols + label_cols:
        if column not in frame.columns:
            hint = "; headerless file? name its columns with --columns" if columns is None and Path(path).suffix.lower() in (".tsv", ".csv") else ""
            raise EmbedclfError(f"{path}: no column {column!r} (columns: {', '.join(available[:20])}){hint}")

    joined = join_texts([frame[c].tolist() for c in text_cols])
    keep = np.array([bool(t) for t in joined], dtype=bool)
    if strict and not keep.all():
        row = int(np.flatnonzero(~keep)[0])
        raise EmbedclfError(f"{path}: row {row + 1}: empty text in column(s) {', '.join(text_cols)} (--strict)")

    targets = []
    for index, column in enumerate(label_cols):
        cells = frame[column].tolist()
        is_list = any(isinstance(v, (list, tuple, np.ndarray)) for v in cells[:1000])
        labels = [_parse_labels(v, label_sep) for v in cells]
        kind = MULTILABEL if (label_sep or is_list) else MULTICLASS
        if task == MULTICLASS:
            kind = MULTICLASS
        elif task == MULTILABEL:
            kind = MULTILABEL
        names = None
        if index < len(label_names):
            names = read_label_names(label_names[index])
            labels = [_map_ids(row_labels, names, path, column, row) for row, row_labels in enumerate(labels)]
        if kind == MULTICLASS:
            for row in np.flatnonzero(keep):
                if len(labels[row]) > 1:
                    raise EmbedclfError(f"{path}: row {row + 1}: column {column!r} holds {len(labels[row])} labels "
                                        f"but the target is multi-class; pass --label-sep or --task multilabel")
        targets.append(Target(column, kind, labels, names))

    skipped_unlabelled = 0
    if targets:
        # A multi-class target needs its one label; a row without it cannot be learned from or scored.
        labelled = np.ones(len(frame), dtype=bool)
        for target in targets:
            if target.kind == MULTICLASS:
                labelled &= np.array([len(v) == 1 for v in target.labels], dtype=bool)
        if strict and not (labelled | ~keep).all():
            row = int(np.flatnonzero(keep & ~labelled)[0])
            raise EmbedclfError(f"{path}: row {row + 1}: no label (--strict)")
        skipped_unlabelled = int((keep & ~labelled).sum())
        keep &= labelled

    rows = np.flatnonzero(keep)
    for target in targets:
        target.labels = [target.labels[i] for i in rows]
    return Dataset(str(path), [joined[i] for i in rows], rows, targets, n_rows=len(frame),
                   skipped_empty=int(sum(1 for t in joined if not t)), skipped_unlabelled=skipped_unlabelled)


def _map_ids(labels: list[str], names: list[str], path, column, row) -> list[str]:
    mapped = []
    for label in labels:
        try:
            mapped.append(names[int(label)])
        except (ValueError, IndexError):
            raise EmbedclfError(f"{path}: row {row + 1}: column {column!r}: label {label!r} is not an id "
                                f"between 0 and {len(names) - 1} of --label-names") from None
    return mapped
