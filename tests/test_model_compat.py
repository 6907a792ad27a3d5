"""Model folders written by embedclf 0.1.0 (before the redesign) load and predict as they did then."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embedclf.model import TextClassifier

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


@pytest.mark.real_model
@pytest.mark.parametrize("folder", ["model-v0.1.0", "mlp-v0.1.0"])
def test_folders_of_version_0_1_0_predict_what_they_predicted(folder, tmp_path):
    out = tmp_path / "predictions.csv"
    result = subprocess.run([sys.executable, "-m", "embedclf", "predict", DATA / folder, ROOT / "examples" / "tickets.csv",
                             "--out", out, "--cache", tmp_path / "cache"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    got, then = pd.read_csv(out, keep_default_na=False), pd.read_csv(DATA / f"{folder}-predictions.csv",
                                                                    keep_default_na=False)
    tickets = pd.read_csv(ROOT / "examples" / "tickets.csv", keep_default_na=False)
    assert got["id"].tolist() == tickets["id"].tolist()  # since 0.2 the input's id column is carried along
    got = got.drop(columns="id")
    assert list(got.columns) == list(then.columns)
    labels = [c for c in then.columns if not c.startswith("p(")]
    assert got[labels].equals(then[labels])
    probabilities = [c for c in then.columns if c.startswith("p(")]
    np.testing.assert_allclose(got[probabilities].to_numpy(), then[probabilities].to_numpy(), atol=2e-4)


@pytest.mark.real_model
def test_old_folder_loads_into_the_new_pipeline(tmp_path):
    classifier = TextClassifier.load(DATA / "model-v0.1.0", cache=tmp_path / "cache")
    assert [name for name, _ in classifier.pipeline.steps] == ["encode", "head"]
    assert classifier.encoder.settings.cache_key()["fingerprint"] == classifier.encoder.ref.fingerprint
    assert classifier.predict(["I was charged twice for one invoice"])[0][0] == ["billing"]
