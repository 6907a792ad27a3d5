"""The ``embedclf encode`` and ``embedclf cache`` commands, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_file

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "embedclf", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_encode_writes_matrix_and_summary_then_reuses_cache(tiny_model, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("title,body\nGood,movie\nBad,film\n,\nGood,movie\n")
    out = tmp_path / "X.npy"
    args = ["encode", data, "--text-col", "title", "--text-col", "body", "--model", tiny_model,
            "--cache", tmp_path / "cache", "--device", "cpu", "--out", out]
    first = run(*args)
    assert first.returncode == 0, first.stderr
    assert "read 4 rows" in first.stderr and "1 skipped (empty text)" in first.stderr
    assert "3 texts, 2 distinct, 0 cached, 2 encoded" in first.stderr and "texts/s" in first.stderr
    assert f"embeddings cached in {tmp_path / 'cache'}" in first.stderr
    X = np.load(out)
    assert X.shape == (4, 32) and np.isnan(X[2]).all()  # one row per input row; the empty one is NaN
    np.testing.assert_array_equal(X[0], X[3])
    second = run(*args)
    assert "2 cached, 0 encoded" in second.stderr
    np.testing.assert_array_equal(np.load(out), X)
    info = run("cache", "info", "--cache", tmp_path / "cache")
    assert info.returncode == 0 and "1 spaces, 2 entries" in info.stderr and tiny_model in info.stdout
    cleared = run("cache", "clear", "--cache", tmp_path / "cache", "--yes")
    assert "removed 1 spaces, 2 entries" in cleared.stderr
    assert "empty" in run("cache", "info", "--cache", tmp_path / "cache").stderr


@pytest.mark.parametrize("args, message", [
    (["encode", "absent.csv"], "absent.csv: no such file"),
    (["encode", "{data}", "--text-col", "body"], "no column 'body'"),
    (["encode", "{bad}"], "not valid UTF-8 (line 2"),
    (["encode", "{data}", "--pooling", "weird"], "'weird' is not one of 'mean', 'cls', 'max'"),
    (["encode", "{data}", "--model", "{tmp}/no-model-here"], "no such model directory"),
    (["encode", "{data}", "--out", "{tmp}/X.txt"], "--out must end in .npy"),
    (["encode", "{data}", "--strict", "--text-col", "maybe"], "row 2: empty text"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_model, tmp_path, args, message):
    (tmp_path / "d.csv").write_text("text,maybe\nhello there,x\nhi,\n")
    (tmp_path / "bad.csv").write_bytes(b"text\n\xff\xfe\n")
    fill = dict(data=tmp_path / "d.csv", bad=tmp_path / "bad.csv", tmp=tmp_path)
    args = [a.format(**fill) for a in args]
    if "--model" not in args:
        args += ["--model", tiny_model]
    result = run(*args, "--cache", tmp_path / "cache", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    usage_error = "Try 'embedclf" in result.stderr or "--help' for help" in result.stderr  # click's usage message
    assert "Traceback" not in result.stderr and (usage_error or len(result.stderr.strip().splitlines()) <= 2)


@pytest.mark.real_model
def test_real_default_model_on_goemotions(tmp_path):
    from embedclf.data import load_dataset
    from embedclf.encode.encoder import Encoder

    ds = load_dataset(shared_file("goemotions", "dev.tsv"), ["text"], columns=["text", "labels", "id"])
    encoder = Encoder(cache=tmp_path / "cache", device="cpu")
    X = encoder.encode(ds.texts[:200])
    assert X.shape == (200, 384)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    a, b, c = encoder.encode(["I am so happy today, this is wonderful!", "Today I feel really glad and joyful.",
                              "The committee postponed the vote on the tax bill."])
    assert a @ b > a @ c + 0.2 and a @ b > b @ c + 0.2
    again = Encoder(cache=tmp_path / "cache", device="cpu")
    np.testing.assert_array_equal(again.encode(ds.texts[:200]), X)
    assert again.last_report.encoded == 0


@pytest.mark.real_model
def test_readme_python_examples_run(tmp_path):
    """The README's Python blocks are executed as written (from a copy of the examples folder)."""
    import re
    import shutil

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks
    project = tmp_path / "project"  # beside a link to the shared data, as the README's paths expect
    shutil.copytree(ROOT / "examples", project / "examples")
    (tmp_path / "shared").symlink_to(shared_file("goemotions").parents[1], target_is_directory=True)
    for block in blocks:
        result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=project,
                                timeout=600, env={**__import__("os").environ, "EMBEDCLF_CACHE": str(tmp_path / "cache")})
        assert result.returncode == 0, result.stderr[-2000:]
