"""The cache's buffered writer: new vectors held in memory, found at once, committed as one atomic shard
when full, when old, or when closed; what it commits is what a plain ``CacheSpace.add`` would store."""

from __future__ import annotations

import numpy as np

from embedclf.encode.cache import EmbeddingCache, text_key
from embedclf.encode.write_buffer import BufferedSpace

CONFIG = {"model": "m", "fingerprint": "f" * 16, "pooling": "mean", "dimension": 4}


def shards(space) -> list:
    return sorted(space.shard_dir.glob("*.npy")) if space.shard_dir.is_dir() else []


def vectors_of(texts):
    rng = np.random.default_rng(len(texts))
    return [text_key(t) for t in texts], rng.standard_normal((len(texts), 4)).astype(np.float32), \
        np.arange(3, 3 + len(texts))


def test_held_vectors_are_found_at_once_and_committed_as_one_shard_when_full(tmp_path):
    space = EmbeddingCache(tmp_path).space(CONFIG)
    buffer = BufferedSpace(space, max_texts=10, max_seconds=1e9)
    keys, vectors, tokens = vectors_of([f"text {i}" for i in range(25)])
    for start in range(0, 9, 3):  # 9 texts in 3 calls: held, not written
        assert buffer.add(keys[start:start + 3], vectors[start:start + 3], tokens[start:start + 3]) == 3
    assert shards(space) == [] and buffer.held == 9 and keys[4] in buffer and keys[4] not in space
    got, got_tokens = buffer.get(keys[:9][::-1])
    np.testing.assert_array_equal(got, vectors[:9][::-1])
    np.testing.assert_array_equal(got_tokens, tokens[:9][::-1])
    assert buffer.add(keys[:3], vectors[:3], tokens[:3]) == 0  # already held: not held twice
    buffer.add(keys[9:12], vectors[9:12], tokens[9:12])  # 12 >= 10: one shard of 12
    assert len(shards(space)) == 1 and buffer.held == 0 and len(space) == 12
    buffer.add(keys[12:14], vectors[12:14], tokens[12:14])
    mixed, _ = buffer.get([keys[13], keys[0], keys[12]])  # from memory and from the shard
    np.testing.assert_array_equal(mixed, vectors[[13, 0, 12]])
    assert buffer.close() == 2 and len(shards(space)) == 2
    reread = EmbeddingCache(tmp_path).space(CONFIG)  # another process sees what was committed
    np.testing.assert_array_equal(reread.get(keys[:14])[0], vectors[:14])
    np.testing.assert_array_equal(reread.get(keys[:14])[1], tokens[:14])


def test_the_oldest_held_vector_is_committed_after_max_seconds(tmp_path):
    now = [100.0]
    space = EmbeddingCache(tmp_path).space(CONFIG)
    buffer = BufferedSpace(space, max_texts=1000, max_seconds=30, clock=lambda: now[0])
    keys, vectors, tokens = vectors_of(["a", "b", "c"])
    buffer.add(keys[:1], vectors[:1], tokens[:1])
    now[0] += 20
    buffer.add(keys[1:2], vectors[1:2], tokens[1:2])
    assert buffer.flush_due() == 0 and shards(space) == []
    now[0] += 10  # 30 s since the first: due, though the second is 10 s old
    assert buffer.flush_due() == 2 and len(shards(space)) == 1
    assert buffer.flush_due() == 0 and buffer.close() == 0  # nothing held: no empty shard
    buffer.add(keys[2:], vectors[2:], tokens[2:])
    now[0] += 31
    buffer.add(keys[:1], vectors[:1], tokens[:1])  # nothing new, but the add finds the held one due
    assert len(shards(space)) == 2 and len(EmbeddingCache(tmp_path).space(CONFIG)) == 3
