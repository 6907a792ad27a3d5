"""Texts in, embeddings out, through the cache: each distinct text is encoded once, ever.

The :class:`Encoder` looks every text up in its cache space, encodes only the missing distinct
texts (longest first, so each batch holds texts of similar length and little padding), commits
them to the cache a chunk at a time, and returns the matrix in input order. Two backends compute
the vectors: torch (sentence-transformers; fp32, fp16, bf16) and onnx (onnxruntime on CPU; fp32, or
int8 with dynamically quantised weights); the backend and precision are part of the cache key.
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from embedclf.encode.cache import EmbeddingCache, default_cache_root, text_key
from embedclf.encode.models import DEFAULT_MODEL, POOLING_MODES, ModelRef, load_sentence_transformer, \
    resolve_device, resolve_model
from embedclf.errors import EmbedclfError

BACKENDS = ("torch", "onnx")
PRECISIONS = {"torch": ("auto", "fp32", "fp16", "bf16"), "onnx": ("auto", "fp32", "int8")}


def check_backend(backend: str, precision: str, device: str = "auto") -> None:
    """Refuse a backend, precision and device that do not go together, in one line."""
    if backend not in BACKENDS:
        raise EmbedclfError(f"unknown backend {backend!r}; expected {' or '.join(BACKENDS)}")
    allowed = PRECISIONS[backend]
    if precision not in allowed:
        known = {p for choices in PRECISIONS.values() for p in choices}
        what = f"precision {precision} is not available with the {backend} backend" if precision in known \
            else f"unknown precision {precision!r}"
        raise EmbedclfError(f"{what}; expected {', '.join(allowed)}")
    if backend == "onnx" and device not in ("auto", "cpu"):
        raise EmbedclfError(f"the onnx backend runs on the CPU, not on {device}; use --device cpu, or --backend torch")


BATCH_TOKENS_PER_TEXT = 64  # the default max_batch_tokens is this many per text of a full batch


def capped_batches(tokens: Sequence[int], batch_size: int, max_length: int,
                   max_batch_tokens: int | None = None) -> list[slice]:
    """Batches over texts sorted longest first: ``batch_size`` texts, fewer where the batch's longest text
    would make it more than ``max_batch_tokens`` padded tokens (default ``BATCH_TOKENS_PER_TEXT * batch_size``).

    A batch's activations grow with texts x padded tokens (on the CPU, 32 x 256 tokens took ~230 MB more
    than 32 x 32), so without the cap one long text in a corpus of short ones sets the peak memory.
    """
    max_batch_tokens = max_batch_tokens or BATCH_TOKENS_PER_TEXT * batch_size
    batches, start = [], 0
    while start < len(tokens):
        longest = max(1, min(int(tokens[start]), max_length))
        size = max(1, min(batch_size, max_batch_tokens // longest))
        batches.append(slice(start, min(start + size, len(tokens))))
        start += size
    return batches


def trim_heap() -> None:
    """Give freed heap memory back to the OS, where the C library is glibc; a no-op elsewhere.

    Batches of varying lengths free and reallocate tensors of varying sizes, and glibc keeps what
    is freed inside its heap: without this, RSS creeps up chunk after chunk (measured: +50 MB at
    30k texts over 2k). One call per chunk costs about a millisecond.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


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

    ``cache=None`` uses ``$EMBEDCLF_CACHE`` or ``./cache``; ``cache=False`` disables caching.
    ``pooling`` and ``max_length`` default to the model's own. ``backend='torch'`` takes precision
    fp32, fp16 or bf16 (``'auto'``: fp16 on CUDA, fp32 on CPU); ``backend='onnx'`` (CPU only, needs
    ``embedclf[onnx]``) takes fp32 or int8 (``'auto'``: fp32) and exports the model to ONNX under the
    cache root on first use (the default root when ``cache=False``). The model is loaded only when
    some text is not cached. Texts are encoded longest first, ``batch_size`` at a time, fewer where a
    batch would exceed ``max_batch_tokens`` padded tokens (default ``64 * batch_size``), and committed
    to the cache every ``chunk_size`` texts.
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, pooling: str | None = None, max_length: int | None = None,
                 normalize: bool = True, device: str = "auto", precision: str = "auto", backend: str = "torch",
                 batch_size: int = 32, chunk_size: int = 1024, max_batch_tokens: int | None = None,
                 cache: str | Path | EmbeddingCache | bool | None = None, progress: bool | None = None):
        if pooling is not None and pooling not in POOLING_MODES:
            raise EmbedclfError(f"unknown pooling {pooling!r}; expected one of {', '.join(POOLING_MODES)}")
        check_backend(backend, precision, device)
        if batch_size < 1 or chunk_size < 1 or (max_batch_tokens is not None and max_batch_tokens < 1):
            raise EmbedclfError("the batch size, chunk size and max batch tokens must be positive")
        if max_length is not None and max_length < 2:
            raise EmbedclfError("--max-length must be at least 2 tokens")
        self.model_name = model
        self.requested_pooling = pooling
        self.requested_max_length = max_length
        self.normalize = normalize
        self.requested_device = device
        self.requested_precision = precision
        self.backend = backend
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.max_batch_tokens = max_batch_tokens  # None: capped_batches' default
        self.progress = progress
        if cache is False:
            self.cache = None
        elif isinstance(cache, EmbeddingCache):
            self.cache = cache
        else:
            self.cache = EmbeddingCache(None if cache in (None, True) else cache)
        self.last_report = EncodeReport()
        self._ref: ModelRef | None = None
        self._device: str | None = None
        self._model = None
        self._space = None

    # -- configuration, resolved lazily --------------------------------------------------------
    @property
    def ref(self) -> ModelRef:
        if self._ref is None:
            self._ref = resolve_model(self.model_name, self.cache.fingerprint_memo if self.cache else None)
        return self._ref

    @property
    def pooling(self) -> str:
        return self.requested_pooling or self.ref.pooling

    @property
    def max_length(self) -> int:
        return self.requested_max_length or self.ref.max_length

    @property
    def device(self) -> str:
        if self._device is None:
            if self.backend == "onnx" or self.requested_device == "cpu" and self.requested_precision != "auto":
                self._device = "cpu"  # no need to import torch to know that
            else:
                self._device = resolve_device(self.requested_device)
        return self._device

    @property
    def precision(self) -> str:
        if self.requested_precision != "auto":
            return self.requested_precision
        return "fp16" if self.backend == "torch" and self.device.startswith("cuda") else "fp32"

    @property
    def config(self) -> dict:
        """Everything that determines a vector: the cache key of this encoder's space."""
        config = {"model": self.ref.name, "fingerprint": self.ref.fingerprint, "pooling": self.pooling,
                  "max_length": self.max_length, "normalize": self.normalize, "precision": self.precision,
                  "backend": self.backend}
        if self.backend == "onnx" and self.precision == "int8":
            from embedclf.encode.onnx import INT8_RECIPE

            config["quantization"] = INT8_RECIPE  # a new recipe makes new vectors: a space of their own
        return config

    def describe(self) -> str:
        """The encoding setting in a few words, for summary lines."""
        return f"{self.backend} {self.precision}"

    @property
    def model(self):
        """The loaded model: a SentenceTransformer (torch) or an :class:`~embedclf.encode.onnx.OnnxEmbedder`."""
        if self._model is None:
            if self.backend == "onnx":
                from embedclf.encode.onnx import load_onnx_embedder

                root = self.cache.root if self.cache is not None else default_cache_root()
                self._model = load_onnx_embedder(self.ref, root, precision=self.precision, max_length=self.max_length,
                                                 pooling=self.pooling)
            else:
                self._model = load_sentence_transformer(self.ref, pooling=self.pooling, max_length=self.max_length,
                                                        device=self.device, precision=self.precision)
        return self._model

    def derive(self, **changes) -> "Encoder":
        """A new encoder with these settings changed and the rest (and the resolved model) kept."""
        settings = dict(model=self.model_name, pooling=self.requested_pooling, max_length=self.requested_max_length,
                        normalize=self.normalize, device=self.requested_device, precision=self.requested_precision,
                        backend=self.backend, batch_size=self.batch_size, chunk_size=self.chunk_size,
                        max_batch_tokens=self.max_batch_tokens,
                        cache=self.cache if self.cache is not None else False, progress=self.progress) | changes
        other = Encoder(settings.pop("model"), **settings)
        if other.model_name == self.model_name:
            other._ref = self._ref
        return other

    @property
    def space(self):
        if self._space is None and self.cache is not None:
            self._space = self.cache.space(self.config)
        return self._space

    # -- encoding ------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 matrix in input order; see :attr:`last_report`."""
        start = time.perf_counter()
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        keys = [text_key(t) for t in texts]
        first_of: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            first_of.setdefault(key, i)
        report = EncodeReport(texts=len(texts), unique=len(first_of),
                              cache_dir=str(self.space.directory) if self.space is not None else None)

        if self.space is not None:
            self.space.refresh()
            todo = [i for k, i in first_of.items() if k not in self.space]
        else:
            todo = list(first_of.values())
        report.cached = report.unique - len(todo)

        fresh: dict[bytes, int] = {}
        fresh_vectors: list[np.ndarray] = []
        fresh_tokens: list[np.ndarray] = []
        if todo:
            self.model  # load first: texts/s measures encoding, not start-up
            encode_start = time.perf_counter()
            for chunk, vectors, tokens in self._encode_missing([texts[i] for i in todo]):
                chunk_keys = [keys[todo[j]] for j in chunk]
                if self.space is not None:
                    self.space.add(chunk_keys, vectors, tokens)
                else:
                    for key in chunk_keys:
                        fresh[key] = len(fresh)
                    fresh_vectors.append(vectors)
                    fresh_tokens.append(tokens)
            report.encoded = len(todo)
            report.encode_seconds = time.perf_counter() - encode_start

        if self.space is not None:
            matrix, tokens = self.space.get(keys) if keys else (np.empty((0, self.dimension)), np.empty(0))
        else:
            stacked = np.concatenate(fresh_vectors) if fresh_vectors else np.empty((0, 0), np.float32)
            all_tokens = np.concatenate(fresh_tokens) if fresh_tokens else np.empty(0, np.int64)
            rows = np.array([fresh[k] for k in keys], dtype=np.int64)
            matrix, tokens = stacked[rows], all_tokens[rows]
        report.truncated = int((tokens > self.max_length).sum())
        report.seconds = time.perf_counter() - start
        self.last_report = report
        return matrix

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                   else self.model.get_sentence_embedding_dimension())

    def token_counts(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens per text, special tokens included and before truncation."""
        if self.backend == "onnx":
            return self.model.token_counts(list(texts))
        tokenizer = self.model.tokenizer
        counts = []
        for start in range(0, len(texts), 4096):
            encoded = tokenizer(list(texts[start:start + 4096]), add_special_tokens=True, truncation=False,
                                verbose=False)["input_ids"]
            counts.extend(len(ids) for ids in encoded)
        return np.asarray(counts, dtype=np.int64)

    def _encode_missing(self, texts: list[str]):
        """Yield ``(positions, vectors, token_counts)`` chunks, longest texts first."""
        from tqdm.auto import tqdm

        tokens = self.token_counts(texts)
        order = np.argsort(-tokens, kind="stable")
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        with tqdm(total=len(texts), unit="text", disable=not show, desc="encoding", file=sys.stderr) as bar:
            for start in range(0, len(order), self.chunk_size):
                chunk = order[start:start + self.chunk_size]
                vectors = self._encode_batch([texts[j] for j in chunk], tokens[chunk])
                trim_heap()
                bar.update(len(chunk))
                yield chunk, vectors, tokens[chunk]

    def _encode_batch(self, texts: list[str], tokens: np.ndarray) -> np.ndarray:
        if self.backend == "onnx":
            return self.model.encode(texts, batch_size=self.batch_size, max_batch_tokens=self.max_batch_tokens,
                                     normalize=self.normalize)
        import torch

        with torch.inference_mode():
            # one call per batch: the texts arrive sorted by token count, and a single call would let
            # sentence-transformers re-sort them by characters, which pads more (measured: +32% vs +2%)
            vectors = torch.cat([self.model.encode(texts[batch], batch_size=self.batch_size,
                                                   show_progress_bar=False, convert_to_numpy=False,
                                                   convert_to_tensor=True, normalize_embeddings=False)
                                 for batch in capped_batches(tokens, self.batch_size, self.max_length,
                                                             self.max_batch_tokens)]).float()
            if self.normalize:
                vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
        return vectors.cpu().numpy().astype(np.float32, copy=False)
