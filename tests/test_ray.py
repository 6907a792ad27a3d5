"""The Ray engine on a local Ray instance: same vectors as the local engine, in input order, into the cache."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from embedclf.data import DataOptions, load_dataset  # noqa: E402
from embedclf.encode.cache import text_key  # noqa: E402
from embedclf.encode.distributed import EncodeActor, encode_with_ray, load_matrix  # noqa: E402
from embedclf.encode.encoder import Encoder  # noqa: E402
from embedclf.encode.raydata import numbered_texts, ray_session  # noqa: E402
from embedclf.errors import EmbedclfError  # noqa: E402
from embedclf.inference_ray import load_predictions, predict_with_ray  # noqa: E402
from tests.conftest import shared_file  # noqa: E402

GO_COLUMNS = ["text", "labels", "id"]
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


def tiny(tiny_model) -> dict:
    return dict(model=tiny_model, device="cpu", precision="fp32")


def shard_rows(report) -> np.ndarray:
    return pq.read_table(report.out_dir, columns=["row"]).column("row").to_numpy()


def test_vectors_equal_the_local_engine_in_input_order_and_fill_the_cache(local_ray, tiny_model, go_slice, tmp_path):
    texts = load_dataset(go_slice, ["text"], columns=GO_COLUMNS).texts
    report = encode_with_ray(go_slice, tiny(tiny_model), text_cols=["text"], columns=GO_COLUMNS, actors=2,
                             batch_size=64, cache_root=tmp_path / "cache")
    assert (report.rows, report.texts, report.skipped_empty, report.dimension) == (300, len(texts), 0, 32)
    assert sorted(shard_rows(report)) == list(range(300))  # every row exactly once
    table = pq.read_table(report.out_dir).sort_by("row")
    assert table.column("key").to_pylist() == [text_key(t) for t in texts]

    X = load_matrix(report)
    local = Encoder(tiny_model, cache=False, device="cpu", precision="fp32").encode(texts)
    np.testing.assert_allclose(X, local, atol=1e-5)

    assert report.imported == len(set(texts)) and report.cache_dir.startswith(str(tmp_path / "cache"))
    again = Encoder(tiny_model, cache=tmp_path / "cache", device="cpu", precision="fp32")
    np.testing.assert_array_equal(again.encode(texts), X)
    assert again.last_report.encoded == 0 and again.last_report.cached == len(set(texts))


def test_a_killed_actor_is_restarted_and_every_row_comes_back_once(local_ray, tiny_model, go_slice, tmp_path):
    # a directory of two Parquet files: row ids run on across files, in sorted file order
    frame = load_dataset(go_slice, ["text"], columns=GO_COLUMNS)
    import pandas as pd

    folder = tmp_path / "parquet"
    folder.mkdir()
    pd.DataFrame({"text": frame.texts[:150]}).to_parquet(folder / "a.parquet")
    pd.DataFrame({"text": frame.texts[150:]}).to_parquet(folder / "b.parquet")
    marker = tmp_path / "crashed"

    class CrashOnce(EncodeActor):
        def __call__(self, batch):
            if not marker.exists():  # the first batch of the first attempt: die like a killed process
                marker.touch()
                os._exit(1)
            return super().__call__(batch)

    report = encode_with_ray(folder, tiny(tiny_model), actors=2, batch_size=50, cache_root=False,
                             out_dir=tmp_path / "out", actor_cls=CrashOnce)
    assert marker.exists()
    rows = shard_rows(report)
    assert len(rows) == 300 and sorted(rows) == list(range(300))
    local = Encoder(tiny_model, cache=False, device="cpu", precision="fp32").encode(frame.texts)
    np.testing.assert_allclose(load_matrix(tmp_path / "out"), local, atol=1e-5)


def test_rows_and_texts_match_the_local_reader(local_ray, tmp_path):
    csv_path = tmp_path / "t.csv"
    csv_path.write_text('title,body,n\nGood,"a, quoted\nbody",1\n,,2\n  Bad  ,film,3\n"say ""hi""",,4\nNA,007,5\n')
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"title": "x", "body": null}\r\n{"title": "", "body": ""}\n\n{"title": "1e5", "body": 3}\n'
                     '{"title": "a\u2028line separator", "body": "007"}\n', encoding="utf-8")
    for path in (csv_path, jsonl):
        local = load_dataset(path, ["title", "body"])
        numbered = numbered_texts(path, ["title", "body"])
        got = pa.concat_tables(ray.get(numbered.dataset.to_arrow_refs())).sort_by("row")
        assert got.column("text").to_pylist() == local.texts
        assert got.column("row").to_pylist() == local.rows.tolist()
        assert (numbered.rows, numbered.skipped_empty) == (local.n_rows, local.skipped_empty)


def test_a_worker_with_other_model_files_fails_clearly(local_ray, tiny_model, tmp_path):
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model, other)
    (other / "config.json").write_text((other / "config.json").read_text().replace("{", '{"note": "other",', 1))
    data = tmp_path / "d.csv"
    data.write_text("text\nhello\nworld\n")

    class OtherFiles(EncodeActor):
        def __init__(self, encoder_kwargs, expected):
            super().__init__(encoder_kwargs | {"model": str(other)}, expected)

    with pytest.raises(EmbedclfError, match="encodes differently from the driver: fingerprint") as error:
        encode_with_ray(data, tiny(tiny_model), actors=1, cache_root=False, out_dir=tmp_path / "out",
                        actor_cls=OtherFiles)
    assert "\n" not in str(error.value)


def test_predict_with_ray_writes_what_embedclf_predict_writes(local_ray, tiny_model, go_slice, tmp_path):
    from embedclf.fit import fit_classifier
    from embedclf.heads import make_head
    from embedclf.inference import predict_dataset, predictions_frame
    from embedclf.model import TextClassifier

    options = DataOptions(["text"], ["labels"], columns=GO_COLUMNS, label_sep=",")
    train = options.load(go_slice, require_labels=True)
    encoder = Encoder(tiny_model, cache=tmp_path / "cache", device="cpu", precision="fp32")
    fit_classifier(train, make_head("logreg"), encoder, data_options=options).save(tmp_path / "model")

    report = predict_with_ray(tmp_path / "model", go_slice, tmp_path / "predictions", actors=2)
    assert report.texts == 300
    got = load_predictions(tmp_path / "predictions")
    classifier = TextClassifier.load(tmp_path / "model", cache=tmp_path / "cache", device="cpu")
    dataset = options.load(go_slice, labels=False)
    scores, Y, added = predict_dataset(classifier, dataset)
    expected = predictions_frame(classifier, dataset, Y, scores, added)
    assert list(got.columns) == list(expected.columns)
    assert got["row"].tolist() == expected["row"].tolist() == list(range(1, 301))
    assert got["labels"].tolist() == expected["labels"].tolist()
    np.testing.assert_allclose(got.iloc[:, 2:].to_numpy(), expected.iloc[:, 2:].to_numpy(), atol=1e-4)


def test_refusals_are_one_line(local_ray, tiny_model, go_slice, tmp_path):
    with pytest.raises(EmbedclfError, match="no column 'body'.*name its columns with --columns"):
        encode_with_ray(go_slice, tiny(tiny_model), text_cols=["body"], cache_root=False, out_dir=tmp_path / "o")
    with pytest.raises(EmbedclfError, match="need 400 CPUs"):
        encode_with_ray(go_slice, tiny(tiny_model), text_cols=["text"], columns=GO_COLUMNS, actors=400,
                        cache_root=False, out_dir=tmp_path / "o")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": oops}\n')
    with pytest.raises(EmbedclfError, match=r"bad.jsonl: line 2: invalid JSON \(Expecting value\)$"):
        encode_with_ray(bad, tiny(tiny_model), cache_root=False, out_dir=tmp_path / "o")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.parquet").write_bytes(b"")
    with pytest.raises(EmbedclfError, match="not empty"):
        encode_with_ray(go_slice, tiny(tiny_model), text_cols=["text"], columns=GO_COLUMNS, cache_root=False,
                        out_dir=tmp_path / "full")


def test_without_ray_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(EmbedclfError, match=r"^Ray is not installed; run: pip install 'embedclf\[ray\]'$"):
        encode_with_ray(tmp_path / "any.csv", {}, cache_root=False)
