"""Texts longer than the model's window: truncate them (the model's own behaviour) or chunk them.

``chunk`` cuts a long text into overlapping windows of the model's maximum length (a quarter of each
window shared with the next), encodes every window as a text of its own through the same cache (a
window is cached like any text, so a second run encodes nothing), and pools the windows' vectors
(mean, or max) into one vector, normalised again when the encoder normalises. The pooled vectors are
kept in a cache space of their own, whose key is the encoder's plus the window, the stride and the
pooling: chunked vectors never mix with truncated ones, nor with another window's or pooling's.
Texts that fit in one window get the encoder's own vector.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from embedclf.encode.cache import text_key
from embedclf.encode.encoder import EncodeReport, Encoder
from embedclf.errors import EmbedclfError

LONG_TEXT = ("truncate", "chunk")
CHUNK_POOLING = ("mean", "max")
SPECIAL_TOKENS = 2  # [CLS] and [SEP] around every window


@dataclass(frozen=True)
class LongTextSettings:
    """``mode`` truncate or chunk; ``pooling`` of the windows' vectors (mean or max)."""

    mode: str = "truncate"
    pooling: str = "mean"

    def __post_init__(self):
        object.__setattr__(self, "mode", getattr(self.mode, "value", self.mode))
        object.__setattr__(self, "pooling", getattr(self.pooling, "value", self.pooling))
        if self.mode not in LONG_TEXT:
            raise EmbedclfError(f"--long-text must be one of {', '.join(LONG_TEXT)}, not {self.mode!r}")
        if self.pooling not in CHUNK_POOLING:
            raise EmbedclfError(f"--chunk-pooling must be one of {', '.join(CHUNK_POOLING)}, not {self.pooling!r}")

    def record(self) -> dict:
        return {"mode": self.mode, "pooling": self.pooling}

    @classmethod
    def from_record(cls, record: dict | None) -> "LongTextSettings":
        return cls(**(record or {}))


def windows(text: str, offsets: list, max_length: int) -> list[str]:
    """The text's overlapping windows (substrings, cut at the tokens' character ``offsets``): ``max_length``
    tokens each with the special tokens, a quarter of a window shared by neighbours."""
    size = max_length - SPECIAL_TOKENS
    if len(offsets) <= size:
        return [text]
    stride = max(1, size - size // 4)
    starts = list(range(0, len(offsets) - size, stride)) + [len(offsets) - size]
    return [text[offsets[s][0]:offsets[s + size - 1][1]] for s in dict.fromkeys(starts)]


@dataclass
class ChunkReport(EncodeReport):
    """An :class:`EncodeReport` that also says how many texts were long and into how many windows they went."""

    long: int = 0
    windows: int = 0

    def summary(self, max_length: int) -> str:
        parts = [f"{self.texts:,} texts", f"{self.unique:,} distinct", f"{self.cached:,} cached",
                 f"{self.encoded:,} encoded"]
        if self.long:
            parts.append(f"{self.long:,} longer than {max_length} tokens, chunked"
                         + (f" into {self.windows:,} windows" if self.windows else ""))
        parts.append(f"{self.seconds:.1f}s")
        return ", ".join(parts)


class LongTextEncoder:
    """``encoder`` with ``chunk``: the same ``encode(texts)`` and ``last_report``, windows pooled per text."""

    def __init__(self, encoder: Encoder, settings: LongTextSettings):
        self.encoder, self.settings = encoder, settings
        self.last_report: ChunkReport | None = None
        self._tokenizer = None

    def key(self) -> dict:
        """The pooled vectors' cache key: the encoder's, plus what makes a chunked vector what it is."""
        size = self.encoder.max_length - SPECIAL_TOKENS
        return {**self.encoder.config, "long_text": "chunk", "window": self.encoder.max_length,
                "stride": max(1, size - size // 4), "chunk_pooling": self.settings.pooling}

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.encoder.ref.path))
        return self._tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.settings.mode == "truncate":
            matrix = self.encoder.encode(texts)
            self.last_report = self.encoder.last_report
            return matrix
        start = time.perf_counter()
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        keys = [text_key(t) for t in texts]
        unique = list(dict.fromkeys(keys))
        space = self.encoder.cache.space(self.key()) if self.encoder.cache is not None else None
        if space is not None:
            space.refresh()
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        todo = [first[k] for k in unique if space is None or k not in space]
        report = ChunkReport(texts=len(texts), unique=len(unique), cached=len(unique) - len(todo),
                             cache_dir=str(space.directory) if space is not None else None)
        fresh = self._pooled([texts[i] for i in todo], report)
        if space is not None:
            if todo:
                space.add([keys[i] for i in todo], *fresh)
            matrix, tokens = space.get(keys) if keys else (np.empty((0, 0), np.float32), np.empty(0))
        else:
            rows = {keys[i]: j for j, i in enumerate(todo)}
            matrix, tokens = fresh[0][[rows[k] for k in keys]], fresh[1][[rows[k] for k in keys]]
        report.long = int((tokens > self.encoder.max_length).sum())  # every text, cached or not
        report.seconds = time.perf_counter() - start
        self.last_report = self.encoder.last_report = report
        return matrix

    def _pooled(self, texts: list[str], report: ChunkReport) -> tuple[np.ndarray, np.ndarray]:
        """One vector per text (windows pooled) and each text's token count; windows through the cache."""
        if not texts:
            return np.empty((0, 0), np.float32), np.empty(0, np.int64)
        offsets = []
        for at in range(0, len(texts), 1024):
            offsets += self.tokenizer(texts[at:at + 1024], add_special_tokens=False,
                                      return_offsets_mapping=True)["offset_mapping"]
        pieces = [windows(text, spans, self.encoder.max_length) for text, spans in zip(texts, offsets)]
        flat = [piece for parts in pieces for piece in parts]
        vectors = self.encoder.encode(flat)
        inner = self.encoder.last_report
        report.encoded, report.encode_seconds = inner.encoded, inner.encode_seconds
        report.windows = sum(len(parts) for parts in pieces if len(parts) > 1)
        tokens = np.asarray([len(spans) + SPECIAL_TOKENS for spans in offsets], dtype=np.int64)
        pooled, at = np.empty((len(texts), vectors.shape[1]), np.float32), 0
        for i, parts in enumerate(pieces):
            block = vectors[at:at + len(parts)]
            pooled[i] = block.max(axis=0) if self.settings.pooling == "max" else block.mean(axis=0)
            at += len(parts)
        if self.encoder.normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled, tokens
