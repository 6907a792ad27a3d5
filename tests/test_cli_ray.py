"""``embedclf encode/predict --engine ray``, run as a user runs them (each run starts its own local Ray)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "embedclf", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_encode_and_predict_with_the_ray_engine(tiny_model, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("title,body,topic\nGood,movie,a\nBad,film,b\n,,a\nGood,movie,a\nnice,day,b\n")
    # fp32 said explicitly: auto is bf16 on a local CPU with native bf16, fp32 on Ray actors' CPUs (unprobed)
    common = ["--text-col", "title", "--text-col", "body", "--model", tiny_model, "--cache", tmp_path / "cache",
              "--precision", "fp32"]
    ray = run("encode", data, *common, "--engine", "ray", "--actors", "1", "--out", tmp_path / "X.npy", cwd=tmp_path)
    assert ray.returncode == 0, ray.stderr
    assert "read 5 rows from" in ray.stderr and "4 texts; 1 skipped (empty text)" in ray.stderr
    assert "imported 3 new vectors into the cache" in ray.stderr and "Traceback" not in ray.stderr
    local = run("encode", data, *common, "--device", "cpu", "--out", tmp_path / "Y.npy", cwd=tmp_path)
    assert "4 texts, 3 distinct, 3 cached, 0 encoded" in local.stderr, local.stderr
    np.testing.assert_allclose(np.load(tmp_path / "X.npy"), np.load(tmp_path / "Y.npy"), atol=1e-6)

    fit = run("fit", data, *common, "--label-col", "topic", "--out", tmp_path / "m", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    predicted = run("predict", tmp_path / "m", data, "--engine", "ray", "--actors", "1", "--out", tmp_path / "p",
                    "--device", "cpu", "--cache", tmp_path / "cache", cwd=tmp_path)
    assert predicted.returncode == 0 and "wrote 4 predictions to" in predicted.stderr, predicted.stderr
    assert f"imported 0 new vectors into the cache, {tmp_path / 'cache'}" in predicted.stderr  # --cache honoured
    on_gpu = run("predict", tmp_path / "m", data, "--engine", "ray", "--device", "cuda", "--out", tmp_path / "q",
                 cwd=tmp_path)
    assert on_gpu.returncode == 2 and "--device cuda with --engine ray needs --gpus-per-actor" in on_gpu.stderr
    import pandas as pd

    frame = pd.read_parquet(tmp_path / "p").sort_values("row")
    assert frame["row"].tolist() == [1, 2, 4, 5] and set(frame["topic"]) <= {"a", "b"}
    wrong = run("encode", data, "--actors", "3", cwd=tmp_path)
    assert wrong.returncode == 2 and "are for --engine ray" in wrong.stderr


def test_a_hybrid_model_predicts_the_same_on_ray_actors_as_locally(tiny_model, tmp_path):
    """The actors get the model's fitted TF-IDF vectoriser and join it to their vectors, as the local engine does."""
    import pandas as pd

    tickets = ROOT / "examples" / "tickets.csv"
    common = ["--text-col", "subject", "--text-col", "body", "--model", tiny_model, "--no-cache", "--precision",
              "fp32"]
    fit = run("fit", tickets, *common, "--label-col", "topics", "--label-sep", "|", "--head", "svm", "--features",
              "hybrid", "--out", tmp_path / "m", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    local = run("predict", tmp_path / "m", tickets, "--device", "cpu", "--no-cache", "--out", tmp_path / "p.csv",
                cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    ray = run("predict", tmp_path / "m", tickets, "--engine", "ray", "--actors", "1", "--device", "cpu", "--no-cache",
              "--out", tmp_path / "p", cwd=tmp_path)
    assert ray.returncode == 0, ray.stderr
    expected = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    got = pd.read_parquet(tmp_path / "p").sort_values("row").reset_index(drop=True)
    probabilities = [c for c in expected.columns if c.startswith("p(")]
    assert got["row"].tolist() == expected["row"].tolist()
    np.testing.assert_allclose(got[probabilities].to_numpy(float), expected[probabilities].to_numpy(float), atol=1e-5)
