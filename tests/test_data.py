"""Reading tables: formats, joined text columns, label parsing, task inference, skipped rows, errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from embedclf.data import DataOptions, load_dataset
from embedclf.errors import EmbedclfError
from tests.conftest import shared_file


def test_goemotions_headerless_tsv_with_label_ids():
    path = shared_file("goemotions", "dev.tsv")
    names = shared_file("goemotions", "labels.txt")
    ds = load_dataset(path, ["text"], ["labels"], columns=["text", "labels", "id"], label_sep=",",
                      label_names=[names])
    assert len(ds.texts) == ds.n_rows == 5426 and ds.task == "multilabel"
    assert ds.texts[0] == "Is this in New Orleans?? I really feel like this is New Orleans."
    assert ds.targets[0].labels[0] == ["neutral"] and ds.targets[0].labels[1] == ["approval", "neutral"]


def test_reuters_json_lines_multi_output_with_list_cells():
    path = shared_file("reuters21578", "test.jsonl")
    ds = load_dataset(path, ["title", "text"], ["labels", "places"])
    assert ds.task == "multioutput" and [t.kind for t in ds.targets] == ["multilabel", "multilabel"]
    assert len(ds.texts) == 3019
    assert ds.targets[0].labels[0] == ["trade"]


def test_cfpb_multi_output_skips_rows_without_narrative():
    path = shared_file("cfpb-complaints", "complaints.csv")
    ds = load_dataset(path, ["Consumer complaint narrative"], ["Product", "Issue"])
    assert ds.task == "multioutput" and [t.kind for t in ds.targets] == ["multiclass", "multiclass"]
    assert len(ds.texts) == 1532 and ds.skipped_empty == 6623 - 1532
    assert "skipped (empty text)" in ds.summary()
    with pytest.raises(EmbedclfError, match=r"row \d+: empty text"):
        load_dataset(path, ["Consumer complaint narrative"], ["Product"], strict=True)


def test_formats_agree(tmp_path):
    frame = pd.DataFrame({"title": ["Good", "Bad", ""], "body": ["movie", "film", "plot"], "y": ["pos", "neg", "neg"]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.tsv", "d.jsonl", "d.parquet"):
        ds = load_dataset(tmp_path / name, ["title", "body"], ["y"])
        assert ds.texts == ["Good\nmovie", "Bad\nfilm", "plot"], name
        assert ds.task == "multiclass" and [t for t, in ds.targets[0].labels] == ["pos", "neg", "neg"]


def test_task_can_be_forced_and_multiclass_rejects_several_labels(tmp_path):
    (tmp_path / "d.csv").write_text("text,y\nfirst,a|b\nsecond,b\n")
    assert load_dataset(tmp_path / "d.csv", label_cols=["y"], label_sep="|").task == "multilabel"
    with pytest.raises(EmbedclfError, match="row 1: column 'y' holds 2 labels"):
        load_dataset(tmp_path / "d.csv", label_cols=["y"], label_sep="|", task="multiclass")


def test_missing_multiclass_label_is_skipped_and_counted(tmp_path):
    (tmp_path / "d.csv").write_text("text,y\nfirst,a\nsecond,\nthird,b\n")
    ds = load_dataset(tmp_path / "d.csv", label_cols=["y"])
    assert ds.texts == ["first", "third"] and ds.skipped_unlabelled == 1


@pytest.mark.parametrize("content, kwargs, message", [
    ("text,y\na,b\n", dict(text_cols=["body"]), r"no column 'body' \(columns: text, y\)"),
    ("text,y\na,b\n", dict(label_cols=["label"]), "no column 'label'"),
    ("text,y\na,7\n", dict(label_cols=["y"], label_names=["NAMES"]), r"row 1: column 'y': label '7' is not an id"),
])
def test_bad_input_names_file_column_and_row(tmp_path, content, kwargs, message):
    (tmp_path / "d.csv").write_text(content)
    (tmp_path / "names.txt").write_text("zero\none\n")
    if "label_names" in kwargs:
        kwargs["label_names"] = [tmp_path / "names.txt"]
    with pytest.raises(EmbedclfError, match=message):
        load_dataset(tmp_path / "d.csv", **kwargs)


def test_bad_encoding_and_bad_json_report_the_line(tmp_path):
    (tmp_path / "latin1.csv").write_bytes("text\nfine\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(EmbedclfError, match=r"latin1.csv: not valid UTF-8 \(line 3, byte 13\)"):
        load_dataset(tmp_path / "latin1.csv")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"text": "ok"}) + "\n{broken\n")
    with pytest.raises(EmbedclfError, match="bad.jsonl: line 2: invalid JSON"):
        load_dataset(tmp_path / "bad.jsonl")
    with pytest.raises(EmbedclfError, match="no such file"):
        load_dataset(tmp_path / "absent.csv")
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    with pytest.raises(EmbedclfError, match="unknown file type"):
        load_dataset(tmp_path / "data.xlsx")


def test_data_options_reads_texts_only_when_asked():
    path = shared_file("goemotions", "dev.tsv")
    options = DataOptions(["text"], ["labels"], columns=["text", "labels", "id"], label_sep=",")
    assert options.load(path, labels=False).targets == []
