"""A cache space that holds new vectors in memory and commits them as one shard per many texts.

:meth:`CacheSpace.add <embedclf.encode.cache.CacheSpace.add>` commits a shard per call: right for
``embedclf encode`` (thousands of texts per call), wrong for a long-running caller that encodes a few
texts at a time, such as ``embedclf serve``: it would pile up thousands of tiny shards, each one a
file to list and index. :class:`BufferedSpace` has the space's reading and writing methods, so the
:class:`~embedclf.encode.encoder.Encoder` uses it unchanged: ``add`` keeps new vectors in memory and
lookups see them at once (a repeated text costs nothing before the flush); :meth:`flush` commits them
through ``CacheSpace.add`` (one atomic shard) once ``max_texts`` are held, once the oldest is
``max_seconds`` old (on ``add``, or :meth:`flush_due` from the caller's timer), and on :meth:`close`.
A process killed before a flush loses only the held vectors: they are encoded again next time.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Sequence

import numpy as np

from embedclf.errors import EmbedclfError


class BufferedSpace:
    """A :class:`~embedclf.encode.cache.CacheSpace` whose writes are held and committed in large shards.

    Shards that other processes commit are looked for at most every ``refresh_seconds`` (a server
    calls the encoder per request; listing the shard folder each time costs more than the request).
    Safe to use from two threads (the model's and a timer's).
    """

    def __init__(self, space, *, max_texts: int = 4096, max_seconds: float = 30.0, refresh_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        if isinstance(max_texts, bool) or not isinstance(max_texts, int) or max_texts < 1:
            raise EmbedclfError(f"max_texts must be an integer of at least 1, got {max_texts!r}")
        if not max_seconds > 0:
            raise EmbedclfError(f"max_seconds must be positive, got {max_seconds!r}")
        self.space, self.max_texts, self.max_seconds = space, max_texts, max_seconds
        self.refresh_seconds, self.clock = refresh_seconds, clock
        self._held: dict[bytes, tuple[np.ndarray, int]] = {}
        self._since: float | None = None  # when the oldest held vector came
        self._refreshed = -float("inf")
        self._lock = threading.RLock()

    # -- what the Encoder reads ------------------------------------------------------------------
    @property
    def directory(self):
        return self.space.directory

    @property
    def held(self) -> int:
        """Vectors waiting for the next flush."""
        return len(self._held)

    def refresh(self) -> None:
        now = self.clock()
        if now - self._refreshed >= self.refresh_seconds:
            self._refreshed = now
            self.space.refresh()

    def __contains__(self, key: bytes) -> bool:
        return key in self._held or key in self.space

    def __len__(self) -> int:
        with self._lock:
            return len(self.space) + sum(key not in self.space for key in self._held)

    def missing(self, keys) -> list[bytes]:
        return [k for k in keys if k not in self]

    def get(self, keys: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors and token counts for ``keys``, in order, from memory or the shards; every key must be present."""
        with self._lock:
            held = [i for i, k in enumerate(keys) if k in self._held]
            if not held:
                return self.space.get(keys)
            stored = [i for i, k in enumerate(keys) if k not in self._held]
            first = self._held[keys[held[0]]][0]
            vectors = np.empty((len(keys), len(first)), dtype=np.float32)
            tokens = np.empty(len(keys), dtype=np.int64)
            vectors[held] = [self._held[keys[i]][0] for i in held]
            tokens[held] = [self._held[keys[i]][1] for i in held]
            if stored:
                vectors[stored], tokens[stored] = self.space.get([keys[i] for i in stored])
            return vectors, tokens

    # -- writing ---------------------------------------------------------------------------------
    def add(self, keys: Sequence[bytes], vectors: np.ndarray, tokens: Sequence[int]) -> int:
        """Hold the vectors of ``keys`` not yet cached; flush when full or old. Returns how many were new."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise ValueError("vectors must be a (len(keys), dim) matrix")
        with self._lock:
            new = 0
            for key, vector, count in zip(keys, vectors, tokens):
                if key not in self:
                    self._held[key] = (vector.copy(), int(count))
                    new += 1
            if new and self._since is None:
                self._since = self.clock()
            if len(self._held) >= self.max_texts:
                self.flush()
            else:
                self.flush_due()
            return new

    def flush_due(self) -> int:
        """Flush if the oldest held vector is ``max_seconds`` old; returns how many were committed."""
        with self._lock:
            if self._since is not None and self.clock() - self._since >= self.max_seconds:
                return self.flush()
            return 0

    def flush(self) -> int:
        """Commit every held vector as one shard (atomically, by ``CacheSpace.add``); returns how many."""
        with self._lock:
            if not self._held:
                return 0
            keys = list(self._held)
            vectors = np.stack([self._held[k][0] for k in keys])
            tokens = np.array([self._held[k][1] for k in keys], dtype=np.int64)
            self.space.add(keys, vectors, tokens)  # in the shards before it leaves memory: always found
            self._held.clear()
            self._since = None
            self._refreshed = self.clock()  # add() looked at the folder
            return len(keys)

    close = flush

    def size_bytes(self) -> int:
        return self.space.size_bytes()
