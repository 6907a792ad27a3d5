"""Labelled text data sets: which columns hold the text and the labels, and how a table becomes a Dataset.

Everything a command needs from an input file goes through :class:`DataOptions` (or
:func:`load_dataset`, its keyword form): the texts (one or several columns joined), the labels
of each target, and counts of what was skipped. Reading the file itself is :mod:`embedclf.tables`.
Errors name the file, the column and the row, and are raised as ``EmbedclfError``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from embedclf.cells import LIST_CELLS, join_texts, map_ids, parse_labels, read_label_names
from embedclf.errors import EmbedclfError
from embedclf.labels import MULTICLASS, MULTILABEL, MULTIOUTPUT, TASK_KINDS
from embedclf.tables import detect_format, json_records, read_table

# Label cells that mean "no label" (what pandas or a database export writes for an empty cell), not a class.
MISSING_LABELS = ("NaN", "nan", "None", "null", "NA", "N/A", "")

__all__ = ["DataOptions", "Dataset", "MISSING_LABELS", "Target", "detect_format", "join_texts", "json_records",
           "load_dataset", "read_label_names", "read_table"]

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
    labels_read_as_missing: dict[str, int] = field(default_factory=dict)  # literal label -> count, rows with text
    id_col: str | None = None  # the column that identifies rows, carried into the outputs; None without one
    row_ids: list | dict | None = None  # its value by row number, for every row of the file (kept or skipped)

    def ids(self) -> list | None:
        """The id of each kept text (aligned with ``texts``), or None without an id column."""
        return None if self.row_ids is None else [self.row_ids[i] for i in self.rows]

    @property
    def task(self) -> str | None:
        if not self.targets:
            return None
        if len(self.targets) > 1:
            return MULTIOUTPUT
        return self.targets[0].kind

    def require_texts(self) -> "Dataset":
        """This data set, or a one-line error when it holds no text to work on (a header only, all empty)."""
        if not self.texts:
            why = "no rows" if not self.n_rows else f"{self.n_rows:,} rows, none with text and labels to use"
            raise EmbedclfError(f"{self.path}: nothing to work on ({why})")
        return self

    def absent_label_names(self) -> dict[str, list[str]]:
        """Per target read with --label-names, the names (in file order) that label no row here."""
        absent = {}
        for target in self.targets:
            if target.names_order is not None:
                seen = {label for row in target.labels for label in row}
                missing_names = [name for name in target.names_order if name not in seen]
                if missing_names:
                    absent[target.name] = missing_names
        return absent

    def absent_label_names_lines(self, shown: int = 5) -> list[str]:
        """One line per target whose --label-names lists names this data set never uses (a model fitted on
        it has no class for them)."""
        lines, absent = [], self.absent_label_names()
        for target in self.targets:
            names = absent.get(target.name)
            if names:
                more = f" and {len(names) - shown} more" if len(names) > shown else ""
                lines.append(f"{self.path}: {len(names)} of {len(target.names_order)} --label-names of "
                             f"{target.name!r} never occur here and are left out of the model: "
                             f"{', '.join(repr(n) for n in names[:shown])}{more}")
        return lines

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
        if self.labels_read_as_missing:
            parts.append(read_as_missing_part(self.labels_read_as_missing))
        if self.targets:
            parts.append(f"task {self.task} (" + ", ".join(
                f"{t.name}: {t.kind}, {len({x for row in t.labels for x in row})} labels" for t in self.targets) + ")")
        return "; ".join(parts)


def read_as_missing_part(counts: dict[str, int]) -> str:
    """The summary's words for label cells read as "no label": how many, and which literals."""
    ranked = Counter(counts).most_common()
    shown = ", ".join(repr(value) + (f" ({n:,})" if len(ranked) > 1 else "") for value, n in ranked)
    return f"{sum(n for _, n in ranked):,} labels read as missing (--keep-na-labels keeps them as classes): {shown}"


@dataclass(frozen=True)
class DataOptions:
    """How to read a file: the data options every command shares, stored with a fitted model.

    Lists are turned into tuples (a model folder's JSON holds lists) and ``label_names`` paths into
    strings; the options are checked once, here, so a bad combination fails before any file is read.
    """

    text_cols: tuple[str, ...] = ("text",)
    label_cols: tuple[str, ...] = ()
    columns: tuple[str, ...] | None = None  # names of a headerless CSV/TSV's columns
    label_sep: str | None = None
    label_names: tuple[str, ...] = ()  # one file of names per label column, for integer label ids
    task: str | None = None  # forces the task kind; None infers it
    strict: bool = False  # refuse rows with no text or no label instead of skipping them
    # label cells read as "no label" rather than as a class (exact match after stripping); () keeps them as classes
    missing_labels: tuple[str, ...] = MISSING_LABELS
    # the column carried into encode's Parquet and predict's table; None: a column named "id", if there is one
    id_col: str | None = None

    def __post_init__(self):
        for name in ("text_cols", "label_cols", "label_names", "missing_labels"):
            object.__setattr__(self, name, _names(getattr(self, name), name))
        if self.columns is not None:
            object.__setattr__(self, "columns", _names(self.columns, "columns") or None)
        _check_options(self)

    def load(self, path: str | Path, *, require_labels: bool = False, labels: bool = True) -> Dataset:
        """Read ``path``; ``labels=False`` reads texts only (for prediction on unlabelled data)."""
        options = self if labels else replace(self, label_cols=(), label_names=(), task=None)
        if require_labels and not options.label_cols:
            raise EmbedclfError("this command needs labels: give --label-col (repeat it for multi-output)")
        return _read_dataset(path, options)


def _names(value, field_name: str) -> tuple[str, ...]:
    """A sequence of names (or paths) as a tuple of strings; one string is one name."""
    if isinstance(value, (str, Path)):
        value = (value,)
    try:
        return tuple(str(item) if isinstance(item, Path) else item for item in value)
    except TypeError:
        raise EmbedclfError(f"DataOptions.{field_name}: expected a list of names, got {value!r}") from None


def _check_options(options: DataOptions) -> None:
    option = {"text_cols": "--text-col", "label_cols": "--label-col", "columns": "--columns",
              "label_names": "--label-names"}
    for name, flag in option.items():
        values = getattr(options, name) or ()
        if not all(isinstance(v, str) and v for v in values):
            raise EmbedclfError(f"{flag}: every value must be a non-empty name, got {list(values)!r}")
        if name == "columns" and len(set(values)) != len(values):
            raise EmbedclfError(f"--columns names {next(v for v in values if values.count(v) > 1)!r} twice")
    if not options.text_cols:
        raise EmbedclfError("give at least one --text-col")
    if options.id_col is not None and (not isinstance(options.id_col, str) or not options.id_col):
        raise EmbedclfError(f"--id-col must be a non-empty column name, got {options.id_col!r}")
    if options.id_col is not None and options.id_col in options.text_cols + options.label_cols:
        raise EmbedclfError(f"--id-col {options.id_col!r} is also a text or label column")
    if options.task is not None and options.task not in TASK_KINDS:
        raise EmbedclfError(f"unknown --task {options.task!r}; expected one of {', '.join(TASK_KINDS)}")
    n_labels = len(options.label_cols)
    if options.task == MULTIOUTPUT and n_labels < 2:
        raise EmbedclfError("--task multioutput needs two or more --label-col")
    if options.task in (MULTICLASS, MULTILABEL) and n_labels > 1:
        raise EmbedclfError(f"--task {options.task} takes one --label-col; {n_labels} were given")
    if len(options.label_names) > n_labels:
        raise EmbedclfError(f"{len(options.label_names)} --label-names files for {n_labels} --label-col columns")
    if options.label_sep is not None and not isinstance(options.label_sep, str):
        raise EmbedclfError(f"--label-sep must be a string, got {options.label_sep!r}")
    if not all(isinstance(v, str) for v in options.missing_labels):
        raise EmbedclfError(f"missing labels must be strings, got {list(options.missing_labels)!r}")
    if not isinstance(options.strict, bool):
        raise EmbedclfError(f"--strict is true or false, got {options.strict!r}")


def load_dataset(path: str | Path, text_cols: Sequence[str] = ("text",), label_cols: Sequence[str] = (),
                 *, columns: Sequence[str] | None = None, label_sep: str | None = None,
                 label_names: Sequence[str | Path] = (), task: str | None = None,
                 strict: bool = False, require_labels: bool = False,
                 missing_labels: Sequence[str] = MISSING_LABELS) -> Dataset:
    """Read ``path`` into a :class:`Dataset`.

    ``text_cols`` are joined with a newline (title + body). Each of ``label_cols`` is a target:
    a cell holds one label, several joined by ``label_sep``, or a JSON list. ``label_names`` (one
    file per target, in order) maps integer label ids to names. Rows whose text is empty are
    skipped and counted, or rejected when ``strict``. ``task`` forces the inferred task kind.
    A label equal to one of ``missing_labels`` ("NaN", "None", ...) is no label: a multi-class row
    without one is skipped as unlabelled; pass ``()`` to keep such values as classes.
    """
    options = DataOptions(text_cols, label_cols, columns=columns, label_sep=label_sep, label_names=label_names,
                          task=task, strict=strict, missing_labels=missing_labels)
    return options.load(path, require_labels=require_labels)


# -- the steps of reading a data set ---------------------------------------------------------------
def _read_dataset(path: str | Path, options: DataOptions) -> Dataset:
    frame = read_table(path, options.columns)
    _check_columns(frame, path, options)
    texts = join_texts([frame[c].tolist() for c in options.text_cols])
    has_text = np.array([bool(t) for t in texts], dtype=bool)
    if options.strict:
        _refuse_first(~has_text, path, f"empty text in column(s) {', '.join(options.text_cols)} (--strict)")
    read_as_missing: Counter = Counter()
    targets = []
    for index, column in enumerate(options.label_cols):
        target, dropped = _parse_target(frame[column].tolist(), column, index, options, path)
        targets.append(target)
        read_as_missing.update(value for row, value in dropped if has_text[row])
    for target in targets:
        _check_one_label(target, has_text, path)
    labelled = _labelled(targets, len(frame))
    if options.strict:
        _refuse_first(has_text & ~labelled, path, "no label (--strict)")
    rows = np.flatnonzero(has_text & labelled)
    for target in targets:
        target.labels = [target.labels[i] for i in rows]
    id_col = _id_column(frame, path, options)
    return Dataset(str(path), [texts[i] for i in rows], rows, targets, n_rows=len(frame),
                   skipped_empty=int((~has_text).sum()), skipped_unlabelled=int((has_text & ~labelled).sum()),
                   labels_read_as_missing=dict(read_as_missing), id_col=id_col,
                   row_ids=frame[id_col].tolist() if id_col else None)


def _id_column(frame, path, options: DataOptions) -> str | None:
    """--id-col, which must be there; without it a column named "id" that is neither text nor label."""
    if options.id_col is not None:
        if options.id_col not in frame.columns:
            raise EmbedclfError(f"{path}: no column {options.id_col!r} for --id-col")
        return options.id_col
    return "id" if "id" in frame.columns and "id" not in options.text_cols + options.label_cols else None


def _check_columns(frame, path: str | Path, options: DataOptions) -> None:
    for column in options.text_cols + options.label_cols:
        if column not in frame.columns:
            available = ", ".join(str(c) for c in list(frame.columns)[:20])
            headerless = options.columns is None and Path(path).suffix.lower() in (".tsv", ".csv")
            hint = "; headerless file? name its columns with --columns" if headerless else ""
            raise EmbedclfError(f"{path}: no column {column!r} (columns: {available}){hint}")
        if list(frame.columns).count(column) > 1:
            raise EmbedclfError(f"{path}: column {column!r} appears more than once")


def _refuse_first(bad: np.ndarray, path, problem: str) -> None:
    if bad.any():
        raise EmbedclfError(f"{path}: row {int(np.flatnonzero(bad)[0]) + 1}: {problem}")


def _parse_target(cells: list, column: str, index: int, options: DataOptions, path):
    """One label column as a :class:`Target` (its kind, each row's labels, ids mapped through --label-names),
    and the ``(row, value)`` of each label dropped as one of ``options.missing_labels``."""
    labels = [parse_labels(cell, options.label_sep) for cell in cells]
    dropped = []
    if options.missing_labels:
        missing_values = set(options.missing_labels)
        for row, row_labels in enumerate(labels):
            if any(label in missing_values for label in row_labels):
                dropped += [(row, label) for label in row_labels if label in missing_values]
                labels[row] = [label for label in row_labels if label not in missing_values]
    if options.task in (MULTICLASS, MULTILABEL):
        kind = options.task
    else:
        is_list = any(isinstance(cell, LIST_CELLS) for cell in cells[:1000])
        kind = MULTILABEL if (options.label_sep or is_list) else MULTICLASS
    names = None
    if index < len(options.label_names):
        names = read_label_names(options.label_names[index])
        labels = [map_ids(row_labels, names, path, column, row) for row, row_labels in enumerate(labels)]
    return Target(column, kind, labels, names), dropped


def _check_one_label(target: Target, has_text: np.ndarray, path) -> None:
    """A multi-class target's rows with text hold at most one label."""
    if target.kind != MULTICLASS:
        return
    for row in np.flatnonzero(has_text):
        if len(target.labels[row]) > 1:
            raise EmbedclfError(f"{path}: row {row + 1}: column {target.name!r} holds {len(target.labels[row])} "
                                "labels but the target is multi-class; pass --label-sep or --task multilabel")


def _labelled(targets: list[Target], n_rows: int) -> np.ndarray:
    """Rows every multi-class target has its one label for: without it a row cannot be learnt from or scored."""
    labelled = np.ones(n_rows, dtype=bool)
    for target in targets:
        if target.kind == MULTICLASS:
            labelled &= np.array([len(v) == 1 for v in target.labels], dtype=bool)
    return labelled
