"""Whatever a data file holds, reading it either works or fails with one EmbedclfError, never anything else.

Random bytes, random CSV/TSV-ish text and random tables written as .csv/.tsv/.jsonl/.json/.parquet
(plus a gzip) are read with random column choices and options. A read that works must also hold
together: one text per kept row, one label list per text per target, counts that add up.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from embedclf.data import DataOptions, Dataset, load_dataset
from embedclf.errors import EmbedclfError

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["text", "title", "y", "labels", "a b", "é", "0", "x,y", '"q"']
SUFFIXES = [".csv", ".tsv", ".jsonl", ".json", ".parquet", ".csv.gz", ".jsonl.gz"]

names = st.sampled_from(NAMES)
cells = st.one_of(st.none(), st.text(max_size=12), st.integers(-3, 12), st.floats(allow_nan=True),
                  st.booleans(), st.lists(st.one_of(st.none(), st.text(max_size=6), st.integers(0, 5)), max_size=3))
any_options = st.fixed_dictionaries({
    "text_cols": st.lists(names, min_size=0, max_size=2),
    "label_cols": st.lists(names, max_size=2),
    "columns": st.one_of(st.none(), st.lists(names, max_size=4)),
    "label_sep": st.sampled_from([None, "|", ",", " "]),
    "task": st.sampled_from([None, "multiclass", "multilabel", "multioutput", "binary"]),
    "strict": st.booleans(),
})


def draw_options(data, folder, available: list[str], headerless: bool = False) -> dict:
    """Options that pass DataOptions' checks, mostly naming columns the file has: the reader itself is tested."""
    pool = st.sampled_from(available * 4 + ["missing"]) if available else st.just("text")
    label_cols = data.draw(st.lists(pool, max_size=2, unique=True))
    tasks = [None] + (["multiclass", "multilabel"] if len(label_cols) == 1 else []) + \
        (["multioutput"] if len(label_cols) > 1 else [])
    n_names = data.draw(st.integers(0, len(label_cols)))
    names_file = st.integers(0, 4).map(lambda n: "".join(f"name{i}\n" for i in range(n)).encode())
    (folder / "names.txt").write_bytes(data.draw(st.one_of(names_file, st.binary(max_size=12))))
    return {"text_cols": data.draw(st.lists(pool, min_size=1, max_size=2)), "label_cols": label_cols,
            "columns": available if headerless and available else None,
            "label_sep": data.draw(st.sampled_from([None, "|", ",", " "])), "task": data.draw(st.sampled_from(tasks)),
            "label_names": [folder / "names.txt"] * n_names, "strict": data.draw(st.booleans()),
            "require_labels": bool(label_cols) and data.draw(st.booleans())}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


def read(path, kwargs) -> Dataset | None:
    """``load_dataset`` that must work or raise EmbedclfError; a dataset that comes back is checked."""
    try:
        dataset = load_dataset(path, **kwargs)
    except EmbedclfError as exc:
        assert str(exc) and "\n" not in str(exc).strip("\n"), repr(str(exc))
        return None
    assert len(dataset.texts) == len(dataset.rows) and all(dataset.texts)
    assert dataset.n_rows == len(dataset.texts) + dataset.skipped_empty + dataset.skipped_unlabelled
    assert list(dataset.rows) == sorted(set(dataset.rows)) and all(0 <= r < dataset.n_rows for r in dataset.rows)
    assert [t.name for t in dataset.targets] == list(kwargs.get("label_cols", ()))
    for target in dataset.targets:
        assert len(target.labels) == len(dataset.texts)
        assert all(isinstance(label, str) and label for row in target.labels for label in row)
        if target.kind == "multiclass":
            assert all(len(row) == 1 for row in target.labels)
    return dataset


def write_bytes(path, data: bytes) -> None:
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


@SETTINGS
@given(content=st.binary(max_size=300), suffix=st.sampled_from(SUFFIXES), data=st.data())
def test_random_bytes(folder, content, suffix, data):
    path = folder / f"bytes{suffix}"
    write_bytes(path, content)
    read(path, draw_options(data, folder, NAMES[:4], headerless=data.draw(st.booleans())))


@SETTINGS
@given(rows=st.lists(st.lists(st.text(alphabet='ab|,\t"\\\n\r {}[]:é0', max_size=6), min_size=1, max_size=4),
                     max_size=6),
       header=st.lists(names, min_size=1, max_size=4, unique=True), sep=st.sampled_from([",", "\t"]),
       suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]), data=st.data())
def test_random_delimited_text(folder, rows, header, sep, suffix, data):
    headerless = data.draw(st.booleans())
    text = "\n".join(sep.join(row) for row in ([] if headerless else [header]) + rows)
    path = folder / f"text{suffix}"
    path.write_text(text, encoding="utf-8")
    read(path, draw_options(data, folder, header, headerless))


@SETTINGS
@given(columns=st.lists(names, min_size=1, max_size=4, unique=True), n_rows=st.integers(0, 6),
       suffix=st.sampled_from(SUFFIXES), data=st.data())
def test_random_tables(folder, columns, n_rows, suffix, data):
    records = [{c: data.draw(cells) for c in columns} for _ in range(n_rows)]
    path = folder / f"table{suffix}"
    try:
        frame = pd.DataFrame.from_records(records, columns=columns)
        if suffix.startswith(".csv"):
            frame.to_csv(path, index=False)
        elif suffix == ".tsv":
            frame.to_csv(path, sep="\t", index=False)
        elif suffix == ".parquet":
            frame.to_parquet(path)
        elif suffix == ".json":
            path.write_text(json.dumps(records, indent=1, default=str), encoding="utf-8")
        else:
            lines = "".join(json.dumps(r, default=str) + "\n" for r in records).encode("utf-8")
            write_bytes(path, lines)
    except (ValueError, TypeError, OverflowError, ImportError):  # pandas/pyarrow cannot write these cells
        hypothesis.reject()
    read(path, draw_options(data, folder, columns))


@SETTINGS
@given(kwargs=any_options, n_names=st.integers(0, 3))
def test_options_fail_only_as_embedclf_errors(folder, kwargs, n_names):
    kwargs = dict(kwargs, label_names=[folder / "missing-names.txt"] * n_names)
    try:
        options = DataOptions(**kwargs)
    except EmbedclfError:
        return
    assert isinstance(options.text_cols, tuple) and options.text_cols
    assert DataOptions(**json.loads(json.dumps(dict(vars(options))))) == options


def test_label_ids_out_of_range_in_every_format(folder):
    (folder / "names.txt").write_text("zero\none\n")
    frame = pd.DataFrame({"text": ["a", "b"], "y": np.array([1, 5])})
    frame.to_parquet(folder / "ids.parquet")
    with pytest.raises(EmbedclfError, match="label '5' is not an id between 0 and 1"):
        load_dataset(folder / "ids.parquet", label_cols=["y"], label_names=[folder / "names.txt"])
