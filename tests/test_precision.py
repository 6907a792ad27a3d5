"""``--precision auto``: bf16 on CPUs with native bf16 (mocked flags), fp32 elsewhere, fp16 on CUDA; the
once-per-model-and-machine bf16 guard, its fallback and its verdict kept in the export store; the resolved
precision in the cache key, the encode summary and the model folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedclf.encode import guard
from embedclf.encode.encoder import Encoder
from embedclf.encode.exports import ExportStore
from embedclf.encode.settings import EncoderSettings, auto_precision
from tests.conftest import sample_texts

ROOT = Path(__file__).resolve().parents[1]
AVX512_BF16 = "fpu vme sse sse2 avx2 avx512f avx512_vnni avx512_bf16"


@pytest.fixture
def store(tmp_path, monkeypatch) -> ExportStore:
    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(tmp_path / "exports"))
    return ExportStore()


def with_flags(monkeypatch, flags: str) -> None:
    monkeypatch.setattr(guard, "cpu_flags", lambda cpuinfo=None: set(flags.split()))


@pytest.mark.parametrize("backend, device, native, expected", [
    ("torch", "cuda", False, "fp16"), ("torch", "cuda:1", True, "fp16"),
    ("torch", "cpu", True, "bf16"), ("torch", "cpu", False, "fp32"),
    ("onnx", "cpu", True, "fp32"), ("onnx", "cpu", False, "fp32"),
])
def test_auto_precision_rule(backend, device, native, expected):
    assert auto_precision(backend, device, native) == expected


@pytest.mark.parametrize("flags, native", [
    ("fpu avx2 avx512f avx512_vnni", False), (AVX512_BF16, True), ("fpu avx2 amx_tile amx_bf16 amx_int8", True),
    ("", False)])
def test_native_bf16_reads_the_cpu_flags(tmp_path, monkeypatch, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert guard.cpu_flags(cpuinfo) == set(flags.split())
    assert guard.cpu_flags(tmp_path / "missing") == set()
    with_flags(monkeypatch, flags)
    assert guard.native_bf16() is native


def test_no_native_bf16_resolves_to_fp32_without_a_check(tiny_model, store, monkeypatch):
    with_flags(monkeypatch, "fpu avx2 avx512f")
    assert EncoderSettings(tiny_model, device="cpu").resolve().precision == "fp32"
    assert store.entries() == []  # nothing to check: no verdict made


def test_native_bf16_is_checked_once_per_model_and_kept(tiny_model, store, monkeypatch):
    with_flags(monkeypatch, AVX512_BF16)
    calls = []
    real_compare = guard._compare

    def counting(settings):
        calls.append(settings.precision)
        return real_compare(settings)

    monkeypatch.setattr(guard, "_compare", counting)
    monkeypatch.setattr(guard, "BF16_MIN_COSINE", 0.9)  # the tiny random model's bf16 passes at .9
    first = EncoderSettings(tiny_model, device="cpu").resolve()
    assert first.precision == "bf16" and len(calls) == 1
    (entry,) = store.entries()
    assert entry.meta["fingerprint"] == first.fingerprint and entry.meta["ok"] is True
    assert 0.9 <= entry.meta["min_cosine"] <= entry.meta["mean_cosine"] <= 1 + 1e-9
    again = EncoderSettings(tiny_model, device="cpu", pooling="cls").resolve()  # another setting, same model
    assert again.precision == "bf16" and len(calls) == 1, "the verdict is read, not measured again"
    assert first.cache_key() != EncoderSettings(tiny_model, device="cpu", precision="fp32").resolve().cache_key()


def test_guard_falls_back_to_fp32_with_one_line(tiny_model, store, monkeypatch, capsys):
    with_flags(monkeypatch, AVX512_BF16)
    monkeypatch.setattr(guard, "_compare", lambda settings: (0.9995, 0.9981))
    settings = EncoderSettings(tiny_model, device="cpu").resolve()
    assert settings.precision == "fp32"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"embedclf: {tiny_model}: bf16 min cosine 0.99810 to fp32 is below 0.999; "
                   "--precision auto uses fp32"]
    monkeypatch.setattr(guard, "_compare", lambda settings: pytest.fail("measured again"))
    assert EncoderSettings(tiny_model, device="cpu").resolve().precision == "fp32"  # the kept verdict
    assert store.entries()[0].meta["ok"] is False


def test_explicit_precisions_and_other_machines_are_not_guarded(tiny_model, store, monkeypatch):
    with_flags(monkeypatch, AVX512_BF16)
    monkeypatch.setattr(guard, "_compare", lambda settings: pytest.fail("no check expected"))
    assert EncoderSettings(tiny_model, device="cpu", precision="fp32").resolve().precision == "fp32"
    assert EncoderSettings(tiny_model, device="cpu", precision="bf16").resolve().precision == "bf16"
    assert EncoderSettings(tiny_model).resolve(device="cpu").precision == "fp32"  # a Ray actor's CPU: unknown
    assert EncoderSettings(tiny_model, backend="onnx").resolve().precision == "fp32"


def test_bf16_encoding_is_close_to_fp32_and_has_its_own_space(tiny_model, cache_dir, store, monkeypatch):
    with_flags(monkeypatch, AVX512_BF16)
    monkeypatch.setattr(guard, "BF16_MIN_COSINE", 0.9)
    texts = sample_texts(30)
    auto = Encoder(tiny_model, cache=cache_dir, device="cpu")
    fp32 = Encoder(tiny_model, cache=cache_dir, device="cpu", precision="fp32")
    X, Y = auto.encode(texts), fp32.encode(texts)
    assert auto.precision == "bf16" and auto.config["precision"] == "bf16" and auto.config["backend"] == "torch"
    assert auto.space.directory != fp32.space.directory and fp32.last_report.cached == 0
    assert not np.array_equal(X, Y)
    cos = (X * Y).sum(axis=1)
    assert cos.min() > 0.9


def test_cli_shows_and_model_folder_records_the_resolved_precision(tiny_model, tmp_path, store):
    """The CLI's own process reads the cpu flags: what auto is here depends on this machine, and is said."""
    expected = "bf16" if guard.native_bf16() else "fp32"
    if expected == "bf16":  # the verdict, set as the tiny model's bf16 passing, so the result is known
        settings = EncoderSettings(tiny_model, device="cpu", precision="bf16").resolve()
        store.ensure(f"{settings.fingerprint[:16]}-torch-{guard.GUARD_RECIPE}", lambda folder: {"ok": True},
                     {"fingerprint": settings.fingerprint, "min_cosine": 0.9995})
    train = tmp_path / "train.csv"
    train.write_text("text,y\n" + "".join(f"good movie {i},pos\nbad film {i},neg\n" for i in range(6)))
    common = ["--model", tiny_model, "--cache", tmp_path / "cache", "--device", "cpu"]
    encode = subprocess.run([sys.executable, "-m", "embedclf", "encode", train, *common], capture_output=True,
                            text=True, cwd=ROOT, timeout=300)
    assert encode.returncode == 0, encode.stderr
    assert f"torch {expected}: 12 texts" in encode.stderr
    fit = subprocess.run([sys.executable, "-m", "embedclf", "fit", train, "--label-col", "y", "--out",
                          tmp_path / "m", *common], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert fit.returncode == 0, fit.stderr
    manifest = json.loads((tmp_path / "m" / "model.json").read_text())
    assert (manifest["encoder"]["backend"], manifest["encoder"]["precision"]) == ("torch", expected)
