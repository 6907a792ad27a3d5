"""A content-addressed, append-only embedding cache on disk.

Layout under the cache root::

    <root>/<space>/space.json          what produced these vectors (model fingerprint, pooling, ...)
    <root>/<space>/shards/*.npy        append-only shards: records of (sha256 of text, tokens, vector)
    <root>/<space>/shards/*.corrupt    shards that failed verification, moved aside
    <root>/<space>/.lock               held while a shard is committed
    <root>/fingerprints.json           memo of model fingerprints

A *space* is one encoding configuration: every setting that changes a vector is in its id, so
vectors of different models, poolings, lengths, normalisations or precisions never mix. Inside a
space a vector is found by the sha256 of its text. A shard is written to a temporary file and
renamed into place, so it either exists whole or not at all: a process killed at any moment loses
only the shard it was writing, and the next run re-encodes just that. A shard's name carries the
sha256 of its bytes (``00000007-1a2b3c4d-<sha256>.npy``, chosen before the one rename, so the commit
stays atomic); a process checks it once, when it first indexes the shard. A shard that fails (flipped
bytes, truncated, empty, unreadable) is renamed to ``<name>.corrupt``, one warning line goes to stderr,
and its keys are simply missing: the Encoder encodes those texts again. Shards of older versions,
named without a checksum, are checked structurally only (header, size, dimension). Reading maps a
shard into memory, gathers its rows with numpy and unmaps it again (mapped pages count in the
process's RSS, so keeping every shard mapped would grow it by the whole cache); the only per-text
work is one dict lookup.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from embedclf.encode.shards import (SHARD_GLOB, fsync_dir, map_shard, shard_dtype, sequence_number,
                                     verified_shard)
from embedclf.errors import EmbedclfError
from embedclf.io import atomic_write_text

DEFAULT_CACHE = "cache"
CACHE_ENV = "EMBEDCLF_CACHE"


def default_cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE))


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def space_id(config: dict) -> str:
    """The id of a cache space: a hash of what makes its vectors (``EncoderSettings.cache_key``).

    The model's name is left out: the fingerprint says what the model is, so the same files named
    ``all-MiniLM-L6-v2``, ``sentence-transformers/all-MiniLM-L6-v2`` or ``./models/minilm`` share a space.
    """
    key = {k: v for k, v in config.items() if k != "model"}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


class CacheSpace:
    """The vectors of one encoding configuration. Create it through :meth:`EmbeddingCache.space`."""

    def __init__(self, directory: Path, config: dict):
        self.directory = Path(directory)
        self.config = config
        self.shard_dir = self.directory / "shards"
        self._index: dict[bytes, tuple[int, int]] = {}
        self._shards: list[Path] = []
        self._shard_names: list[str] = []
        self._dim: int | None = config.get("dimension")
        self._written: set[str] = set()  # shards this object committed: their checksum is of bytes it wrote

    # -- reading -----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Map shards committed since the last look (by this or another process)."""
        if not self.shard_dir.is_dir():
            return
        known = set(self._shard_names)
        for path in sorted(self.shard_dir.glob(SHARD_GLOB)):
            if path.name in known:
                continue
            records = map_shard(path) if path.name in self._written else verified_shard(path, self._dim)
            if records is None:  # corrupt and moved aside (or moved aside by another process): not indexed
                continue
            shard_number = len(self._shards)
            self._shards.append(path)
            self._shard_names.append(path.name)
            keys = records["key"].tobytes()  # touches every page of the shard: unmapped below
            for row, start in enumerate(range(0, len(keys), 32)):
                self._index.setdefault(keys[start:start + 32], (shard_number, row))
            if self._dim is None and len(records):
                self._dim = records.dtype["vector"].shape[0]
            del records

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: bytes) -> bool:
        return key in self._index

    def missing(self, keys: Iterable[bytes]) -> list[bytes]:
        return [k for k in keys if k not in self._index]

    def get(self, keys: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors and token counts for ``keys``, in order; every key must be present."""
        locations = np.array([self._index[k] for k in keys], dtype=np.int64).reshape(-1, 2)
        dim = self._dim or 0
        vectors = np.empty((len(keys), dim), dtype=np.float32)
        tokens = np.empty(len(keys), dtype=np.int64)
        for shard_number in np.unique(locations[:, 0]):
            where = np.flatnonzero(locations[:, 0] == shard_number)
            rows = locations[where, 1]
            order = np.argsort(rows, kind="stable")  # sorted reads are kinder to the page cache
            shard = map_shard(self._shards[shard_number])
            records = shard[rows[order]]  # a copy; the mapping is dropped when ``shard`` goes
            del shard
            vectors[where[order]] = records["vector"]
            tokens[where[order]] = records["tokens"]
        return vectors, tokens

    # -- writing -----------------------------------------------------------------------------
    def add(self, keys: Sequence[bytes], vectors: np.ndarray, tokens: Sequence[int]) -> int:
        """Commit a shard with the vectors of ``keys`` not yet cached. Returns how many were new."""
        from filelock import FileLock

        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise ValueError("vectors must be a (len(keys), dim) matrix")
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.directory / ".lock")):
            self.refresh()  # another process may have committed some of these meanwhile
            self._remove_orphans()
            new = _first_new(keys, self._index)
            if not new:
                return 0
            records = np.empty(len(new), dtype=shard_dtype(vectors.shape[1]))
            records["key"] = np.frombuffer(b"".join(keys[i] for i in new), dtype="V32")
            records["tokens"] = np.asarray(tokens, dtype=np.int64)[new]
            records["vector"] = vectors[new]
            buffer = io.BytesIO()
            np.save(buffer, records)
            data = buffer.getbuffer()
            number = max((sequence_number(p) for p in self.shard_dir.glob("[0-9]*")), default=0) + 1
            final = self.shard_dir / f"{number:08d}-{uuid.uuid4().hex[:8]}-{hashlib.sha256(data).hexdigest()}.npy"
            tmp = self.shard_dir / f".tmp-{final.name}"
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            del data, buffer
            os.replace(tmp, final)
            fsync_dir(self.shard_dir)
            self._written.add(final.name)
            self.refresh()
        return len(new)

    def _remove_orphans(self) -> None:
        """Delete temporary files of writers that died mid-shard (safe: we hold the lock)."""
        for tmp in self.shard_dir.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.shard_dir.glob("*.npy")) if self.shard_dir.is_dir() else 0


def _first_new(keys: Sequence[bytes], index: dict) -> list[int]:
    seen: set[bytes] = set()
    new = []
    for i, key in enumerate(keys):
        if key not in index and key not in seen:
            seen.add(key)
            new.append(i)
    return new


@dataclass
class SpaceInfo:
    id: str
    config: dict
    entries: int
    shards: int
    size_bytes: int
    modified: float


class EmbeddingCache:
    """The cache root: one :class:`CacheSpace` per encoding configuration."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_root()
        if self.root.exists() and not self.root.is_dir():
            raise EmbedclfError(f"{self.root}: the cache must be a directory")

    @property
    def fingerprint_memo(self) -> Path:
        """Per machine, not per cache directory: see ``exports.fingerprint_memo``."""
        from embedclf.encode.exports import fingerprint_memo

        return fingerprint_memo()

    def space(self, config: dict) -> CacheSpace:
        directory = self.root / space_id(config)
        meta = directory / "space.json"
        if not meta.exists():
            try:
                atomic_write_text(meta, json.dumps(config, indent=2, sort_keys=True))
            except OSError as exc:
                raise EmbedclfError(f"{self.root}: cannot write to the cache ({exc.strerror})") from None
        space = CacheSpace(directory, config)
        space.refresh()
        return space

    def spaces(self) -> list[SpaceInfo]:
        infos = []
        for meta in sorted(self.root.glob("*/space.json")) if self.root.is_dir() else []:
            directory = meta.parent
            try:
                config = json.loads(meta.read_text())
            except ValueError:
                config = {}
            shards = sorted((directory / "shards").glob(SHARD_GLOB))
            entries = 0
            for shard in shards:
                try:
                    entries += len(np.load(shard, mmap_mode="r"))
                except (ValueError, OSError, EOFError):
                    pass
            size = sum(p.stat().st_size for p in shards)
            modified = max([p.stat().st_mtime for p in shards] + [meta.stat().st_mtime])
            infos.append(SpaceInfo(directory.name, config, entries, len(shards), size, modified))
        return infos

    def select(self, model: str | None = None) -> list[SpaceInfo]:
        """Every space, or those whose model name or fingerprint starts with ``model``."""
        return [info for info in self.spaces() if model is None or _matches_model(info.config, model)]

    def clear(self, model: str | None = None) -> list[SpaceInfo]:
        """Delete every space, or those whose model name or fingerprint starts with ``model``."""
        from filelock import FileLock

        removed = []
        for info in self.select(model):
            directory = self.root / info.id
            with FileLock(str(directory / ".lock")):
                shutil.rmtree(directory / "shards", ignore_errors=True)
                (directory / "space.json").unlink(missing_ok=True)
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(info)
        if model is None:  # ONNX exports that versions before the export store kept in the cache
            shutil.rmtree(self.root / "onnx", ignore_errors=True)
        return removed


def _matches_model(config: dict, model: str) -> bool:
    name = str(config.get("model", ""))
    return model in (name, Path(name).name) or str(config.get("fingerprint", "")).startswith(model) and len(model) >= 6


def format_age(seconds: float) -> str:
    seconds = max(0.0, time.time() - seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def format_spaces(spaces: list[SpaceInfo]) -> str:
    """``embedclf cache info``'s table: a line per space, its size, age, model and setting."""
    lines = [f"{'space':<16}  {'entries':>9}  {'size':>9}  {'modified':>9}  model"]
    for info in spaces:
        c = info.config
        setting = f"{c.get('pooling')}, {c.get('max_length')} tok, {c.get('backend', 'torch')} " \
                  f"{c.get('precision')}" + ("" if c.get("normalize", True) else ", unnormalised")
        lines.append(f"{info.id:<16}  {info.entries:>9,}  {info.size_bytes / 2**20:>7.1f}MB  "
                     f"{format_age(info.modified):>9}  {c.get('model')} [{str(c.get('fingerprint', ''))[:12]}] ({setting})")
    return "\n".join(lines)
