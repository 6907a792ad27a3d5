"""The Ray engine on a local Ray instance: the local engine's texts and vectors, in input order, into the cache."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import replace

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from embedclf.data import DataOptions  # noqa: E402
from embedclf.encode.cache import text_key  # noqa: E402
from embedclf.encode.encoder import Encoder  # noqa: E402
from embedclf.encode.settings import EncoderSettings  # noqa: E402
from embedclf.engines import EngineSettings, encode_data, predict_data  # noqa: E402
from embedclf.engines.inputs import read_inputs  # noqa: E402
from embedclf.engines.ray import load_predictions  # noqa: E402
from embedclf.engines.ray.encode import encode as encode_on_ray  # noqa: E402
from embedclf.engines.ray.pool import EncodeActor  # noqa: E402
from embedclf.engines.ray.reading import numbered_texts  # noqa: E402
from embedclf.engines.ray.session import ray_session  # noqa: E402
from embedclf.errors import EmbedclfError  # noqa: E402
from tests.conftest import shared_file  # noqa: E402

GO = DataOptions(["text"], columns=["text", "labels", "id"])
RAY = EngineSettings("ray", actors=2)
# Ray 2.60's DataContext sets its own deprecated fields when first created
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (start-up takes seconds); 4 logical CPUs so 2 actors always fit."""
    with ray_session(num_cpus=4) as startup:
        yield startup


@pytest.fixture
def go_slice(tmp_path):
    """The first 300 lines of GoEmotions' dev set, as a headerless TSV."""
    lines = shared_file("goemotions", "dev.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[:300]
    path = tmp_path / "go.tsv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def tiny(tiny_model, **fields) -> EncoderSettings:
    return EncoderSettings(tiny_model, device="cpu", precision="fp32", **fields)


def test_vectors_equal_the_local_engine_in_input_order_and_fill_the_cache(local_ray, tiny_model, go_slice, tmp_path):
    local = encode_data(go_slice, GO, tiny(tiny_model), cache=False)
    result = encode_data(go_slice, GO, tiny(tiny_model, chunk_size=64), RAY, cache=tmp_path / "cache")
    assert (result.rows, result.texts, result.skipped_empty, result.dimension) == (300, local.texts, 0, 32)
    table = pq.read_table(result.out_dir).sort_by("row")
    assert table.column("row").to_pylist() == list(range(300))  # every row exactly once
    assert table.column("key").to_pylist() == [text_key(t) for t in local.dataset.texts]
    np.testing.assert_allclose(result.matrix(), local.matrix(), atol=1e-5)

    assert result.imported == len(set(local.dataset.texts)) and result.cache_dir.startswith(str(tmp_path / "cache"))
    again = Encoder(tiny(tiny_model), cache=tmp_path / "cache")
    np.testing.assert_array_equal(again.encode(local.dataset.texts), result.matrix())
    assert again.last_report.encoded == 0
    read, encoded, shards, imported = result.lines()
    assert read == f"read 300 rows from {go_slice}; 300 texts"
    assert encoded.startswith(f"encoded with {tiny_model} (") and "torch fp32: 300 texts on 2 Ray actors" in encoded
    assert shards.startswith(f"vectors in {result.out_dir} (Parquet") and imported.startswith("imported 300 new")


def test_a_killed_actor_is_restarted_and_every_row_comes_back_once(local_ray, tiny_model, go_slice, tmp_path):
    # a directory of two Parquet files: row ids run on across files, in sorted file order
    import pandas as pd

    texts = GO.load(go_slice).texts
    folder = tmp_path / "parquet"
    folder.mkdir()
    pd.DataFrame({"text": texts[:150]}).to_parquet(folder / "a.parquet")
    pd.DataFrame({"text": texts[150:]}).to_parquet(folder / "b.parquet")
    marker = tmp_path / "crashed"

    class CrashOnce(EncodeActor):
        def __call__(self, batch):
            if not marker.exists():  # the first batch of the first attempt: die like a killed process
                marker.touch()
                os._exit(1)
            return super().__call__(batch)

    result = encode_on_ray(folder, DataOptions(), tiny(tiny_model, chunk_size=50), RAY, cache=False,
                           out_dir=tmp_path / "out", actor_cls=CrashOnce)
    assert marker.exists() and result.cache_dir is None
    rows = pq.read_table(tmp_path / "out", columns=["row"]).column("row").to_numpy()
    assert len(rows) == 300 and sorted(rows) == list(range(300))
    local = Encoder(tiny(tiny_model), cache=False).encode(texts)
    np.testing.assert_allclose(result.matrix(), local, atol=1e-5)


def test_rows_and_texts_are_the_local_readers(local_ray, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.csv").write_text('title,body,n\nGood,"a, quoted\nbody",1\n,,2\n  Bad  ,film,3\n"say ""hi""",,4\n'
                                  'NA,007,5\n')
    (folder / "b.jsonl").write_text('{"title": "x", "body": null}\r\n{"title": "", "body": ""}\n\n{"title": "1e5", '
                                    '"body": 3}\n{"title": "a\u2028line separator", "body": "007"}\n', encoding="utf-8")
    options = DataOptions(["title", "body"])
    local = read_inputs(folder, options)
    numbered = numbered_texts(folder, options, rows_per_block=2)
    got = pa.concat_tables(ray.get(numbered.dataset.to_arrow_refs())).sort_by("row")
    assert got.column("text").to_pylist() == local.texts and got.column("row").to_pylist() == local.rows.tolist()
    assert (numbered.rows, numbered.skipped_empty) == (local.n_rows, local.skipped_empty) == (9, 2)


def test_a_worker_with_other_model_files_fails_clearly(local_ray, tiny_model, tmp_path):
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model, other)
    (other / "config.json").write_text((other / "config.json").read_text().replace("{", '{"note": "other",', 1))
    data = tmp_path / "d.csv"
    data.write_text("text\nhello\nworld\n")

    class OtherFiles(EncodeActor):
        def __init__(self, settings, expected):
            super().__init__(replace(settings, model=str(other)), expected)

    with pytest.raises(EmbedclfError, match="encodes differently from the driver: fingerprint") as error:
        encode_on_ray(data, DataOptions(), tiny(tiny_model), replace(RAY, actors=1), cache=False,
                      out_dir=tmp_path / "out", actor_cls=OtherFiles)
    assert "\n" not in str(error.value)


def test_predict_on_ray_writes_what_local_predict_writes_on_the_device_asked_into_the_cache(
        local_ray, tiny_model, go_slice, tmp_path):
    from embedclf.fit import fit_classifier
    from embedclf.heads import make_head

    options = DataOptions(["text"], ["labels"], columns=GO.columns, label_sep=",")
    fit_classifier(options.load(go_slice, require_labels=True), make_head("logreg"),
                   Encoder(tiny(tiny_model), cache=tmp_path / "fit-cache"), data_options=options).save(tmp_path / "m")
    on_cpu = dict(device="cpu")
    predict_data(tmp_path / "m", go_slice, tmp_path / "local.parquet", cache=False, encoder_overrides=on_cpu)
    result = predict_data(tmp_path / "m", go_slice, tmp_path / "p", RAY, cache=tmp_path / "cache",
                          encoder_overrides=on_cpu)
    assert result.texts == 300 and result.settings.device == "cpu"
    got, expected = load_predictions(tmp_path / "p"), local_table(tmp_path / "local.parquet")
    assert list(got.columns) == list(expected.columns) and not any(c in got for c in ("key", "vector"))
    assert got["row"].tolist() == expected["row"].tolist() == list(range(1, 301))
    assert got["id"].tolist() == expected["id"].tolist()  # GoEmotions' comment ids, carried along
    assert got["labels"].tolist() == expected["labels"].tolist()
    np.testing.assert_allclose(got.iloc[:, 3:].to_numpy(), expected.iloc[:, 3:].to_numpy(), atol=1e-4)
    # the actors' vectors are in the cache asked for: a local run there encodes nothing
    assert result.lines()[-1].startswith(f"imported {result.imported:,} new vectors into the cache, {tmp_path}")
    cached = predict_data(tmp_path / "m", go_slice, tmp_path / "again.csv", cache=tmp_path / "cache",
                          encoder_overrides=on_cpu)
    assert cached.encoding.encoded == 0 and cached.encoding.cached == result.imported
    with pytest.raises(EmbedclfError, match="--device cuda with --engine ray needs --gpus-per-actor"):
        predict_data(tmp_path / "m", go_slice, tmp_path / "p2", RAY, encoder_overrides=dict(device="cuda"))


def local_table(path):
    import pandas as pd

    return pd.read_parquet(path)


def test_refusals_are_one_line(local_ray, tiny_model, go_slice, tmp_path):
    def encode(path, options=GO, engine=RAY, **kwargs):
        return encode_data(path, options, tiny(tiny_model), engine, cache=False, **kwargs)

    with pytest.raises(EmbedclfError, match=r"go.tsv: no column 'body' \(columns: .*\); headerless file\? name its"):
        encode(go_slice, DataOptions(["body"]), out_dir=tmp_path / "o")
    with pytest.raises(EmbedclfError, match="need 400 CPUs"):
        encode(go_slice, engine=replace(RAY, actors=400), out_dir=tmp_path / "o")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": oops}\n')
    with pytest.raises(EmbedclfError, match=r"bad.jsonl: line 2: invalid JSON \(Expecting value\)$"):
        encode(bad, DataOptions(), out_dir=tmp_path / "o")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.parquet").write_bytes(b"")
    with pytest.raises(EmbedclfError, match="not empty"):
        encode(go_slice, out_dir=tmp_path / "full")


def test_without_ray_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(EmbedclfError, match=r"^Ray is not installed; run: pip install 'embedclf\[ray\]'$"):
        encode_data(tmp_path / "any.csv", DataOptions(), EncoderSettings(), EngineSettings("ray"), cache=False)
