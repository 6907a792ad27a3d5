"""The openvino backend on the tiny random model: fp32 equals torch fp32, bf16 close, exports made once per
machine and found from any cache directory, int8 calibrated on the texts being encoded with its cosine
printed and kept, refused below the threshold, ``--precision int8`` picking the fastest int8 backend, and
the missing extra."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from embedclf.encode.encoder import Encoder
from embedclf.encode.exports import ExportStore, sample_hash
from embedclf.encode.settings import OV_INT8_RECIPE, EncoderSettings
from embedclf.encode.similarity import cosines
from embedclf.errors import EmbedclfError
from tests.conftest import sample_texts

pytest.importorskip("openvino")
pytest.importorskip("nncf")
TEXTS = sample_texts(60, seed=5) + ["Zebras, 42 apples!", "x", "good"]


def openvino(model, cache, precision="fp32", **kwargs):
    return Encoder(model, cache=cache, backend="openvino", precision=precision, **kwargs)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_openvino_fp32_matches_torch_fp32(tiny_model, cache_dir, pooling):
    expected = Encoder(tiny_model, cache=False, device="cpu", precision="fp32", pooling=pooling,
                       batch_size=7).encode(TEXTS)
    encoder = openvino(tiny_model, cache_dir, pooling=pooling, batch_size=7)
    actual = encoder.encode(TEXTS)
    assert actual.shape == expected.shape and actual.dtype == np.float32
    assert cosines(expected, actual).min() > 0.9999
    np.testing.assert_allclose(actual, expected, atol=1e-4)
    assert (encoder.config["backend"], encoder.config["precision"]) == ("openvino", "fp32")


def test_bf16_is_close_and_the_export_is_made_once(tiny_model, tmp_path, monkeypatch):
    import embedclf.encode.backends.openvino as backend

    fp32 = openvino(tiny_model, tmp_path / "cache-a")
    X = fp32.encode(TEXTS)

    def irs():
        return [e.path for e in ExportStore().entries([fp32.ref.fingerprint]) if e.meta["recipe"] == backend.IR_RECIPE]

    (ir,) = irs()
    assert (ir / backend.MODEL_XML).exists() and not (tmp_path / "cache-a" / "onnx").exists()
    monkeypatch.setattr(backend, "_convert", lambda *args: pytest.fail("converted again"))
    bf16 = openvino(tiny_model, tmp_path / "cache-b", "bf16")  # another cache directory: the same export
    Y = bf16.encode(TEXTS)
    assert cosines(X, Y).min() > 0.99 and bf16.space.directory != fp32.space.directory
    assert irs() == [ir]


def test_int8_is_calibrated_on_the_texts_checked_once_and_reused(tiny_model, tmp_path, monkeypatch, capfd):
    import embedclf.encode.backends.openvino as backend

    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(tmp_path / "exports"))
    texts = sample_texts(120, seed=9)
    encoder = openvino(tiny_model, tmp_path / "cache", "int8")
    X = encoder.encode(texts)
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "openvino int8" in line]
    assert len(lines) == 1 and "cosine to fp32 on" in lines[0] and "held-out texts: mean 0." in lines[0]
    (entry,) = backend.int8_exports(encoder.ref)
    calibration, held_out = backend.calibration_split(texts)
    assert entry.meta["sample"] == sample_hash(calibration) and entry.meta["calibration_texts"] == 90
    assert entry.path.name.endswith(sample_hash(calibration)[:12]) and not set(calibration) & set(held_out)
    assert 0.98 <= entry.meta["min_cosine"] <= entry.meta["mean_cosine"] <= 1 + 1e-6
    assert encoder.config["quantization"] == OV_INT8_RECIPE and entry.meta["unquantised"] >= 1
    reference = Encoder(tiny_model, cache=False, device="cpu", precision="fp32").encode(texts)
    assert cosines(reference, X).min() > 0.98

    monkeypatch.setattr(backend, "_quantize", lambda *args: pytest.fail("quantised again"))
    other = openvino(tiny_model, tmp_path / "other-cache", "int8")
    other.encode(sample_texts(30, seed=11))  # other texts: the machine's int8 export, not a new calibration
    assert len(backend.int8_exports(encoder.ref)) == 1
    assert "openvino int8" not in capfd.readouterr().err, "the cosine is printed once per export"
    from embedclf.encode.backends import forget_loaded

    forget_loaded()
    monkeypatch.setitem(sys.modules, "nncf", None)  # running an export made before needs no nncf (slow to import)
    np.testing.assert_allclose(openvino(tiny_model, tmp_path / "third-cache", "int8").encode(texts[:5]), X[:5],
                               atol=1e-5)


def test_int8_below_the_threshold_is_refused(tiny_model, tmp_path, monkeypatch, capsys):
    """A quantisation that strays (its measured cosines stand in for a real one's) is kept and refused."""
    import embedclf.encode.backends.openvino as backend
    from embedclf.cli import main

    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(tmp_path / "exports"))
    monkeypatch.setattr(backend, "_quantize", lambda *args: {"mean_cosine": 0.991, "min_cosine": 0.9712})
    monkeypatch.setattr(backend, "ensure_ir", lambda ref, store: tmp_path)  # (what _quantize would read)
    data = tmp_path / "d.csv"
    data.write_text("text\n" + "\n".join(TEXTS[:60]) + "\n")  # (no commas)
    monkeypatch.setattr(sys, "argv", ["embedclf", "encode", str(data), "--model", tiny_model, "--cache",
                                      str(tmp_path / "cache"), "--backend", "openvino", "--precision", "int8"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if "openvino int8" in line and "error" not in line] == [
        f"embedclf: openvino int8 of {tiny_model}: cosine to fp32 on 31 held-out texts: mean 0.99100, min 0.97120"]
    errors = [line for line in err if "error" in line]
    assert errors == [f"embedclf: error: openvino int8 of {tiny_model}: min cosine 0.97120 to fp32 on 31 held-out "
                      f"texts is below 0.98; use --precision bf16 (or 'embedclf cache clear --model {tiny_model}' "
                      "and calibrate on other texts)"]
    # the verdict is kept with the export: refused again without quantising again
    monkeypatch.setattr(backend, "_quantize", lambda *args: pytest.fail("quantised again"))
    with pytest.raises(EmbedclfError, match="is below 0.98"):
        openvino(tiny_model, tmp_path / "cache", "int8").encode(TEXTS[:3])
    monkeypatch.setattr(backend, "INT8_MIN_COSINE", 0.97)  # the threshold is applied when the export is used
    assert openvino(tiny_model, tmp_path / "cache", "int8").settings.precision == "int8"


def test_precision_int8_picks_the_fastest_installed_backend(tiny_model, monkeypatch):
    assert EncoderSettings(tiny_model, precision="int8").resolve().backend == "openvino"
    monkeypatch.setitem(sys.modules, "nncf", None)
    assert EncoderSettings(tiny_model, precision="int8").resolve().backend == "onnx"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(EmbedclfError, match=r"--precision int8 needs an int8 backend; run: pip install "
                                            r"'embedclf\[openvino\]'"):
        EncoderSettings(tiny_model, precision="int8").resolve()
    with pytest.raises(EmbedclfError, match="--precision int8 runs on the CPU"):
        EncoderSettings(tiny_model, precision="int8", device="cuda")
    with pytest.raises(EmbedclfError, match="the openvino backend runs on the CPU"):
        EncoderSettings(tiny_model, backend="openvino", device="cuda")


def test_missing_openvino_gives_the_install_hint(tiny_model, tmp_path, monkeypatch, capsys):
    from embedclf.cli import main

    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(tmp_path / "exports"))
    monkeypatch.setitem(sys.modules, "openvino", None)
    data = tmp_path / "d.csv"
    data.write_text("text\ngood movie\n")
    monkeypatch.setattr(sys, "argv", ["embedclf", "encode", str(data), "--model", tiny_model, "--cache",
                                      str(tmp_path / "cache"), "--backend", "openvino", "--precision", "fp32"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert error_lines == ["embedclf: error: openvino is not installed; run: pip install 'embedclf[openvino]'"]
    assert ExportStore().entries() == [], "nothing is exported without openvino"


def test_the_compiled_model_is_kept_in_the_export_and_reused(tiny_model, tmp_path):
    """A new process or cache directory loads OpenVINO's compiled models from the export instead of
    compiling them again (about a second of every cold start on the real model): the dynamic one, and the
    static one of batches at the length limit."""
    import embedclf.encode.backends.openvino as backend
    from embedclf.encode.backends import forget_loaded

    texts = TEXTS + [" ".join(sample_texts(40, seed=9))]  # one past the tiny model's 128 tokens: static
    X = openvino(tiny_model, tmp_path / "cache-a", "bf16").encode(texts)
    forget_loaded()  # as a new process would
    second = openvino(tiny_model, tmp_path / "cache-b", "bf16")
    Y = second.encode(texts)
    for kind, folder in ((backend.UNFUSED, backend.UNFUSED_COMPILED_DIR), (backend.STATIC, backend.COMPILED_DIR)):
        compiled = second.embedder.compiled_model(kind)
        assert compiled.get_property("LOADED_FROM_CACHE") is True, kind
        assert list((second.embedder.directory / folder).iterdir()), folder
    np.testing.assert_array_equal(X, Y)


def test_int8_leaves_the_first_down_projections_then_all_then_the_attention_outputs_unquantised(
        tiny_model, tmp_path, monkeypatch):
    import openvino as ov

    import embedclf.encode.backends.openvino as backend

    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(tmp_path / "exports"))
    monkeypatch.setattr(backend, "INT8_MIN_COSINE", 1.5)  # no quantisation reaches it: all are tried
    monkeypatch.setattr(backend, "UNQUANTISED_FIRST", 1)  # (the tiny model has two layers)
    tried = []
    nncf_int8 = backend._nncf_int8
    monkeypatch.setattr(backend, "_nncf_int8", lambda model, items, ignored, s: tried.append(ignored) or
                        nncf_int8(model, items, ignored, s))
    with pytest.raises(EmbedclfError, match="is below 1.5"):
        openvino(tiny_model, tmp_path / "cache", "int8").encode(TEXTS)
    ref = EncoderSettings(tiny_model).resolve().ref
    (entry,) = backend.int8_exports(ref)
    graph = ov.Core().read_model(str(backend.ensure_ir(ref) / backend.MODEL_XML))
    projections, attention = backend._down_projections(graph), backend._attention_outputs(graph)
    assert len(projections) == len(attention) == 2 and not set(projections) & set(attention)
    assert all(".attention.output." in name for name in attention), "found by structure: named as in BERT"
    assert tried == [projections[:1], projections, projections + attention]
    assert entry.meta["unquantised"] == len(projections + attention)
    assert not list(entry.path.glob("attempt-*")) and (entry.path / backend.MODEL_XML).exists()


def test_batches_are_padded_to_a_multiple_of_four_tokens_or_to_the_limit_from_sixteen_below(tiny_model, tmp_path):
    fp32, int8 = (openvino(tiny_model, tmp_path / "cache", precision).embedder for precision in ("fp32", "int8"))
    # a batch's texts are capped at 2,048 tokens by its longest: 18 of 113 tokens, the fewest padded to 128
    assert int8.static_shape == (18, 128) and fp32.static_shape is None
    widths = [1, 4, 5, 29, 32, 33, 112, 113, 127, 128]
    assert [int8._width(n) for n in widths] == [4, 4, 8, 32, 32, 36, 112, 128, 128, 128]
    # fp32's one compilation has fused attention, fast at multiples of 16 from 128 on
    assert [fp32._width(n) for n in widths] == [4, 4, 8, 32, 32, 36, 112, 116, 128, 128]
    fp32.max_length = 256  # (past the tiny model's own limit: the widths of a longer model)
    assert [fp32._width(n) for n in (129, 144, 145, 250)] == [144, 144, 160, 256]
    fp32.max_length = 136  # 144 would be past it: a multiple of four
    assert fp32._width(130) == 132
    capped = openvino(tiny_model, tmp_path / "cache", "int8", max_length=126).embedder
    assert capped.static_shape is None and capped._width(126) == 126  # not past the limit, not a multiple of 16
    texts = ["one two three four five six seven", "one", "two three"]
    together = int8.encode(texts)  # one batch, padded past its longest
    alone = np.vstack([int8.encode([text]) for text in texts])
    assert cosines(together, alone).min() > 0.9999


def test_batches_at_the_limit_run_a_static_compilation_and_others_the_unfused_with_the_same_result(tiny_model,
                                                                                                  tmp_path):
    """Batches padded to the length limit run a compilation for that static shape (a short batch filled up with
    copies of its last text), every other batch a dynamic one without fused attention; a text comes out the
    same either way."""
    import embedclf.encode.backends.openvino as backend

    long_texts = [" ".join(sample_texts(40, seed=seed)) for seed in (9, 10, 11)]  # past the tiny model's 128
    texts = long_texts + ["a short one", "another short text here"]
    encoder = openvino(tiny_model, tmp_path / "cache", "bf16", batch_size=2, max_batch_tokens=256)  # 2 long, 1 long +
    # 1 short, 1 short
    embedder = encoder.embedder
    assert embedder.static_shape == (2, 128) and (encoder.token_counts(long_texts) > 128).all()
    assert embedder._compilation(2, 128) == embedder._compilation(1, 128) == backend.STATIC
    assert embedder._compilation(3, 128) == embedder._compilation(2, 124) == backend.UNFUSED
    assert set(embedder._compiled) == {backend.UNFUSED}, "opened without the static one: not every run needs it"
    X = embedder.encode(texts)
    assert set(embedder._compiled) == {backend.UNFUSED, backend.STATIC}
    assert cosines(embedder.encode(long_texts[:1]), X[:1]).min() > 0.9999  # one text, filled up to two
    for streams in (embedder.streams, 1):  # asynchronous queues, and one request at a time
        embedder.streams = streams
        assert cosines(embedder.encode(texts[::-1]), X[::-1]).min() > 0.9999
        embedder._compilation = lambda rows, width: backend.UNFUSED  # every batch dynamic
        assert cosines(embedder.encode(texts), X).min() > 0.9999
        del embedder._compilation
    fp32 = openvino(tiny_model, tmp_path / "cache", "fp32").embedder  # one compilation: memory
    assert fp32._compilation(2, 128) == fp32._compilation(32, 8) == backend.FUSED
    assert set(fp32._compiled) == {backend.FUSED}


@pytest.mark.real_model
def test_real_model_int8_is_close_to_fp32_in_batches_padded_to_32_tokens(tmp_path):
    """The default model's int8 on GoEmotions texts of exactly 32 tokens, 16 to a batch: OpenVINO's fused
    attention got such batches wrong (cosine .37-.65), texts of other lengths were right; they run unfused."""
    from embedclf.data import load_dataset
    from tests.conftest import shared_file

    ds = load_dataset(shared_file("goemotions", "dev.tsv"), ["text"], columns=["text", "labels", "id"])
    texts = list(dict.fromkeys(ds.texts))
    fp32 = Encoder(cache=False, backend="openvino", precision="fp32", batch_size=16)
    tokens = fp32.token_counts(texts)
    int8 = Encoder(cache=tmp_path / "cache", backend="openvino", precision="int8", batch_size=16)
    int8.encode(texts[:400])  # calibrated on these
    at_width = [t for t, n in zip(texts, tokens) if n == 32][:64]
    others = [t for t, n in zip(texts, tokens) if n in (12, 45)][:32]
    assert len(at_width) == 64
    similarity = cosines(fp32.encode(at_width + others), int8.encode(at_width + others))
    assert similarity.min() >= 0.98 and similarity.mean() >= 0.995, (similarity.min(), similarity.mean())


def test_a_server_warms_up_both_compilations_so_no_request_pays_for_one(tiny_model, tmp_path, monkeypatch):
    """``serve`` loads the model and runs a short text and one at the length limit before it answers: the first
    request with a long text does not wait for OpenVINO to compile (or load) the static model."""
    pytest.importorskip("fastapi")
    import embedclf.encode.backends.openvino as backend
    from embedclf.serve.service import Service

    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(tmp_path / "exports"))
    service = Service.prepare(EncoderSettings(tiny_model, device="cpu", backend="openvino", precision="bf16")).load()
    embedder = service.encoder.embedder
    assert embedder.static_shape and set(embedder._compiled) == {backend.UNFUSED, backend.STATIC}
