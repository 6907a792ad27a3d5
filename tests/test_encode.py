"""Encoder + cache on the tiny random model: caching, keys, order, resume, concurrent writers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from embedclf.encode.cache import EmbeddingCache
from embedclf.encode.encoder import Encoder
from tests.conftest import sample_texts


def make(tiny_model, cache_dir, **kwargs):
    return Encoder(tiny_model, cache=cache_dir, device="cpu", precision="fp32", **kwargs)


def test_second_call_encodes_nothing_and_returns_same_matrix(tiny_model, cache_dir):
    texts = sample_texts(300)
    first = make(tiny_model, cache_dir, chunk_size=64)
    X1 = first.encode(texts)
    assert X1.shape == (300, 32) and X1.dtype == np.float32
    assert first.last_report.encoded == first.last_report.unique > 250
    second = make(tiny_model, cache_dir)
    X2 = second.encode(texts)
    assert second.last_report.encoded == 0 and second.last_report.cached == second.last_report.unique
    assert second._embedder is None, "a fully cached run must not load the model"
    np.testing.assert_array_equal(X1, X2)


def test_output_in_input_order_and_duplicates_encoded_once(tiny_model, cache_dir):
    texts = ["good movie", "bad movie", "good movie", "the market fell", "bad movie"]
    encoder = make(tiny_model, cache_dir)
    X = encoder.encode(texts)
    assert encoder.last_report.unique == 3 and encoder.last_report.encoded == 3
    np.testing.assert_array_equal(X[0], X[2])
    np.testing.assert_array_equal(X[1], X[4])
    alone = make(tiny_model, False).encode(["the market fell"])
    np.testing.assert_allclose(X[3], alone[0], atol=1e-6)
    # length sorting must not change results: each text encoded alone gives the same vector
    singles = np.vstack([make(tiny_model, False).encode([t]) for t in texts])
    np.testing.assert_allclose(X, singles, atol=1e-5)


def test_normalize_gives_unit_vectors(tiny_model, cache_dir):
    texts = sample_texts(20)
    X = make(tiny_model, cache_dir).encode(texts)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    raw = make(tiny_model, cache_dir, normalize=False).encode(texts)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


@pytest.mark.parametrize("change", [dict(pooling="cls"), dict(pooling="max"), dict(max_length=8),
                                    dict(normalize=False)])
def test_cache_key_changes_with_encoding_settings(tiny_model, cache_dir, change):
    texts = sample_texts(10)
    base = make(tiny_model, cache_dir)
    base.encode(texts)
    other = make(tiny_model, cache_dir, **change)
    assert other.config != base.config
    X = other.encode(texts)
    assert other.last_report.cached == 0 and other.last_report.encoded == 10
    assert not np.allclose(X, base.encode(texts))


def test_cache_key_changes_with_model_weights(tiny_model, cache_dir, tmp_path):
    import shutil

    import torch
    from transformers import BertModel

    copy = tmp_path / "other-model"
    shutil.copytree(tiny_model, copy)
    model = BertModel.from_pretrained(copy)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.mul_(1.5)
    model.save_pretrained(copy)
    texts = sample_texts(10)
    a, b = make(tiny_model, cache_dir), make(str(copy), cache_dir)
    a.encode(texts)
    b.encode(texts)
    assert a.config["fingerprint"] != b.config["fingerprint"]
    assert b.last_report.encoded == 10
    assert len(EmbeddingCache(cache_dir).spaces()) == 2


def test_truncation_is_counted(tiny_model, cache_dir):
    long_text = " ".join(["good"] * 50)
    encoder = make(tiny_model, cache_dir, max_length=16)
    encoder.encode([long_text, "short text"])
    assert encoder.last_report.truncated == 1
    again = make(tiny_model, cache_dir, max_length=16)
    again.encode([long_text])
    assert again.last_report.truncated == 1 and again.last_report.encoded == 0


def test_orphaned_temporary_shard_is_ignored_and_removed(tiny_model, cache_dir):
    encoder = make(tiny_model, cache_dir, chunk_size=8)
    encoder.encode(sample_texts(20))
    shard_dir = encoder.space.shard_dir
    (shard_dir / ".tmp-00000009-deadbeef.npy").write_bytes(b"half a shard")
    fresh = make(tiny_model, cache_dir, chunk_size=8)
    fresh.encode(sample_texts(20) + ["a brand new text"])
    assert fresh.last_report.encoded == 1
    assert not list(shard_dir.glob(".tmp-*"))


SLOW_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from embedclf.encode.backends.torch import TorchEmbedder
    from embedclf.encode.encoder import Encoder
    from tests.conftest import sample_texts

    original = TorchEmbedder.encode  # one call per chunk: the tiny model alone is done in a blink
    def slow(self, *args, **kwargs):
        time.sleep({delay})
        return original(self, *args, **kwargs)
    TorchEmbedder.encode = slow
    Encoder({model!r}, cache={cache!r}, device="cpu", precision="fp32", chunk_size=10).encode(
        sample_texts({n}, seed={seed}))
""")


def _writer(tiny_model, cache_dir, n, seed=0, delay=0.0):
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    script = SLOW_WRITER.format(root=root, model=tiny_model, cache=str(cache_dir), n=n, seed=seed, delay=delay)
    return subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, cwd=root)


def test_sigkill_then_resume_gives_identical_matrix(tiny_model, cache_dir, tmp_path):
    texts = sample_texts(200)
    process = _writer(tiny_model, cache_dir, 200, delay=0.2)
    deadline = time.time() + 120
    shards = []
    while time.time() < deadline and len(shards) < 3:
        shards = list(cache_dir.glob("*/shards/[0-9]*.npy"))
        time.sleep(0.05)
    process.kill()  # SIGKILL, mid-run
    process.wait()
    assert len(shards) >= 3, process.stderr.read().decode()[-2000:]
    # same settings as the killed run: chunks line up with the uninterrupted run's, so batches are
    # the same and the vectors are bit-identical, not just close
    resumed = make(tiny_model, cache_dir, chunk_size=10)
    X = resumed.encode(texts)
    report = resumed.last_report
    assert report.cached >= 30 and report.encoded > 0 and report.cached + report.encoded == report.unique
    uninterrupted = make(tiny_model, tmp_path / "clean-cache", chunk_size=10).encode(texts)
    np.testing.assert_array_equal(X, uninterrupted)


def test_concurrent_writers_do_not_corrupt_the_cache(tiny_model, cache_dir, tmp_path):
    # two processes encode overlapping corpora (same seed prefix) into one cache at once
    writers = [_writer(tiny_model, cache_dir, 150, seed=1, delay=0.02), _writer(tiny_model, cache_dir, 150, seed=1,
                                                                                   delay=0.03)]
    for writer in writers:
        assert writer.wait(timeout=300) == 0, writer.stderr.read().decode()[-2000:]
    texts = sample_texts(150, seed=1)
    encoder = make(tiny_model, cache_dir)
    X = encoder.encode(texts)
    assert encoder.last_report.encoded == 0
    np.testing.assert_array_equal(X, make(tiny_model, tmp_path / "clean", chunk_size=10).encode(texts))
    for shard in cache_dir.glob("*/shards/*.npy"):
        assert not shard.name.startswith(".tmp-")
        np.load(shard, mmap_mode="r")  # every committed shard is whole


def test_cache_info_and_clear(tiny_model, cache_dir):
    make(tiny_model, cache_dir).encode(sample_texts(10))
    make(tiny_model, cache_dir, pooling="cls").encode(sample_texts(10))
    cache = EmbeddingCache(cache_dir)
    spaces = cache.spaces()
    assert sorted(s.config["pooling"] for s in spaces) == ["cls", "mean"]
    assert all(s.entries == 10 and s.size_bytes > 0 for s in spaces)
    assert len(cache.clear(model="no-such-model")) == 0
    assert len(cache.clear(model=tiny_model)) == 2
    assert cache.spaces() == []


def test_batches_of_long_texts_are_capped_by_padded_tokens():
    from embedclf.encode.batching import capped_batches

    tokens = np.array([300, 120, 100, 64, 64, 64] + [20] * 70)  # sorted longest first, as the Encoder does
    batches = capped_batches(tokens, batch_size=32, max_length=256)  # default: 64 x 32 = 2,048 tokens
    sizes = [b.stop - b.start for b in batches]
    assert sizes == [8, 32, 32, 4]  # 2048 // 256 with the 300-token text (truncated to 256) first
    assert batches[0].start == 0 and batches[-1].stop == len(tokens)
    assert all(a.stop == b.start for a, b in zip(batches, batches[1:]))
    for batch in batches:  # no batch over budget, except a single text that alone exceeds it
        assert (batch.stop - batch.start) * min(tokens[batch.start], 256) <= 2048 or batch.stop - batch.start == 1
    assert [b.stop - b.start for b in capped_batches(np.array([5000, 10]), 32, 512, 100)] == [1, 1]


def test_long_texts_in_smaller_batches_give_the_same_vectors(tiny_model, cache_dir, tmp_path):
    texts = sample_texts(60) + [" ".join(sample_texts(40))]  # one text far longer than the rest
    default = make(tiny_model, cache_dir).encode(texts)
    small = make(tiny_model, tmp_path / "other", max_batch_tokens=64).encode(texts)
    np.testing.assert_allclose(small, default, atol=1e-5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_cache_shards_are_not_left_mapped(tiny_model, cache_dir):
    """Mapped shard pages count in RSS: a long encode would grow by the whole cache if shards stayed mapped."""
    texts = sample_texts(300)
    encoder = make(tiny_model, cache_dir, chunk_size=50)
    encoder.encode(texts)
    again = make(tiny_model, cache_dir)
    again.encode(texts[::-1])
    shards = list(again.space.shard_dir.glob("*.npy"))
    assert len(shards) >= 6
    with open("/proc/self/maps") as maps:
        mapped = maps.read()
    assert not any(str(shard) in mapped for shard in shards)


def test_the_same_model_spelled_differently_is_one_cache_space(tiny_model, cache_dir, tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_model, copy)
    texts = sample_texts(30)
    make(tiny_model, cache_dir).encode(texts)
    monkeypatch.chdir(tmp_path)
    for spelling in ("models/tiny", "./models/tiny", str(copy)):
        again = make(spelling, cache_dir)
        again.encode(texts)
        assert again.last_report.encoded == 0 and again._embedder is None, spelling
    assert len(EmbeddingCache(cache_dir).spaces()) == 1


def test_heap_is_trimmed_at_most_once_per_interval(monkeypatch):
    from embedclf.encode import batching

    calls = []
    monkeypatch.setattr(batching, "_malloc_trim", lambda: calls.append)
    monkeypatch.setattr(batching, "_last_trim", float("-inf"))
    for _ in range(5):  # a server's small calls, one after another
        batching.trim_heap(every=60)
    assert calls == [0]
    batching.trim_heap(every=0)
    assert calls == [0, 0]
