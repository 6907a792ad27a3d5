"""Label cells that are not labels: the literal "NaN", "None", "null", ... read as missing (unless kept), and
--label-names that never occur in the training data said, not silently dropped."""

from __future__ import annotations

import dataclasses
import json

import pytest

from embedclf.data import MISSING_LABELS, DataOptions, load_dataset
from embedclf.errors import EmbedclfError

MISSING = ["NaN", "nan", "None", "null", "NA", "N/A"]


def test_default_missing_labels():
    assert MISSING_LABELS == ("NaN", "nan", "None", "null", "NA", "N/A", "")
    assert DataOptions().missing_labels == MISSING_LABELS


@pytest.mark.parametrize("value", MISSING)
def test_a_literal_missing_value_is_no_class_and_its_row_is_skipped(tmp_path, value):
    (tmp_path / "d.csv").write_text(f"text,y\nfirst,a\nsecond,{value}\nthird,b\nfourth,\n")
    ds = load_dataset(tmp_path / "d.csv", label_cols=["y"])
    assert ds.texts == ["first", "third"] and ds.rows.tolist() == [0, 2]
    assert ds.skipped_unlabelled == 2 and ds.labels_read_as_missing == {value: 1}
    assert "2 skipped (no label); 1 labels read as missing (--keep-na-labels keeps them as classes): " + repr(value) in ds.summary()
    assert {x for row in ds.targets[0].labels for x in row} == {"a", "b"}


def test_missing_values_are_counted_per_value_in_json_lines_too(tmp_path):
    rows = [{"text": "t1", "y": "a"}, {"text": "t2", "y": "NaN"}, {"text": "t3", "y": "NaN"},
            {"text": "t4", "y": "None"}, {"text": "t5", "y": None}, {"text": "t6", "y": "b"},
            {"text": "", "y": "NaN"}]  # an empty text is skipped as such; its label is not counted
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = load_dataset(tmp_path / "d.jsonl", label_cols=["y"])
    assert ds.texts == ["t1", "t6"] and ds.skipped_unlabelled == 4 and ds.skipped_empty == 1
    assert ds.labels_read_as_missing == {"NaN": 2, "None": 1}
    assert "4 skipped (no label); 3 labels read as missing (--keep-na-labels keeps them as classes): 'NaN' (2), 'None' (1)" in ds.summary()


def test_missing_values_inside_a_label_set_are_dropped_from_the_set(tmp_path):
    (tmp_path / "d.csv").write_text("text,tags\nfirst,a|NaN\nsecond,null\nthird,b\n")
    ds = load_dataset(tmp_path / "d.csv", label_cols=["tags"], label_sep="|")
    assert ds.task == "multilabel" and ds.texts == ["first", "second", "third"]
    assert ds.targets[0].labels == [["a"], [], ["b"]]
    assert ds.labels_read_as_missing == {"NaN": 1, "null": 1}


def test_missing_labels_can_be_kept_as_classes(tmp_path):
    (tmp_path / "d.csv").write_text("text,y\nfirst,a\nsecond,NaN\nthird,None\n")
    ds = DataOptions(label_cols=["y"], missing_labels=()).load(tmp_path / "d.csv")
    assert [row for row in ds.targets[0].labels] == [["a"], ["NaN"], ["None"]]
    assert ds.skipped_unlabelled == 0 and "read as missing" not in ds.summary()
    only_null = load_dataset(tmp_path / "d.csv", label_cols=["y"], missing_labels=["None"])
    assert only_null.targets[0].labels == [["a"], ["NaN"]]


def test_strict_refuses_a_row_whose_label_reads_as_missing(tmp_path):
    (tmp_path / "d.csv").write_text("text,y\nfirst,a\nsecond,N/A\n")
    with pytest.raises(EmbedclfError, match=r"row 2: no label \(--strict\)"):
        load_dataset(tmp_path / "d.csv", label_cols=["y"], strict=True)


def test_missing_labels_survive_a_manifest_and_old_manifests_get_the_default():
    options = DataOptions(label_cols=["y"], missing_labels=["?"])
    stored = json.loads(json.dumps(dataclasses.asdict(options)))
    assert stored["missing_labels"] == ["?"] and DataOptions(**stored) == options
    del stored["missing_labels"]  # a model folder written before the field
    assert DataOptions(**stored).missing_labels == MISSING_LABELS
    with pytest.raises(EmbedclfError, match="missing labels must be strings"):
        DataOptions(missing_labels=[None])


def test_label_ids_read_as_missing_before_mapping_names(tmp_path):
    (tmp_path / "names.txt").write_text("neg\npos\n")
    (tmp_path / "d.csv").write_text("text,y\nfirst,0\nsecond,NaN\nthird,1\n")
    ds = load_dataset(tmp_path / "d.csv", label_cols=["y"], label_names=[tmp_path / "names.txt"])
    assert ds.targets[0].labels == [["neg"], ["pos"]] and ds.labels_read_as_missing == {"NaN": 1}


# --- --label-names absent from the training split ------------------------------------------------

def test_absent_label_names_are_listed(tmp_path):
    names = ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"]
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "d.csv").write_text("text,y\nfirst,0\nsecond,3\n")
    ds = load_dataset(tmp_path / "d.csv", label_cols=["y"], label_names=[tmp_path / "names.txt"])
    assert ds.absent_label_names() == {"y": ["n1", "n2", "n4", "n5", "n6", "n7"]}
    (line,) = ds.absent_label_names_lines()
    assert line == (f"{tmp_path / 'd.csv'}: 6 of 8 --label-names of 'y' never occur here and are left out of the "
                    "model: 'n1', 'n2', 'n4', 'n5', 'n6' and 1 more")
    assert load_dataset(tmp_path / "d.csv", label_cols=["y"]).absent_label_names_lines() == []


def test_finetune_says_which_label_names_train_lacks(tmp_path, monkeypatch):
    import embedclf.finetune.run as run
    from embedclf.finetune import FineTuneSettings, finetune

    (tmp_path / "names.txt").write_text("neg\npos\nmixed\n")
    (tmp_path / "d.csv").write_text("text,y\n" + "".join(f"text {i},{i % 2}\n" for i in range(8)))
    train = load_dataset(tmp_path / "d.csv", label_cols=["y"], label_names=[tmp_path / "names.txt"])

    class Stop(Exception):
        pass

    def no_training(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(run, "FineTuner", no_training)
    said = []
    with pytest.raises(Stop):
        finetune(train, FineTuneSettings(model="unused", device="cpu"), tmp_path / "m", say=said.append)
    assert f"{tmp_path / 'd.csv'}: 1 of 3 --label-names of 'y' never occur here and are left out of the model: " \
           "'mixed'" in said


def test_keep_na_labels_on_the_command_line_keeps_them_as_classes(tmp_path):
    """`--keep-na-labels`: "None" is a real label here ("no topic" as a category), so it takes part in rules."""
    import subprocess
    import sys

    rows = ["politics|None"] * 6 + ["sport"] * 4
    (tmp_path / "d.csv").write_text("text,tags\n" + "".join(f"text {i},{tags}\n" for i, tags in enumerate(rows)))

    def cooccur(*extra):
        done = subprocess.run([sys.executable, "-m", "embedclf", "cooccur", tmp_path / "d.csv", "--label-col", "tags",
                               "--label-sep", "|", "--min-support", "2", "--out", tmp_path / "r.json", *extra],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stderr, json.loads((tmp_path / "r.json").read_text())

    said, rules = cooccur()
    assert "6 labels read as missing (--keep-na-labels keeps them as classes): 'None'" in said
    assert [r["consequent"] for r in rules["rules"]] == []
    said, rules = cooccur("--keep-na-labels")
    assert "read as missing" not in said
    assert {(r["antecedent"], r["consequent"]) for r in rules["rules"]} == {("politics", "None"), ("None", "politics")}
