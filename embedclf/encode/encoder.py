"""Texts in, embeddings out, through the cache: each distinct text is encoded once, ever.

The :class:`Encoder` looks every text up in its cache space, encodes only the missing distinct
texts (longest first, so each batch holds texts of similar length and little padding), commits
them to the cache a chunk at a time, and returns the matrix in input order. What it computes is
one :class:`~embedclf.encode.settings.EncoderSettings`; which backend computes it is
``encode/backends``' business.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from embedclf.encode.batching import trim_heap
from embedclf.encode.cache import EmbeddingCache, text_key
from embedclf.encode.models import DEFAULT_MODEL, ModelRef
from embedclf.encode.settings import EncoderSettings


@dataclass
class EncodeReport:
    """What one :meth:`Encoder.encode` call did, for the summary line and benchmarks."""

    texts: int = 0
    unique: int = 0
    cached: int = 0
    encoded: int = 0
    truncated: int = 0
    seconds: float = 0.0
    encode_seconds: float = 0.0
    cache_dir: str | None = None

    @property
    def texts_per_second(self) -> float:
        return self.encoded / self.encode_seconds if self.encode_seconds > 0 else 0.0

    def summary(self, max_length: int) -> str:
        parts = [f"{self.texts:,} texts", f"{self.unique:,} distinct", f"{self.cached:,} cached",
                 f"{self.encoded:,} encoded"]
        if self.encoded:
            parts.append(f"{self.texts_per_second:,.1f} texts/s")
        if self.truncated:
            parts.append(f"{self.truncated:,} truncated to {max_length} tokens")
        parts.append(f"{self.seconds:.1f}s")
        return ", ".join(parts)

    def as_dict(self) -> dict:
        return asdict(self) | {"texts_per_second": self.texts_per_second}


class Encoder:
    """Encode texts with a BERT-family model through a content-addressed cache.

    >>> encoder = Encoder()                          # all-MiniLM-L6-v2, mean pooling, normalised
    >>> X = encoder.encode(["a text", "another"])   # (2, 384) float32, cached under ./cache

    Give an :class:`EncoderSettings`, or a model and any of its fields as keywords
    (``Encoder("my/model", pooling="cls", backend="onnx", precision="int8")``). ``cache=None`` uses
    ``$EMBEDCLF_CACHE`` or ``./cache``; ``cache=False`` disables caching. The onnx backend exports
    the model on first use on this machine, into the per-user export store (``encode/exports``). Nothing
    is resolved or loaded until it is needed: the model's files when a setting or the cache space is
    asked for, the model itself only when some text is not cached.
    """

    def __init__(self, model: str | EncoderSettings = DEFAULT_MODEL, *,
                 cache: str | Path | EmbeddingCache | bool | None = None, progress: bool | None = None, **settings):
        if isinstance(model, EncoderSettings):
            self.requested = replace(model, **settings) if settings else model
        else:
            self.requested = EncoderSettings(model, **settings)
        if cache is False:
            self.cache = None
        elif isinstance(cache, EmbeddingCache):
            self.cache = cache
        else:
            self.cache = EmbeddingCache(None if cache in (None, True) else cache)
        self.progress = progress
        self.last_report = EncodeReport()
        self._settings: EncoderSettings | None = None
        self._embedder = None
        self._space = None

    def __getstate__(self):
        """Pickled (a grid search's worker, a Ray task) without the loaded model: it loads again where needed."""
        return self.__dict__ | {"_embedder": None, "_space": None}

    # -- configuration, resolved lazily --------------------------------------------------------
    @property
    def settings(self) -> EncoderSettings:
        """The resolved settings: model files found and fingerprinted, every ``auto`` decided."""
        if self._settings is None:
            from embedclf.encode.exports import fingerprint_memo

            self._settings = self.requested.resolve(fingerprint_memo())  # per machine, whatever the cache
        return self._settings

    @property
    def ref(self) -> ModelRef:
        return self.settings.ref

    pooling = property(lambda self: self.settings.pooling)
    max_length = property(lambda self: self.settings.max_length)
    precision = property(lambda self: self.settings.precision)
    device = property(lambda self: self.settings.device)
    backend = property(lambda self: self.settings.backend)  # torch's int8 resolves to an int8 backend
    normalize = property(lambda self: self.requested.normalize)
    batch_size = property(lambda self: self.requested.batch_size)
    chunk_size = property(lambda self: self.requested.chunk_size)

    @property
    def config(self) -> dict:
        """The cache key of this encoder's space, with the model's name for people to read."""
        return {"model": self.settings.model, **self.settings.cache_key()}

    def describe(self) -> str:
        """The encoding setting in a few words, for summary lines."""
        return f"{self.backend} {self.precision}"

    @property
    def embedder(self):
        """The loaded backend (see ``encode/backends``); loading it loads the model."""
        return self._load_embedder()

    def _load_embedder(self, sample=None):
        """``sample``: the texts about to be encoded, which calibrate an int8 export made now."""
        if self._embedder is None:
            from embedclf.console import status
            from embedclf.encode.backends import load_embedder

            with status(f"loading {self.settings.model} ({self.backend} {self.precision})"):
                self._embedder = load_embedder(self.settings, sample)
        return self._embedder

    def derive(self, **changes) -> "Encoder":
        """A new encoder with these settings (or ``cache``/``progress``) changed and the rest kept."""
        cache = changes.pop("cache", self.cache if self.cache is not None else False)
        progress = changes.pop("progress", self.progress)
        other = Encoder(replace(self.requested, **changes), cache=cache, progress=progress)
        if self._settings is not None and changes.keys() <= {"batch_size", "chunk_size", "max_batch_tokens"}:
            other._settings = replace(self._settings, **changes)
        return other

    @property
    def space(self):
        if self._space is None and self.cache is not None:
            self._space = self.cache.space(self.config)
        return self._space

    def buffer_writes(self, max_texts: int = 4096, max_seconds: float = 30.0):
        """For long-running callers that encode a few texts per call (a server): hold new vectors in memory
        and commit a shard per ``max_texts`` or ``max_seconds`` instead of one per call. Returns the
        :class:`~embedclf.encode.write_buffer.BufferedSpace` (call its ``close()`` at the end), None without a cache."""
        from embedclf.encode.write_buffer import BufferedSpace

        space = self.space
        if space is None or isinstance(space, BufferedSpace):
            return space
        self._space = BufferedSpace(space, max_texts=max_texts, max_seconds=max_seconds)
        return self._space

    @property
    def dimension(self) -> int:
        return self.embedder.dimension

    # -- encoding ------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 matrix in input order; see :attr:`last_report`."""
        start = time.perf_counter()
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        keys = [text_key(t) for t in texts]
        first_of: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            first_of.setdefault(key, i)
        space = self.space
        report = EncodeReport(texts=len(texts), unique=len(first_of),
                              cache_dir=str(space.directory) if space is not None else None)
        if space is not None:
            space.refresh()
            todo = [i for k, i in first_of.items() if k not in space]
        else:
            todo = list(first_of.values())
        report.cached = report.unique - len(todo)
        fresh = self._encode_todo(texts, keys, todo, report)
        if space is not None:
            matrix, tokens = space.get(keys) if keys else (np.empty((0, self.dimension), np.float32), np.empty(0))
        else:
            matrix, tokens = fresh(keys)
        report.truncated = int((tokens > self.max_length).sum())
        report.seconds = time.perf_counter() - start
        self.last_report = report
        return matrix

    def _encode_todo(self, texts, keys, todo, report):
        """Encode ``texts[todo]`` into the cache space, or into memory without one (returned as a lookup)."""
        vectors_of: dict[bytes, int] = {}
        parts, part_tokens = [], []
        if todo:
            self._load_embedder([texts[i] for i in todo[:400]])  # load first: texts/s measures encoding only
            encode_start = time.perf_counter()
            for chunk, vectors, tokens in self._encode_missing([texts[i] for i in todo]):
                chunk_keys = [keys[todo[j]] for j in chunk]
                if self.space is not None:
                    self.space.add(chunk_keys, vectors, tokens)
                    continue
                for key in chunk_keys:
                    vectors_of[key] = len(vectors_of)
                parts.append(vectors)
                part_tokens.append(tokens)
            report.encoded = len(todo)
            report.encode_seconds = time.perf_counter() - encode_start

        def lookup(wanted):
            stacked = np.concatenate(parts) if parts else np.empty((0, 0), np.float32)
            all_tokens = np.concatenate(part_tokens) if part_tokens else np.empty(0, np.int64)
            rows = np.array([vectors_of[k] for k in wanted], dtype=np.int64)
            return stacked[rows], all_tokens[rows]

        return lookup

    def token_counts(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens per text, special tokens included and before truncation."""
        return self.embedder.token_counts(list(texts))

    def _encode_missing(self, texts: list[str]):
        """Yield ``(positions, vectors, token_counts)`` chunks, longest texts first."""
        from tqdm.auto import tqdm

        tokens = self.token_counts(texts)
        order = np.argsort(-tokens, kind="stable")
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        chunk_size = self.requested.chunk_size
        with tqdm(total=len(texts), unit="text", disable=not show, desc="encoding", file=sys.stderr) as bar:
            for start in range(0, len(order), chunk_size):
                chunk = order[start:start + chunk_size]
                vectors = self.embedder.encode([texts[j] for j in chunk], tokens[chunk])
                trim_heap()
                bar.update(len(chunk))
                yield chunk, vectors, tokens[chunk]
