"""Every option is checked before any work: a bad value is one line and exit 2, nothing encoded or written."""

from __future__ import annotations

import pytest

from embedclf.encode.cache import EmbeddingCache
from tests.test_model import ROOT, run

TICKETS = ROOT / "examples" / "tickets.csv"


@pytest.mark.parametrize("args, message", [
    (["--head", "knn", "--neighbors", "100"], "--neighbors 100 is more than the 24 training rows"),
    (["--head", "mlp", "--hidden", "0"], "--hidden sizes must be at least 1"),
    (["--head", "mlp", "--dropout", "1.5"], "--dropout"),
    (["--head", "logreg", "--neighbors", "5"], "the logreg head takes no 'n_neighbors'"),
    (["--C", "-1"], "--C must be"),
    (["--threshold", "1.5"], "--threshold must be between 0 and 1"),
    (["--valid-split", "2"], "--valid-split must be between 0 and 1"),
    (["--max-length", "0"], "--max-length must be an integer of at least 2"),
    (["--max-length", "5000"], "--max-length 5000 is above the 128 tokens"),
    (["--max-batch-tokens", "0"], "--max-batch-tokens must be an integer of at least 1"),
    (["--backend", "onnx", "--device", "cuda"], "the onnx backend runs on the CPU"),
    (["--device", "tpu"], "--device 'tpu' is not one of"),
    (["--tune-thresholds"], "--tune-thresholds needs validation data"),
    (["--head", "mlp", "--seed", "-1"], "--seed must be an integer from 0 to 2**32 - 1"),
    (["--jobs", "0"], "--jobs must be a whole number of at least 1 (or -1 for every core), got 0"),
    (["--head", "mlp", "--jobs", "2"], "the mlp head takes no 'n_jobs'"),
])
def test_fit_refuses_bad_options_before_any_work(tiny_model, tmp_path, args, message):
    result = run("fit", TICKETS, "--text-col", "subject", "--label-col", "topics", "--label-sep", "|",
                 "--out", tmp_path / "model", "--model", tiny_model, "--cache", tmp_path / "cache", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("embedclf: error: ") and message in last, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "model").exists()
    assert sum(space.entries for space in EmbeddingCache(tmp_path / "cache").spaces()) == 0  # nothing encoded


@pytest.mark.parametrize("command", ["fit", "predict", "evaluate"])
def test_the_encode_batch_size_is_refused_under_its_own_name(tiny_model, tmp_path, command):
    """fit's --batch-size is the MLP's; the encoder's is --encode-batch-size, and an error names that one."""
    args = {"fit": [TICKETS, "--out", tmp_path / "model", "--label-col", "topics"],
            "predict": [tmp_path, TICKETS, "--out", tmp_path / "p.csv"], "evaluate": [tmp_path, TICKETS]}[command]
    result = run(command, *args, "--encode-batch-size", "0", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Invalid value for '--encode-batch-size'" in result.stderr and "--batch-size'" not in result.stderr


@pytest.mark.parametrize("command, message", [
    (["finetune", TICKETS, "--out", "{tmp}/ft", "--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["finetune", TICKETS, "--out", "{tmp}/ft", "--warmup", "5"], "--warmup"),
    (["finetune", TICKETS, "--out", "{tmp}/ft", "--lr", "0"], "--lr"),
    (["cooccur", TICKETS, "--out", "{tmp}/r.json", "--threshold", "0"], "threshold must be in (0, 1]"),
    (["fit", TICKETS, "--label-col", "topics", "--out", "{tmp}/examples"], "exists and is a file; --out names a folder"),
    (["evaluate", "{tmp}/no-model", TICKETS, "--plots", "{tmp}/examples"], "exists and is a file; --plots names a folder"),
])
def test_other_commands_refuse_bad_options(tmp_path, command, message):
    (tmp_path / "examples").write_text("a file where a folder should go")
    args = [str(a).format(tmp=tmp_path) for a in command]
    result = run(*args, "--label-col", "topics", "--label-sep", "|", cwd=tmp_path) if "--label-col" not in args \
        else run(*args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "ft").exists() and not (tmp_path / "ft.checkpoint").exists()


@pytest.mark.parametrize("args, code", [([], 0), (["--version"], 0), (["fit", "--bogus"], 2), (["nope"], 2),
                                        (["fit"], 2), (["encode", "x.csv", "--backend", "jax"], 2)])
def test_usage_errors_exit_2_without_a_traceback(tmp_path, args, code):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == code and "Traceback" not in result.stderr, result.stderr
    if args == ["--version"]:
        assert result.stdout.startswith("embedclf 0.1.0")
    if code == 2:
        assert "Usage: " in result.stderr and "Error: " in result.stderr


@pytest.mark.parametrize("content, command", [("text,label\n", "encode"), ("text,label\n", "fit"),
                                              ("text,label\n,a\n,b\n", "fit"), ("", "encode")])
def test_inputs_with_nothing_to_work_on_are_one_line(tiny_model, tmp_path, content, command):
    (tmp_path / "d.csv").write_text(content)
    extra = ["--label-col", "label", "--out", tmp_path / "m"] if command == "fit" else []
    result = run(command, tmp_path / "d.csv", *extra, "--model", tiny_model, "--cache", tmp_path / "cache",
                 cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("embedclf: error: ") and ("nothing to work on" in last or "cannot read" in last), last
    assert not (tmp_path / "m").exists() and not list((tmp_path / "cache").glob("*/shards/*.npy"))
