"""Reading tables: formats, joined text columns, label parsing, task inference, skipped rows, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

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


def test_data_options_are_frozen_tuples_that_survive_a_model_manifest(tmp_path):
    options = DataOptions(["title", "body"], ["topics"], columns=None, label_sep="|",
                          label_names=[tmp_path / "names.txt"])
    assert options.text_cols == ("title", "body") and options.label_cols == ("topics",)
    assert options.label_names == (str(tmp_path / "names.txt"),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.task = "multilabel"
    stored = json.loads(json.dumps(dataclasses.asdict(options)))  # what model.json holds: lists
    assert stored["text_cols"] == ["title", "body"] and DataOptions(**stored) == options
    changed = dataclasses.replace(options, text_cols=["body"], columns=["body", "topics"])
    assert changed.text_cols == ("body",) and changed.columns == ("body", "topics")
    assert DataOptions(columns=[]).columns is None and DataOptions("body").text_cols == ("body",)


@pytest.mark.parametrize("folder", ["model-v0.1.0", "mlp-v0.1.0"])
def test_data_options_of_a_0_1_0_model_folder_load(folder):
    manifest = json.loads((Path(__file__).parent / "data" / folder / "model.json").read_text())
    options = DataOptions(**manifest["data"])
    assert options.text_cols == ("subject", "body") and options.label_sep == "|"


@pytest.mark.parametrize("kwargs, message", [
    (dict(text_cols=[]), r"^give at least one --text-col$"),
    (dict(task="binary"), r"^unknown --task 'binary'; expected one of multiclass, multilabel, multioutput$"),
    (dict(label_cols=["y"], task="multioutput"), r"^--task multioutput needs two or more --label-col$"),
    (dict(label_cols=["y", "z"], task="multilabel"), r"^--task multilabel takes one --label-col; 2 were given$"),
    (dict(label_cols=["y", "z"], task="multiclass"), r"^--task multiclass takes one --label-col; 2 were given$"),
    (dict(label_cols=["y"], label_names=["a.txt", "b.txt"]), r"^2 --label-names files for 1 --label-col columns$"),
    (dict(label_names=["a.txt"]), r"^1 --label-names files for 0 --label-col columns$"),
    (dict(text_cols=["text", ""]), r"^--text-col: every value must be a non-empty name"),
    (dict(columns=["a", "b", "a"]), r"^--columns names 'a' twice$"),
    (dict(label_sep=1), r"^--label-sep must be a string, got 1$"),
    (dict(strict="yes"), r"^--strict is true or false, got 'yes'$"),
])
def test_data_options_are_checked_once_in_one_line(kwargs, message):
    with pytest.raises(EmbedclfError, match=message):
        DataOptions(**kwargs)
    with pytest.raises(EmbedclfError, match=message):
        dataclasses.replace(DataOptions(), **kwargs)


def test_data_options_refuse_before_reading_and_require_labels(tmp_path):
    with pytest.raises(EmbedclfError, match="give at least one --text-col"):
        load_dataset(tmp_path / "absent.csv", text_cols=[])
    (tmp_path / "d.csv").write_text("text,y\na,b\n")
    with pytest.raises(EmbedclfError, match="this command needs labels: give --label-col"):
        DataOptions().load(tmp_path / "d.csv", require_labels=True)
    options = DataOptions(label_cols=["y"], task="multilabel")
    assert options.load(tmp_path / "d.csv", labels=False).task is None
    assert options.load(tmp_path / "d.csv").task == "multilabel"


def test_label_ids_must_be_in_range(tmp_path):
    (tmp_path / "names.txt").write_text("zero\none\n")
    (tmp_path / "d.csv").write_text("text,y\na,1\nb,-1\n")
    with pytest.raises(EmbedclfError, match=r"row 2: column 'y': label '-1' is not an id between 0 and 1"):
        load_dataset(tmp_path / "d.csv", label_cols=["y"], label_names=[tmp_path / "names.txt"])


def test_empty_cells_of_every_kind_are_empty(tmp_path):
    frame = pd.DataFrame({"text": pd.array(["a", None, "c"], dtype="string"),
                          "y": pd.array([1, 2, None], dtype="Int64")})
    frame.to_parquet(tmp_path / "d.parquet")
    ds = load_dataset(tmp_path / "d.parquet", label_cols=["y"])
    assert ds.texts == ["a"] and ds.skipped_empty == 1 and ds.skipped_unlabelled == 1
    assert ds.targets[0].labels == [["1"]]


def test_a_json_array_file_and_a_compressed_one(tmp_path):
    import gzip

    records = [{"text": "one", "y": "a"}, {"text": "two", "y": "b"}]
    (tmp_path / "d.json").write_text(json.dumps(records, indent=1))
    with gzip.open(tmp_path / "d.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(records, handle, indent=1)
    for name in ("d.json", "d.json.gz"):
        assert load_dataset(tmp_path / name, label_cols=["y"]).texts == ["one", "two"], name
    (tmp_path / "numbers.json").write_text("[1,\n 2]")
    with pytest.raises(EmbedclfError, match="expected JSON lines or a JSON array of objects"):
        load_dataset(tmp_path / "numbers.json")
    (tmp_path / "broken.json").write_text('[{"text": "x"},\n')
    with pytest.raises(EmbedclfError, match="invalid JSON array"):
        load_dataset(tmp_path / "broken.json")
