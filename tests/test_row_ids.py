"""Rows keep their identity: the input's id column (``--id-col``, or a column named ``id``) is carried into
``encode --out x.parquet`` (one row per input row, empty texts as NaN vectors) and into predict's table,
on the local engine and in what the Ray engine's readers send back."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from embedclf.data import DataOptions
from embedclf.encode.encoder import Encoder
from embedclf.errors import EmbedclfError

DATA = "doc,text,topic\nd1,good movie,a\nd2,,b\nd3,bad film,b\nd4,great love,NaN\nd5,terrible hate,b\nd6,fine,a\n"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "embedclf", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_encode_parquet_carries_the_id_column_and_one_row_per_input_row(tiny_model, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text(DATA)
    common = [data, "--model", tiny_model, "--device", "cpu", "--precision", "fp32", "--no-cache"]
    assert cli("encode", *common, "--out", tmp_path / "X.npy").returncode == 0
    done = cli("encode", *common, "--out", tmp_path / "X.parquet", "--id-col", "doc")
    assert done.returncode == 0, done.stderr
    table = pd.read_parquet(tmp_path / "X.parquet")
    assert list(table.columns) == ["row", "doc", "vector"]
    assert table["row"].tolist() == [1, 2, 3, 4, 5, 6] and table["doc"].tolist() == ["d1", "d2", "d3", "d4", "d5", "d6"]
    vectors = np.stack(table["vector"].to_numpy())
    np.testing.assert_array_equal(vectors, np.load(tmp_path / "X.npy"))
    assert np.isnan(vectors[1]).all() and not np.isnan(vectors[[0, 2, 3, 4, 5]]).any()


def test_a_column_named_id_is_carried_without_being_asked_for_and_a_wrong_one_is_refused(tiny_model, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": 7, "text": "good movie"}\n{"id": "x-8", "text": "bad film"}\n')
    common = [data, "--model", tiny_model, "--device", "cpu", "--no-cache"]
    done = cli("encode", *common, "--out", tmp_path / "X.parquet")
    assert done.returncode == 0, done.stderr
    assert pd.read_parquet(tmp_path / "X.parquet")["id"].tolist() == ["7", "x-8"]  # mixed kinds: kept as text
    for option, message in [("nope", "d.jsonl: no column 'nope' for --id-col"),
                            ("text", "--id-col 'text' is also a text or label column")]:
        refused = cli("encode", *common, "--out", tmp_path / "Y.parquet", "--id-col", option)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert message in refused.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "Y.parquet").exists()
    refused = cli("encode", *common, "--out", tmp_path / "Y.txt")
    assert refused.returncode == 2 and "--out must end in .npy (the matrix) or .parquet" in refused.stderr


def test_predictions_carry_the_id_of_each_row(tiny_model, tmp_path):
    from embedclf.engines import predict_data
    from embedclf.fit import fit_classifier
    from embedclf.heads import make_head

    data = tmp_path / "d.csv"
    data.write_text(DATA)
    options = DataOptions(["text"], ["topic"], id_col="doc")
    encoder = Encoder(tiny_model, cache=False, device="cpu")
    fit_classifier(options.load(data, require_labels=True), make_head("logreg"), encoder,
                   data_options=options).save(tmp_path / "model")
    predict_data(tmp_path / "model", data, tmp_path / "p.csv", cache=False, data_overrides=dict(id_col="doc"))
    frame = pd.read_csv(tmp_path / "p.csv")
    assert list(frame.columns[:3]) == ["row", "doc", "topic"]
    assert frame["row"].tolist() == [1, 3, 4, 5, 6] and frame["doc"].tolist() == ["d1", "d3", "d4", "d5", "d6"]
    predict_data(tmp_path / "model", data, tmp_path / "q.csv", cache=False)  # ids are the file's, not the model's
    assert list(pd.read_csv(tmp_path / "q.csv").columns[:2]) == ["row", "topic"]
    with pytest.raises(EmbedclfError, match="no column 'nope' for --id-col"):
        predict_data(tmp_path / "model", data, tmp_path / "r.csv", cache=False, data_overrides=dict(id_col="nope"))
    assert not (tmp_path / "r.csv").exists()


def test_the_ray_reader_sends_back_ids_and_labels_read_as_missing(tmp_path):
    """What a Ray read task returns (a plain function: no Ray needed), and the summary the driver prints."""
    from embedclf.engines.ray.reading import _read_file
    from embedclf.engines.results import EncodeResult

    data = tmp_path / "d.csv"
    data.write_text(DATA)
    table, stats = _read_file(str(data), DataOptions(["text"], ["topic"], id_col="doc"), True)
    assert table.column_names == ["row", "text", "id"] and table.column("id").to_pylist() == ["d1", "d3", "d5", "d6"]
    assert stats == (6, 4, 1, 1, {"NaN": 1}, "doc", ["d1", "d2", "d3", "d4", "d5", "d6"])
    result = EncodeResult("ray", str(data), rows=6, texts=4, skipped_empty=1, skipped_unlabelled=1,
                          labels_read_as_missing=stats[4], id_col="doc", row_ids=stats[6])
    assert result.read_line() == (f"read 6 rows from {data}; 4 texts; 1 skipped (empty text); 1 skipped (no label); "
                                  "1 labels read as missing (--keep-na-labels keeps them as classes): 'NaN'")
    assert result.input_ids() == ("doc", ["d1", "d2", "d3", "d4", "d5", "d6"])
