"""``embedclf cooccur`` on real Reuters labels, rules applied by predict/evaluate and stored with a model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.conftest import shared_file

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "embedclf", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def reuters_slices(tmp_path):
    lines = shared_file("reuters21578", "train.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(lines[:1500]) + "\n", encoding="utf-8")
    (tmp_path / "valid.jsonl").write_text("\n".join(lines[1500:1800]) + "\n", encoding="utf-8")
    return tmp_path / "train.jsonl", tmp_path / "valid.jsonl"


def test_rules_graph_and_before_after_evaluation(tiny_model, tmp_path):
    full_train = shared_file("reuters21578", "train.jsonl")
    learned = run("cooccur", full_train, "--text-col", "text", "--label-col", "labels", "--threshold", "0.9",
                  "--out", tmp_path / "rules.json", "--graph", tmp_path / "rules.png", "--graphml",
                  tmp_path / "rules.graphml")
    assert learned.returncode == 0, learned.stderr
    assert "corn -> grain" in learned.stderr and "wheat -> grain" in learned.stderr
    rules = json.loads((tmp_path / "rules.json").read_text())
    pairs = {(r["antecedent"], r["consequent"]) for r in rules["rules"]}
    assert {("corn", "grain"), ("wheat", "grain")} <= pairs
    assert (tmp_path / "rules.png").stat().st_size > 10_000 and (tmp_path / "rules.graphml").exists()

    train, valid = reuters_slices(tmp_path)
    common = ["--model", tiny_model, "--cache", tmp_path / "cache", "--device", "cpu"]
    assert run("fit", train, "--text-col", "text", "--label-col", "labels", "--out", tmp_path / "m",
               *common).returncode == 0
    evaluated = run("evaluate", tmp_path / "m", valid, "--cooccur", tmp_path / "rules.json", "--cache",
                    tmp_path / "cache", "--report", tmp_path / "r.json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "before" in evaluated.stdout and "after" in evaluated.stdout and "micro_f1" in evaluated.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert "before_rules" in report and report["rules"]["labels_added"] >= 0

    # stored in the model folder: predict applies them without --cooccur and marks what they added
    stored = run("fit", train, "--text-col", "text", "--label-col", "labels", "--cooccur", tmp_path / "rules.json",
                 "--out", tmp_path / "m2", *common)
    assert stored.returncode == 0, stored.stderr
    assert (tmp_path / "m2" / "rules.json").exists()
    assert run("predict", tmp_path / "m2", valid, "--out", tmp_path / "p.csv", "--cache",
               tmp_path / "cache").returncode == 0
    frame = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert "labels (added by rules)" in frame.columns
    for labels, added in zip(frame["labels"], frame["labels (added by rules)"]):
        predicted = set(labels.split("|")) - {""}
        assert set(added.split("|")) - {""} <= predicted
        if {"corn", "wheat"} & predicted:
            assert "grain" in predicted


def test_threshold_auto_prints_the_curve(tiny_model, tmp_path):
    train, valid = reuters_slices(tmp_path)
    common = ["--model", tiny_model, "--cache", tmp_path / "cache", "--device", "cpu"]
    assert run("fit", train, "--text-col", "text", "--label-col", "labels", "--out", tmp_path / "m",
               *common).returncode == 0
    tuned = run("cooccur", train, "--threshold", "auto", "--valid", valid, "--model-dir", tmp_path / "m",
                "--out", tmp_path / "rules.json", "--cache", tmp_path / "cache")
    assert tuned.returncode == 0, tuned.stderr
    lines = [line.split() for line in tuned.stdout.splitlines()[1:]]
    assert lines[0][0] == "none" and [float(line[0]) for line in lines[1:]] == \
        [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0]
    chosen = json.loads((tmp_path / "rules.json").read_text())
    best = max(lines, key=lambda line: (float(line[2]), 2.0 if line[0] == "none" else float(line[0])))
    assert len(chosen["rules"]) == int(best[1])
    assert chosen["min_support"] == 5 <= chosen["n_rows"] == 1500  # never a support beyond the rows


def test_rules_for_other_labels_and_bad_thresholds_are_refused(tiny_model, tmp_path):
    train, valid = reuters_slices(tmp_path)
    (tmp_path / "go.csv").write_text("text,labels\n" + "".join(f"text {i},joy|love\n" for i in range(10)) +
                                     "".join(f"other {i},joy\n" for i in range(10)))
    assert run("cooccur", tmp_path / "go.csv", "--label-col", "labels", "--label-sep", "|", "--min-support", "2",
               "--out", tmp_path / "go-rules.json").returncode == 0
    assert run("fit", train, "--text-col", "text", "--label-col", "labels", "--out", tmp_path / "m", "--model",
               tiny_model, "--cache", tmp_path / "cache", "--device", "cpu").returncode == 0
    refused = run("evaluate", tmp_path / "m", valid, "--cooccur", tmp_path / "go-rules.json", "--cache",
                  tmp_path / "cache")
    assert refused.returncode == 2 and "is for other labels than the model's" in refused.stderr
    assert "Traceback" not in refused.stderr
    bad = run("cooccur", train, "--text-col", "text", "--label-col", "labels", "--threshold", "high", "--out",
              tmp_path / "r.json")
    assert bad.returncode == 2 and "--threshold must be a number" in bad.stderr
    for value in ("1.5", "0", "nan"):
        outside = run("cooccur", train, "--text-col", "text", "--label-col", "labels", "--threshold", value,
                      "--out", tmp_path / "r.json")
        errors = [line for line in outside.stderr.splitlines() if line.startswith("embedclf: error:")]
        assert outside.returncode == 2 and "Traceback" not in outside.stderr, outside.stderr
        assert len(errors) == 1 and "threshold must be in (0, 1]" in errors[0]
    assert not (tmp_path / "r.json").exists()
    auto = run("cooccur", train, "--text-col", "text", "--label-col", "labels", "--threshold", "auto", "--out",
               tmp_path / "r.json")
    assert auto.returncode == 2 and "needs --valid FILE and --model-dir" in auto.stderr
