"""Threshold tuning: per-label (macro) and shared (micro) objectives against a brute-force search."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from embedclf.postprocess.thresholds import GRID, tune_thresholds
from tests.test_model import goemotions_slice, run

LAYOUT = (("multilabel", 3), ("multiclass", 2))


def noisy_scores(seed: int = 0, n: int = 400):
    """Three labels whose scores separate at different places, and a multi-class block."""
    rng = np.random.default_rng(seed)
    Y = np.zeros((n, 5), dtype=np.int8)
    Y[:, :3] = rng.random((n, 3)) < [0.3, 0.1, 0.05]
    Y[np.arange(n), 3 + rng.integers(0, 2, n)] = 1
    shift = np.array([0.15, 0.35, 0.55])  # where each label's positives sit above its negatives
    S = np.clip(rng.normal(0.3, 0.15, (n, 3)) + Y[:, :3] * shift, 0, 1)
    return Y, np.hstack([S, rng.random((n, 2))])


def test_macro_gives_each_label_its_best_f1_threshold():
    Y, S = noisy_scores()
    thresholds = tune_thresholds(Y, S, LAYOUT)
    for column in range(3):
        f1 = [f1_score(Y[:, column], S[:, column] >= t) for t in GRID]
        assert f1_score(Y[:, column], S[:, column] >= thresholds[column]) == pytest.approx(max(f1))
    assert len(set(thresholds[:3])) == 3  # the labels separate at different places
    assert thresholds[3:].tolist() == [0.5, 0.5]  # argmax decides a multi-class block


def test_micro_shares_the_threshold_with_the_best_micro_f1():
    Y, S = noisy_scores()
    thresholds = tune_thresholds(Y, S, LAYOUT, objective="micro")
    assert len(set(thresholds[:3])) == 1 and thresholds[3:].tolist() == [0.5, 0.5]
    micro = [f1_score(Y[:, :3], S[:, :3] >= t, average="micro") for t in GRID]
    assert f1_score(Y[:, :3], S[:, :3] >= thresholds[0], average="micro") == pytest.approx(max(micro))


def test_labels_without_positives_keep_the_default_and_bad_objectives_are_refused():
    Y, S = noisy_scores()
    Y[:, 1] = 0
    assert tune_thresholds(Y, S, LAYOUT, default=0.4)[1] == 0.4
    Y[:, :3] = 0
    assert tune_thresholds(Y, S, LAYOUT, default=0.4, objective="micro")[:3].tolist() == [0.4] * 3
    with pytest.raises(ValueError, match="unknown threshold objective 'weighted'"):
        tune_thresholds(Y, S, LAYOUT, objective="weighted")


def test_cli_fit_tunes_for_micro_and_refuses_unknown_objectives(tiny_model, tmp_path):
    train = goemotions_slice(tmp_path, "train", 300)
    common = ["--columns", "text,labels,id", "--label-col", "labels", "--label-sep", ",", "--valid-split", "0.3",
              "--tune-thresholds", "--model", tiny_model, "--cache", tmp_path / "cache", "--device", "cpu"]
    fitted = run("fit", train, "--tune-for", "micro", "--out", tmp_path / "micro", *common)
    assert fitted.returncode == 0, fitted.stderr
    manifest = json.loads((tmp_path / "micro" / "model.json").read_text())
    assert len(set(manifest["thresholds"])) == 1
    assert manifest["info"]["validation"]["tuned_for"] == "micro"
    bad = run("fit", train, "--tune-for", "weighted", "--out", tmp_path / "bad", *common)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "Invalid value for '--tune-for'" in bad.stderr and "'weighted' is not one of 'macro', 'micro'" in bad.stderr
    assert not (tmp_path / "bad").exists()
