"""Fit → save → load → predict/evaluate on real data slices with the tiny model, and refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embedclf.data import DataOptions
from embedclf.encode.encoder import Encoder
from embedclf.errors import EmbedclfError
from embedclf.fit import fit_classifier
from embedclf.heads import HEAD_NAMES, make_head
from embedclf.inference import evaluate_dataset
from embedclf.model import TextClassifier
from tests.conftest import shared_file

ROOT = Path(__file__).resolve().parents[1]
FAST = {"mlp": dict(epochs=5, hidden=(16,)), "chain": dict(ensemble=2)}


def goemotions_slice(tmp_path, name="train", n=300):
    source = shared_file("goemotions", f"{name}.tsv")
    lines = source.read_text(encoding="utf-8").splitlines()[:n]
    path = tmp_path / f"go-{name}.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GO = DataOptions(["text"], ["labels"], columns=["text", "labels", "id"], label_sep=",")


def encoder(tiny_model, tmp_path):
    return Encoder(tiny_model, cache=tmp_path / "cache", device="cpu", precision="fp32")


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_save_load_round_trip_gives_identical_predictions(tiny_model, tmp_path, name):
    train = GO.load(goemotions_slice(tmp_path), require_labels=True)
    classifier = fit_classifier(train, make_head(name, **FAST.get(name, {})), encoder(tiny_model, tmp_path),
                                data_options=GO, valid_split=0.2, tune_thresholds=True)
    assert classifier.space.task == "multilabel"
    assert "validation" in classifier.info and classifier.info["validation"]["rows"] == 60
    classifier.save(tmp_path / "model")
    loaded = TextClassifier.load(tmp_path / "model", cache=tmp_path / "cache")
    X = loaded.embed(train.texts)
    np.testing.assert_array_equal(loaded.scores(X), classifier.scores(X))
    np.testing.assert_array_equal(loaded.thresholds, classifier.thresholds)
    assert loaded.predict(train.texts[:20]) == classifier.predict(train.texts[:20])
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    assert manifest["head"]["name"] == name and manifest["encoder"]["fingerprint"] == loaded.encoder.ref.fingerprint
    assert manifest["data"]["label_sep"] == ","


def test_tampered_or_foreign_model_folders_are_refused(tiny_model, tmp_path):
    train = GO.load(goemotions_slice(tmp_path), require_labels=True)
    fit_classifier(train, make_head("logreg"), encoder(tiny_model, tmp_path), data_options=GO).save(tmp_path / "m")
    tampered = tmp_path / "tampered"
    shutil.copytree(tmp_path / "m", tampered)
    blob = bytearray((tampered / "head.skops").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (tampered / "head.skops").write_bytes(bytes(blob))
    with pytest.raises(EmbedclfError, match="does not match its checksum"):
        TextClassifier.load(tampered, cache=tmp_path / "cache")

    # a head file carrying a type embedclf does not trust, with a matching checksum
    import hashlib

    import skops.io as sio
    from collections import Counter

    evil = tmp_path / "evil"
    shutil.copytree(tmp_path / "m", evil)
    payload = sio.dumps({"head": Counter("abc"), "func": np.load})
    (evil / "head.skops").write_bytes(payload)
    manifest = json.loads((evil / "model.json").read_text())
    manifest["files"]["head.skops"] = hashlib.sha256(payload).hexdigest()
    from embedclf.model_folder import MANIFEST_CHECKSUM, manifest_digest

    manifest[MANIFEST_CHECKSUM] = manifest_digest(manifest)  # re-signed, as someone who knows the format would
    (evil / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(EmbedclfError, match="types embedclf does not trust"):
        TextClassifier.load(evil, cache=tmp_path / "cache")

    (tmp_path / "empty").mkdir()
    with pytest.raises(EmbedclfError, match="not an embedclf model folder"):
        TextClassifier.load(tmp_path / "empty")
    with pytest.raises(EmbedclfError, match="no such model folder"):
        TextClassifier.load(tmp_path / "absent")


def test_model_fitted_on_other_encoder_weights_is_refused(tiny_model, tmp_path):
    train = GO.load(goemotions_slice(tmp_path), require_labels=True)
    fit_classifier(train, make_head("logreg"), encoder(tiny_model, tmp_path), data_options=GO).save(tmp_path / "m")
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model, other)
    from transformers import BertModel

    weights = BertModel.from_pretrained(other)
    weights.pooler.dense.bias.data += 1.0
    weights.save_pretrained(other)
    with pytest.raises(EmbedclfError, match="fitted on embeddings of model"):
        TextClassifier.load(tmp_path / "m", model=str(other), cache=tmp_path / "cache")


def test_labels_unseen_at_fit_time_are_reported_not_crashed_on(tiny_model, tmp_path):
    train_file = tmp_path / "train.csv"
    test_file = tmp_path / "test.csv"
    train_file.write_text("text,y\n" + "".join(f"good movie {i},pos\nbad film {i},neg\n" for i in range(10)))
    test_file.write_text("text,y\ngood movie,pos\nterrible plot,awful\nbad film,neg\n")
    options = DataOptions(["text"], ["y"])
    classifier = fit_classifier(options.load(train_file), make_head("logreg"), encoder(tiny_model, tmp_path),
                                data_options=options)
    messages = []
    report = evaluate_dataset(classifier, options.load(test_file), say=messages.append)
    assert report["unseen_labels"] == {"y": {"awful": 1}}
    assert report["metrics"]["unseen_rows"] == 1 and report["metrics"]["accuracy"] <= 2 / 3
    assert any("unseen at fit time: awful (1)" in m for m in messages)


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "embedclf", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_cli_multilabel_goemotions_fit_predict_evaluate(tiny_model, tmp_path):
    train, test = goemotions_slice(tmp_path, "train", 400), goemotions_slice(tmp_path, "test", 100)
    names = shared_file("goemotions", "labels.txt")
    common = ["--model", tiny_model, "--cache", tmp_path / "cache", "--device", "cpu"]
    fitted = run("fit", train, "--head", "logreg", "--columns", "text,labels,id", "--text-col", "text",
                 "--label-col", "labels", "--label-sep", ",", "--label-names", names, "--valid-split", "0.2",
                 "--tune-thresholds", "--out", tmp_path / "model", *common)
    assert fitted.returncode == 0, fitted.stderr
    assert "task multilabel" in fitted.stderr and "validation labels: micro_f1" in fitted.stderr
    refit = run("fit", train, "--head", "knn", "--columns", "text,labels,id", "--text-col", "text",
                "--label-col", "labels", "--label-sep", ",", "--label-names", names, "--out", tmp_path / "knn",
                *common)
    assert "0 encoded" in refit.stderr, "a second head on the same data must not encode anything"
    predicted = run("predict", tmp_path / "model", test, "--out", tmp_path / "p.csv", "--cache", tmp_path / "cache")
    assert predicted.returncode == 0, predicted.stderr
    frame = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert len(frame) == 100 and list(frame.columns[:3]) == ["row", "id", "labels"] and "p(admiration)" in frame.columns
    evaluated = run("evaluate", tmp_path / "model", test, "--report", tmp_path / "r.json", "--cache",
                    tmp_path / "cache")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "micro_f1" in evaluated.stdout and "hamming_loss" in evaluated.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["task"] == "multilabel" and 0 <= report["metrics"]["micro_f1"] <= 1


def test_cli_multioutput_cfpb(tiny_model, tmp_path):
    frame = pd.read_csv(shared_file("cfpb-complaints", "complaints.csv"), dtype=str, keep_default_na=False)
    frame.iloc[:1500].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[1500:2500].to_csv(tmp_path / "test.csv", index=False)
    common = ["--model", tiny_model, "--cache", tmp_path / "cache", "--device", "cpu"]
    fitted = run("fit", tmp_path / "train.csv", "--head", "mlp", "--epochs", "3", "--text-col",
                 "Consumer complaint narrative", "--label-col", "Product", "--label-col", "Issue",
                 "--out", tmp_path / "model", *common)
    assert fitted.returncode == 0, fitted.stderr
    assert "task multioutput" in fitted.stderr and "skipped (empty text)" in fitted.stderr
    evaluated = run("evaluate", tmp_path / "model", tmp_path / "test.csv", "--cache", tmp_path / "cache")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "Product (multiclass" in evaluated.stdout and "Issue (multiclass" in evaluated.stdout
    assert "exact_match" in evaluated.stdout


def test_cli_errors_for_models_are_one_line(tmp_path):
    (tmp_path / "d.csv").write_text("text\nhello\n")
    for args, message in [(["predict", tmp_path / "nope", tmp_path / "d.csv", "--out", tmp_path / "p.csv"],
                            "no such model folder"),
                          (["predict", tmp_path, tmp_path / "d.csv", "--out", tmp_path / "p.txt"],
                           "output must end in one of"),
                          (["fit", tmp_path / "d.csv", "--out", tmp_path / "m"], "needs labels"),
                          (["fit", tmp_path / "d.csv", "--label-col", "text", "--head", "tree", "--out", tmp_path / "m"],
                           "'tree' is not one of 'logreg'")]:
        result = run(*args, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_fit_reports_the_train_encoding_on_the_encoder_it_was_given(tiny_model, tmp_path):
    """The pipeline's encoding step keeps the given Encoder through fit, so its report is train's."""
    train = GO.load(goemotions_slice(tmp_path, n=200), require_labels=True)
    lines, given = [], encoder(tiny_model, tmp_path)
    classifier = fit_classifier(train, make_head("logreg"), given, data_options=GO, valid_split=0.25, say=lines.append,
                                features="embedding")  # hybrid embeds the validation rows after fitting
    assert classifier.encoder is given
    rows = classifier.info["train_rows"]
    assert given.last_report.texts == rows and 100 < rows < len(train.texts)
    assert any(line.startswith(f"train embeddings: {rows:,} texts") for line in lines), lines
    assert classifier.info["fit_seconds"] >= 0
