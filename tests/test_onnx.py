"""The onnx backend on the tiny random model: fidelity to torch, int8, its own cache space, the export
reused, refusals, the missing extra, --check-fidelity, and backend/precision kept in a model folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from embedclf.encode.cache import EmbeddingCache
from embedclf.encode.encoder import Encoder
from embedclf.encode.fidelity import check_fidelity, cosines
from embedclf.encode.backends.onnx import INT8_RECIPE, MODEL_FILE, export_dir
from embedclf.errors import EmbedclfError
from tests.conftest import sample_texts, shared_file

pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[1]
TEXTS = sample_texts(60) + ["Zebras, 42 apples!", "x", "good"]


def torch_fp32(model, **kwargs):
    return Encoder(model, cache=False, device="cpu", precision="fp32", **kwargs)


def onnx(model, cache, precision="fp32", **kwargs):
    return Encoder(model, cache=cache, backend="onnx", precision=precision, **kwargs)


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_onnx_fp32_matches_torch_fp32(tiny_model, cache_dir, pooling):
    # batch size 7: batches mix lengths, so padding and the attention mask are exercised
    expected = torch_fp32(tiny_model, pooling=pooling, batch_size=7).encode(TEXTS)
    encoder = onnx(tiny_model, cache_dir, pooling=pooling, batch_size=7)
    actual = encoder.encode(TEXTS)
    assert actual.shape == expected.shape and actual.dtype == np.float32
    assert cosines(expected, actual).min() > 0.9999
    np.testing.assert_allclose(np.linalg.norm(actual, axis=1), 1.0, atol=1e-5)
    assert encoder.config["backend"] == "onnx" and encoder.config["precision"] == "fp32"


def test_onnx_unnormalised_and_truncated_match_torch(tiny_model, cache_dir):
    reference = torch_fp32(tiny_model, normalize=False, max_length=8)
    expected = reference.encode(TEXTS)
    encoder = onnx(tiny_model, cache_dir, normalize=False, max_length=8)
    np.testing.assert_allclose(encoder.encode(TEXTS), expected, atol=1e-4)
    assert encoder.last_report.truncated == reference.last_report.truncated > 0


def test_int8_is_close_and_never_mixes_with_other_spaces(tiny_model, cache_dir):
    expected = torch_fp32(tiny_model).encode(TEXTS)
    int8 = onnx(tiny_model, cache_dir, "int8")
    X8 = int8.encode(TEXTS)
    assert cosines(expected, X8).mean() > 0.9  # a random tiny model: int8 is close, not identical
    fp32 = onnx(tiny_model, cache_dir)
    torch = Encoder(tiny_model, cache=cache_dir, device="cpu", precision="fp32")
    assert len({str(e.space.directory) for e in (int8, fp32, torch)}) == 3
    for other in (fp32, torch):  # nothing int8 encoded is found in the fp32 spaces
        assert not np.array_equal(other.encode(TEXTS), X8)
        assert other.last_report.cached == 0 and other.last_report.encoded == other.last_report.unique
    again = onnx(tiny_model, cache_dir, "int8")
    np.testing.assert_array_equal(again.encode(TEXTS), X8)
    assert again.last_report.encoded == 0 and again._embedder is None
    configs = {(s.config["backend"], s.config["precision"]) for s in EmbeddingCache(cache_dir).spaces()}
    assert configs == {("onnx", "int8"), ("onnx", "fp32"), ("torch", "fp32")}


def test_int8_quantises_the_matmuls_but_keeps_down_projections_fp32(tiny_model, cache_dir):
    """The recipe: every weight MatMul int8 except the feed-forward outputs (64 -> 32 in the tiny model),
    whose post-GELU inputs quantise badly; the embedding tables stay fp32."""
    import onnx as onnx_format

    encoder = onnx(tiny_model, cache_dir, "int8")
    encoder.encode(TEXTS[:3])
    graph = onnx_format.load(str(export_dir(encoder.ref.fingerprint, "int8") / MODEL_FILE)).graph
    shapes = {w.name: tuple(w.dims) for w in graph.initializer}
    fp32_weights = sorted(shapes[n.input[1]] for n in graph.node if n.op_type == "MatMul" and n.input[1] in shapes)
    int8_weights = [shapes[n.input[1]] for n in graph.node if n.op_type == "MatMulInteger" and n.input[1] in shapes]
    assert fp32_weights == [(64, 32), (64, 32)]  # one feed-forward output per layer, 2 layers
    # per layer: query, key, value, attention output (32 x 32) and feed-forward input (32 x 64)
    assert sorted(int8_weights) == [(32, 32)] * 8 + [(32, 64)] * 2
    assert not any(n.op_type == "Gather" and n.input[0].endswith("_quantized") for n in graph.node)
    assert encoder.config["quantization"] == INT8_RECIPE


def test_export_is_written_once_and_reused(tiny_model, cache_dir, tmp_path, monkeypatch):
    import embedclf.encode.backends.onnx as backend

    store = tmp_path / "exports"
    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(store))
    first = onnx(tiny_model, cache_dir, "int8")
    first.encode(TEXTS[:5])
    fp32_file = export_dir(first.ref.fingerprint, "fp32") / MODEL_FILE
    int8_file = export_dir(first.ref.fingerprint, "int8") / MODEL_FILE
    assert fp32_file.exists() and int8_file.exists()
    assert int8_file.parent.name.endswith(f"-onnx-{INT8_RECIPE}") and int8_file.parent.parent == store
    assert not (cache_dir / "onnx").exists(), "the export store, not the cache, holds exports"
    stamps = fp32_file.stat().st_mtime_ns, int8_file.stat().st_mtime_ns
    assert not list(store.glob(".tmp-*"))

    def refuse(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(backend, "_export", refuse)
    monkeypatch.setattr(backend, "_quantize", refuse)
    for precision in ("fp32", "int8"):  # a new cache directory: the export is found in the store
        encoder = onnx(tiny_model, tmp_path / f"new-cache-{precision}", precision)
        encoder.encode(TEXTS[5:10])
        assert encoder.last_report.encoded == 5
    assert (fp32_file.stat().st_mtime_ns, int8_file.stat().st_mtime_ns) == stamps


def test_int8_fidelity_is_printed_kept_and_refused_below_the_threshold(tiny_model, tmp_path, monkeypatch, capfd):
    import embedclf.encode.backends.onnx as backend
    from embedclf.encode import guard

    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(tmp_path / "exports"))
    monkeypatch.setattr(guard, "INT8_MIN_COSINE", 1.000001)  # no int8 export reaches it
    with pytest.raises(EmbedclfError, match=r"onnx int8 of .*: min cosine \S+ to fp32 on 16 texts is below 1\.000001; "
                                            "use --precision fp32, or --backend openvino"):
        onnx(tiny_model, tmp_path / "cache", "int8").encode(TEXTS[:3])
    printed = [line for line in capfd.readouterr().err.splitlines() if "onnx int8 of" in line]
    assert len(printed) == 1 and "cosine to fp32 on 16 texts: mean " in printed[0]
    monkeypatch.setattr(backend, "_quantize", lambda *args: pytest.fail("quantised again"))
    monkeypatch.setattr(guard, "INT8_MIN_COSINE", 0.98)  # the kept measurement, judged when used
    assert onnx(tiny_model, tmp_path / "cache", "int8").encode(TEXTS[:3]).shape == (3, 32)
    assert not [line for line in capfd.readouterr().err.splitlines() if "onnx int8 of" in line]


def test_concurrent_first_uses_export_once(tiny_model, cache_dir, tmp_path, monkeypatch):
    import threading
    import time

    import embedclf.encode.backends.onnx as backend

    calls = []

    def slow_export(ref, target):  # stands in for torch.onnx.export: slow, and writes model.onnx last
        calls.append(target)
        time.sleep(0.3)
        (target / MODEL_FILE).write_bytes(b"onnx")

    monkeypatch.setattr(backend, "_export", slow_export)
    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(tmp_path / "exports"))
    ref = Encoder(tiny_model, cache=cache_dir).ref
    threads = [threading.Thread(target=backend.ensure_export, args=(ref, "fp32")) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1


def test_onnx_run_with_an_export_needs_neither_torch_nor_transformers(tiny_model, cache_dir):
    onnx(tiny_model, cache_dir).encode(["export it first"])
    code = textwrap.dedent(f"""
        import sys
        from embedclf.encode.encoder import Encoder
        encoder = Encoder({tiny_model!r}, cache={str(cache_dir)!r}, backend="onnx")
        X = encoder.encode(["good movie", "the market fell"])
        assert encoder.last_report.encoded == 2 and X.shape == (2, 32)
        print(sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("settings, message", [
    (dict(backend="onnx", precision="fp16"), "precision fp16 is not available with the onnx backend; expected one of: auto, "
                                             "fp32, int8"),
    (dict(backend="onnx", precision="bf16"), "precision bf16 is not available with the onnx backend"),
    (dict(backend="torch", precision="fp8"), "--precision 'fp8' is unknown; expected one of: auto, fp32, fp16, bf16, "
                                             "int8"),
    (dict(precision="fp8"), "--precision 'fp8' is unknown"),
    (dict(backend="tensorflow"), "--backend 'tensorflow' is not one of: torch, onnx, openvino"),
    (dict(backend="onnx", device="cuda"), "the onnx backend runs on the CPU"),
])
def test_invalid_backend_precision_device_combinations(tiny_model, settings, message):
    with pytest.raises(EmbedclfError, match=message) as error:
        Encoder(tiny_model, cache=False, **settings)
    assert "\n" not in str(error.value)


def test_auto_precision_and_bf16(tiny_model, cache_dir, monkeypatch):
    from embedclf.encode import guard

    monkeypatch.setattr(guard, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert onnx(tiny_model, cache_dir, "auto").precision == "fp32"
    monkeypatch.setattr(guard, "cpu_flags", lambda: {"avx512f"})
    assert Encoder(tiny_model, cache=False, device="cpu").precision == "fp32"  # no native bf16
    bf16 = Encoder(tiny_model, cache=False, device="cpu", precision="bf16")
    assert cosines(torch_fp32(tiny_model).encode(TEXTS), bf16.encode(TEXTS)).mean() > 0.99
    assert bf16.config["precision"] == "bf16" and bf16.config["backend"] == "torch"


def test_missing_onnxruntime_gives_the_install_hint(tiny_model, cache_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(tmp_path / "exports"))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    hint = "onnxruntime is not installed; run: pip install 'embedclf[onnx]'"
    with pytest.raises(EmbedclfError, match=hint.replace("[", r"\[").replace("]", r"\]")):
        onnx(tiny_model, cache_dir).encode(["good movie"])
    assert not list(Path(os.environ["EMBEDCLF_EXPORTS"]).glob("*-onnx-*")), "nothing exported without onnxruntime"

    from embedclf.cli import main

    data = cache_dir.parent / "d.csv"
    data.write_text("text\ngood movie\n")
    monkeypatch.setattr(sys, "argv", ["embedclf", "encode", str(data), "--model", tiny_model, "--cache",
                                      str(cache_dir), "--backend", "onnx"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert error_lines == [f"embedclf: error: {hint}"]


def test_check_fidelity_function(tiny_model, cache_dir):
    same = check_fidelity(Encoder(tiny_model, cache=cache_dir, device="cpu", precision="fp32"), TEXTS)
    assert same.texts == len(TEXTS) and same.min > 0.99999 and same.setting == "torch fp32"
    int8 = check_fidelity(onnx(tiny_model, cache_dir, "int8"), TEXTS[:20])
    assert 0.9 < int8.mean <= 1.0 + 1e-6 and int8.min <= int8.mean
    assert "fidelity of onnx int8 against torch fp32 on 20 texts: mean cosine" in int8.summary()
    with pytest.raises(EmbedclfError):
        check_fidelity(onnx(tiny_model, cache_dir), [])


def test_cli_check_fidelity_prints_one_line_and_caches_only_the_chosen_setting(tiny_model, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text\n" + "\n".join(TEXTS[:20]) + "\n")
    result = subprocess.run([sys.executable, "-m", "embedclf", "encode", data, "--model", tiny_model, "--cache",
                             tmp_path / "cache", "--backend", "onnx", "--precision", "int8", "--check-fidelity", "8",
                             "--out", tmp_path / "X.npy"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("fidelity")]
    assert len(lines) == 1
    assert re.fullmatch(r"fidelity of onnx int8 against torch fp32 on 8 texts: mean cosine (0\.9\d+|1\.00000), "
                        r"min (0\.9\d+|1\.00000)", lines[0]), lines[0]
    assert "onnx int8: 20 texts" in result.stderr
    spaces = EmbeddingCache(tmp_path / "cache").spaces()
    assert [(s.config["backend"], s.config["precision"], s.entries) for s in spaces] == [("onnx", "int8", 20)]


def test_model_folder_keeps_backend_and_precision(tiny_model, tmp_path):
    import json

    from embedclf.data import DataOptions
    from embedclf.fit import fit_classifier
    from embedclf.heads import make_head
    from embedclf.model import TextClassifier

    train = tmp_path / "train.csv"
    train.write_text("text,y\n" + "".join(f"good movie {i},pos\nbad film {i},neg\n" for i in range(10)))
    options = DataOptions(["text"], ["y"])
    cache = tmp_path / "cache"
    classifier = fit_classifier(options.load(train), make_head("logreg"), onnx(tiny_model, cache, "int8"),
                                data_options=options)
    classifier.save(tmp_path / "m")
    loaded = TextClassifier.load(tmp_path / "m", cache=cache)
    assert (loaded.encoder.backend, loaded.encoder.precision) == ("onnx", "int8")
    assert loaded.predict(["good movie 3"]) == classifier.predict(["good movie 3"])
    assert loaded.encoder.last_report.cached == 1, "the int8 vectors of the training texts are found"
    assert TextClassifier.load(tmp_path / "m", cache=cache, backend="torch").encoder.config["backend"] == "torch"

    manifest = json.loads((tmp_path / "m" / "model.json").read_text())
    assert manifest["encoder"]["backend"] == "onnx" and manifest["encoder"]["precision"] == "int8"
    manifest["encoder"].pop("backend")  # a manifest written before the onnx backend existed
    manifest.pop("manifest_sha256")  # (and so before model.json had a checksum of its own)
    manifest["encoder"]["precision"] = "fp32"
    (tmp_path / "m" / "model.json").write_text(json.dumps(manifest))
    old = TextClassifier.load(tmp_path / "m", cache=cache)
    assert (old.encoder.backend, old.encoder.precision) == ("torch", "fp32")


@pytest.mark.real_model
def test_real_model_int8_fidelity_on_goemotions(tmp_path, monkeypatch, capfd):
    """The default model's onnx int8 strays below .98 on the fixed check sample: printed, kept, refused; with
    the threshold lowered it encodes GoEmotions close to fp32 on average."""
    from embedclf.data import load_dataset
    from embedclf.encode import guard

    ds = load_dataset(shared_file("goemotions", "dev.tsv"), ["text"], columns=["text", "labels", "id"])
    encoder = Encoder(cache=tmp_path / "cache", backend="onnx", precision="int8")
    with pytest.raises(EmbedclfError, match=r"onnx int8 of .*: min cosine 0\.9\d+ to fp32 on 16 texts is below 0\.98"):
        encoder.encode(ds.texts[:5])
    assert re.search(r"onnx int8 of .*: cosine to fp32 on 16 texts: mean 0\.9\d+, min 0\.9\d+", capfd.readouterr().err)
    monkeypatch.setattr(guard, "INT8_MIN_COSINE", 0.95)
    encoder = Encoder(cache=tmp_path / "cache", backend="onnx", precision="int8")
    fidelity = check_fidelity(encoder, ds.texts[:200])
    assert fidelity.mean >= 0.98 and fidelity.min > 0.9, fidelity.summary()
    fp32 = check_fidelity(encoder.derive(precision="fp32"), ds.texts[:200])
    assert fp32.min > 0.9999, fp32.summary()
