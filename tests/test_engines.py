"""The engine interface without Ray: settings checked with the CLI's words, the local engine's summary lines,
directories read as one data set, predictions written as a table; and the actors' settings rule."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from embedclf.data import DataOptions, load_dataset
from embedclf.encode.encoder import Encoder
from embedclf.encode.settings import EncoderSettings
from embedclf.engines import EngineKind, EngineSettings, encode_data, predict_data
from embedclf.errors import EmbedclfError


@pytest.mark.parametrize("fields, message", [
    (dict(kind="spark"), "--engine 'spark' is not one of: local, ray"),
    (dict(kind="ray", actors=0), "--actors must be at least 1"),
    (dict(kind="ray", gpus_per_actor=-1), "--gpus-per-actor must be 0 or more"),
    (dict(kind="local", actors=3), "--address, --actors and --gpus-per-actor are for --engine ray"),
    (dict(address="auto"), "--address, --actors and --gpus-per-actor are for --engine ray"),
])
def test_engine_settings_refuse_with_the_option_named(fields, message):
    with pytest.raises(EmbedclfError, match=message):
        EngineSettings(**fields)


def test_engine_settings_are_frozen_hashable_and_take_the_enum():
    ray = EngineSettings(EngineKind.ray, actors=4)
    assert ray == EngineSettings("ray", actors=4) and ray.kind is EngineKind.ray
    assert hash(ray) == hash(EngineSettings("ray", actors=4)) and EngineSettings().kind == "local"
    with pytest.raises(AttributeError):
        ray.actors = 3


def test_importing_the_engines_imports_neither_ray_nor_torch():
    import subprocess

    code = "import sys, embedclf.engines; print(sorted(m for m in ('ray', 'torch') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


def test_local_encode_reads_a_directory_as_one_file_and_says_what_it_did(tiny_model, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.csv").write_text("title,body,topic\nGood,movie,a\n,,b\n")
    (folder / "b.jsonl").write_text('{"title": "Bad", "body": "film", "topic": "b"}\n'
                                    '{"title": "Good", "body": "movie"}\n')
    (folder / ".hidden.csv").write_text("not,data\n")
    options = DataOptions(text_cols=["title", "body"], label_cols=["topic"])
    settings = EncoderSettings(tiny_model, device="cpu", precision="fp32")
    result = encode_data(folder, options, settings, cache=tmp_path / "cache")
    assert (result.rows, result.texts, result.skipped_empty, result.skipped_unlabelled) == (4, 2, 1, 1)
    assert result.dataset.rows.tolist() == [0, 2]  # counted across the files, in sorted order
    read, encoded, cached, nan_rows = result.lines()
    assert read.startswith(f"read 4 rows from {folder}; 2 texts; 1 skipped (empty text); 1 skipped (no label)")
    assert encoded.startswith(f"encoded with {tiny_model} (") and "mean pooling" in encoded
    assert "torch fp32: 2 texts, 2 distinct, 0 cached, 2 encoded" in encoded
    assert cached.startswith(f"embeddings cached in {tmp_path / 'cache'}") and cached.endswith("(32 dims)")
    assert nan_rows == "matrix keeps one row per input row: 1 row with empty text, 1 row with no label written as NaN"
    alone = Encoder(settings, cache=False).encode(["Good\nmovie", "Bad\nfilm"])
    matrix = result.matrix()  # one row per input row: rows 1 (empty) and 3 (no label) are NaN
    assert matrix.shape == (4, 32) and np.isnan(matrix[[1, 3]]).all() and not np.isnan(matrix[[0, 2]]).any()
    np.testing.assert_allclose(matrix[[0, 2]], alone, atol=1e-6)
    again = encode_data(folder / "a.csv", options, settings, cache=tmp_path / "cache", check_fidelity=1)
    assert "1 cached, 0 encoded" in again.lines()[1] and again.lines()[-1].startswith("fidelity of torch fp32")
    with pytest.raises(EmbedclfError, match="--out-dir is for --engine ray"):
        encode_data(folder, options, settings, out_dir=tmp_path / "o")
    with pytest.raises(EmbedclfError, match="--check-fidelity runs with --engine local"):
        encode_data(folder, options, settings, EngineSettings("ray"), check_fidelity=3)


def test_encode_out_keeps_one_row_per_input_row_with_nan_for_empty_texts(tiny_model, tmp_path):
    import subprocess

    data = tmp_path / "d.csv"
    data.write_text("text\ngood movie\n\"\"\nbad film\n\"  \"\nnews\n")
    settings = EncoderSettings(tiny_model, device="cpu", precision="fp32")
    result = encode_data(data, DataOptions(), settings, cache=False)
    assert (result.rows, result.texts, result.skipped_empty) == (5, 3, 2)
    assert "matrix keeps one row per input row: 2 rows with empty text written as NaN" in result.lines()
    alone = Encoder(settings, cache=False).encode(["good movie", "bad film", "news"])
    matrix = result.matrix()
    assert matrix.shape == (5, 32) and matrix.dtype == np.float32
    assert np.isnan(matrix[[1, 3]]).all() and not np.isnan(matrix[[0, 2, 4]]).any()
    np.testing.assert_allclose(matrix[[0, 2, 4]], alone, atol=1e-6)
    out = tmp_path / "X.npy"
    cli = subprocess.run([sys.executable, "-m", "embedclf", "encode", data, "--model", tiny_model, "--device", "cpu",
                          "--precision", "fp32", "--no-cache", "--out", out], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert "2 rows with empty text written as NaN" in cli.stderr and "wrote 5 x 32 matrix" in cli.stderr
    np.testing.assert_allclose(np.load(out), matrix, atol=1e-6, equal_nan=True)


def test_a_ray_runs_matrix_also_keeps_one_row_per_input_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from embedclf.engines.results import EncodeResult

    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 2)
    (tmp_path / "out").mkdir()
    pq.write_table(pa.table({"row": [4, 0], "vector": column[:2]}), tmp_path / "out" / "b.parquet")
    pq.write_table(pa.table({"row": [2], "vector": column[2:]}), tmp_path / "out" / "a.parquet")
    result = EncodeResult("ray", "d.csv", rows=5, texts=3, skipped_empty=2, out_dir=str(tmp_path / "out"), dimension=2)
    matrix = result.matrix()
    np.testing.assert_array_equal(matrix, [[2, 3], [np.nan, np.nan], [4, 5], [np.nan, np.nan], [0, 1]])
    assert result.nan_rows_line() == "matrix keeps one row per input row: 2 rows with empty text written as NaN"


def test_local_predict_writes_a_table_with_the_model_and_the_callers_options(tiny_model, tmp_path):
    from embedclf.fit import fit_classifier
    from embedclf.heads import make_head

    data = tmp_path / "d.csv"
    data.write_text("text,topic\ngood movie,a\nbad film,b\ngreat love,a\nterrible hate,b\n")
    options = DataOptions(["text"], ["topic"])
    encoder = Encoder(tiny_model, cache=tmp_path / "cache", device="cpu")
    fit_classifier(options.load(data, require_labels=True), make_head("logreg"), encoder,
                   data_options=options).save(tmp_path / "model")
    headerless = tmp_path / "h.tsv"
    headerless.write_text("good movie\tx\n\tx\nbad film\tx\n")
    result = predict_data(tmp_path / "model", headerless, tmp_path / "p.csv", cache=False,
                          data_overrides=dict(columns=["text", "other"]), encoder_overrides=dict(device="cpu"))
    frame = pd.read_csv(tmp_path / "p.csv")
    assert frame["row"].tolist() == [1, 3] and set(frame["topic"]) <= {"a", "b"}
    assert result.settings.device == "cpu" and result.encoding.cache_dir is None  # cache=False: no cache
    assert result.lines() == [f"read 3 rows from {headerless}; 2 texts; 1 skipped (empty text)",
                              f"embeddings: {result.encoding.summary(result.settings.max_length)}; hybrid features "
                              "with 12 TF-IDF terms",  # logreg: auto is hybrid; no word in 2 texts: all 12 kept
                              f"wrote 2 predictions to {tmp_path / 'p.csv'}"]
    with pytest.raises(EmbedclfError, match="output must end in one of"):
        predict_data(tmp_path / "model", headerless, tmp_path / "p.txt")


def test_actor_settings_are_resolved_for_the_actors_hardware(tiny_model):
    from embedclf.engines.ray.pool import actor_settings

    settings = EncoderSettings(tiny_model)
    gpu = actor_settings(settings, gpus_per_actor=1)
    assert (gpu.device, gpu.precision, gpu.resolved) == ("cuda", "fp16", True)  # without a GPU on this machine
    cpu = actor_settings(settings, gpus_per_actor=0)
    assert (cpu.device, cpu.precision) == ("cpu", "fp32") and cpu.cache_key() != gpu.cache_key()
    assert actor_settings(EncoderSettings(tiny_model, precision="bf16"), 0.5).precision == "bf16"
    with pytest.raises(EmbedclfError, match="--gpus-per-actor needs --backend torch"):
        actor_settings(EncoderSettings(tiny_model, backend="onnx"), 1)
    with pytest.raises(EmbedclfError, match="--device cuda with --engine ray needs --gpus-per-actor"):
        actor_settings(EncoderSettings(tiny_model, device="cuda"), 0)


def test_a_directory_reads_like_its_files_one_after_the_other(tmp_path):
    from embedclf.engines.inputs import read_inputs

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "1.csv").write_text("text,y\nx,a\ny,b|c\n")
    (tmp_path / "d" / "2.csv").write_text("text,y\nz,a\n")
    data = read_inputs(tmp_path / "d", DataOptions(label_cols=["y"], label_sep="|"))
    first = load_dataset(tmp_path / "d" / "1.csv", label_cols=["y"], label_sep="|")
    assert data.texts == ["x", "y", "z"] and data.rows.tolist() == [0, 1, 2] and data.n_rows == 3
    assert data.targets[0].labels == first.targets[0].labels + [["a"]] and data.task == "multilabel"
    with pytest.raises(EmbedclfError, match="no data files in this directory"):
        (tmp_path / "empty").mkdir()
        read_inputs(tmp_path / "empty", DataOptions())
