"""--long-text chunk: overlapping windows encoded through the cache, pooled, reported, keyed apart."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedclf.encode.encoder import Encoder
from embedclf.encode.long_text import LongTextEncoder, LongTextSettings, windows
from embedclf.errors import EmbedclfError
from tests.conftest import WORDS
from tests.test_model import run

LONG = " ".join(WORDS * 2)  # about 100 word tokens
SHORT = ["i am so happy", "the market fell"]


def tiny(tiny_model, tmp_path, **settings):
    return Encoder(tiny_model, cache=tmp_path / "cache", device="cpu", precision="fp32", max_length=16, **settings)


def test_windows_overlap_and_cover_the_text(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    spans = tokenizer(LONG, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    parts = windows(LONG, spans, 16)
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in parts]
    assert len(parts) > 5 and max(lengths) <= 14
    assert LONG.startswith(parts[0]) and LONG.endswith(parts[-1])
    assert " ".join(parts[0].split()[-3:]) in parts[1], "neighbouring windows share their edge"
    assert " ".join(parts[1].split()[:3]) not in parts[0][:len(parts[0]) // 2], "and move on"
    assert windows("i am so happy", tokenizer("i am so happy", add_special_tokens=False,
                                              return_offsets_mapping=True)["offset_mapping"], 16) == ["i am so happy"]


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_chunk_pools_the_windows_vectors_and_reports_long_texts(tiny_model, tmp_path, pooling):
    from transformers import AutoTokenizer

    encoder = tiny(tiny_model, tmp_path)
    chunked = LongTextEncoder(encoder, LongTextSettings("chunk", pooling))
    X = chunked.encode([LONG, *SHORT, LONG])
    report = chunked.last_report
    assert report.long == 2 and report.windows > 5 and report.unique == 3
    assert "2 longer than 16 tokens, chunked into" in report.summary(16)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    parts = windows(LONG, tokenizer(LONG, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"], 16)
    pieces = encoder.encode(parts)
    expected = pieces.max(axis=0) if pooling == "max" else pieces.mean(axis=0)
    np.testing.assert_allclose(X[0], expected / np.linalg.norm(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(X[0], X[3])
    np.testing.assert_allclose(X[1:3], encoder.encode(SHORT), atol=1e-6)  # short texts: the encoder's own vector
    truncated = encoder.encode([LONG])
    assert encoder.last_report.truncated == 1 and not np.allclose(truncated[0], X[0], atol=1e-3)
    again = LongTextEncoder(tiny(tiny_model, tmp_path), LongTextSettings("chunk", pooling))
    np.testing.assert_array_equal(again.encode([LONG, *SHORT, LONG]), X)
    assert again.last_report.encoded == 0 and again.last_report.cached == 3 and again.last_report.long == 2


def test_pooling_and_window_are_part_of_the_cache_key(tiny_model, tmp_path):
    mean = LongTextEncoder(tiny(tiny_model, tmp_path), LongTextSettings("chunk", "mean"))
    peak = LongTextEncoder(tiny(tiny_model, tmp_path), LongTextSettings("chunk", "max"))
    wider = LongTextEncoder(Encoder(tiny_model, cache=tmp_path / "cache", device="cpu", max_length=32),
                            LongTextSettings("chunk", "mean"))
    keys = [mean.key(), peak.key(), wider.key()]
    assert len({json.dumps(k, sort_keys=True) for k in keys}) == 3
    assert keys[0]["window"] == 16 and keys[2]["window"] == 32 and keys[1]["chunk_pooling"] == "max"
    vectors = [e.encode([LONG]) for e in (mean, peak, wider)]
    directories = {e.last_report.cache_dir for e in (mean, peak, wider)}
    assert len(directories) == 3 and mean.encoder.space.directory not in directories
    assert not np.allclose(vectors[0], vectors[1]) and not np.allclose(vectors[0], vectors[2])


def test_long_text_settings_are_checked():
    with pytest.raises(EmbedclfError, match="--long-text must be one of truncate, chunk"):
        LongTextSettings("split")
    with pytest.raises(EmbedclfError, match="--chunk-pooling must be one of mean, max"):
        LongTextSettings("chunk", "median")


def test_cli_fit_with_chunk_records_it_and_predict_uses_it(tiny_model, tmp_path):
    rows = [(LONG + f" {i}", "long") for i in range(6)] + [(f"{t} {i}", "short") for i in range(6) for t in SHORT[:1]]
    (tmp_path / "train.csv").write_text("text,label\n" + "\n".join(f'"{t}",{y}' for t, y in rows) + "\n")
    common = ["--model", tiny_model, "--cache", tmp_path / "cache", "--device", "cpu"]
    fitted = run("fit", tmp_path / "train.csv", "--label-col", "label", "--max-length", "16", "--long-text", "chunk",
                 "--chunk-pooling", "max", "--out", tmp_path / "model", *common)
    assert fitted.returncode == 0, fitted.stderr
    assert "6 longer than 16 tokens, chunked into" in fitted.stderr
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    assert manifest["encoder"]["long_text"] == {"mode": "chunk", "pooling": "max"}
    predicted = run("predict", tmp_path / "model", tmp_path / "train.csv", "--out", tmp_path / "p.csv",
                    "--cache", tmp_path / "cache")
    assert predicted.returncode == 0, predicted.stderr
    assert "0 encoded, 6 longer than 16 tokens, chunked" in predicted.stderr
