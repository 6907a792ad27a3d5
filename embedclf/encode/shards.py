"""One cache shard on disk: its record format, its name (which carries the sha256 of its bytes), and
checking it before its vectors are trusted. :mod:`embedclf.encode.cache` writes and indexes shards.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

import numpy as np

from embedclf.errors import EmbedclfError

SHARD_GLOB = "[0-9]*.npy"
SHARD_NAME = re.compile(r"^\d+-[0-9a-f]+(?:-(?P<sha256>[0-9a-f]{64}))?\.npy$")


def shard_dtype(dim: int) -> np.dtype:
    return np.dtype([("key", "V32"), ("tokens", "<u4"), ("vector", "<f4", (dim,))])


def map_shard(path: Path) -> np.ndarray:
    """A shard's records, mapped read-only: unmapped again when the array is dropped."""
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:  # never written by us half-way; say what it is
        raise EmbedclfError(f"{path}: unreadable cache shard ({exc}); remove it or run 'embedclf cache clear'") from None


def sequence_number(path: Path) -> int:
    digits = path.name.split("-", 1)[0]
    return int(digits) if digits.isdigit() else 0


def verified_shard(path: Path, dim: int | None) -> np.ndarray | None:
    """``path``'s records, mapped, if the shard is whole; else move it aside, warn once and return None.

    Whole means: a readable .npy header of shard records, exactly as many bytes as that header says,
    the space's dimension, and the sha256 of the file's bytes that its name carries; a shard of
    embedclf 0.1 (no checksum in its name) must hold finite vectors of plausible size.
    """
    match = SHARD_NAME.match(path.name)
    expected = match["sha256"] if match else None
    records, count = None, None
    try:
        size = path.stat().st_size
        if size == 0:
            problem = "empty file"
        else:
            try:
                records = np.load(path, mmap_mode="r")
                problem = _structural_problem(records, size, dim)
            except FileNotFoundError:
                raise
            except Exception as exc:  # a short file fails to map (ValueError), a mangled header anything
                problem, count = _header_problem(path, size)
                problem = problem or f"unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            if problem is None and expected is not None:
                with open(path, "rb") as handle:
                    if hashlib.file_digest(handle, "sha256").hexdigest() != expected:
                        problem = "checksum mismatch"
            elif problem is None:  # written before shards carried a checksum: the values must at least be sane
                problem = _implausible_values(records)
    except FileNotFoundError:
        return None  # another process moved it aside meanwhile (and said so)
    except OSError as exc:
        problem = f"unreadable: {exc.strerror or exc}"
    if problem is None:
        return records
    if records is not None and records.ndim == 1:
        count = len(records)
    del records
    try:
        os.replace(path, path.with_name(path.name + ".corrupt"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EmbedclfError(f"{path}: corrupt cache shard ({problem}) that cannot be moved aside ({exc.strerror}); "
                            "remove it or run 'embedclf cache clear'") from None
    held = f"its {count:,} vectors" if count is not None else "its vectors"
    print(f"embedclf: warning: cache shard {path} is corrupt ({problem}); moved aside, {held} will be encoded again",
          file=sys.stderr, flush=True)
    return None


def _header_problem(path: Path, size: int) -> tuple[str | None, int | None]:
    """For a shard numpy cannot map: "truncated" and its record count, when its header is still readable."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(handle)
            start = handle.tell()
        count = int(np.prod(shape))
        end = start + count * dtype.itemsize
    except Exception:
        return None, None
    return (f"truncated: {size:,} of {end:,} bytes" if size < end else None), (count if len(shape) == 1 else None)


def _structural_problem(records: np.ndarray, size: int, dim: int | None) -> str | None:
    names = records.dtype.names or ()
    if records.ndim != 1 or names != ("key", "tokens", "vector") or records.dtype["key"] != np.dtype("V32"):
        return "not a shard of cache records"
    vector = records.dtype["vector"]
    if vector.base != np.dtype("<f4") or len(vector.shape) != 1 or (dim is not None and vector.shape[0] != dim):
        return f"vectors of shape {vector.shape}, not ({dim},)"
    end = records.offset + records.nbytes
    if end != size:
        return f"{size:,} bytes, its header says {end:,}"
    return None


# An embedding coordinate is a few units at most; a flipped exponent bit makes one of 1e29 or NaN.
PLAUSIBLE_MAGNITUDE = 1e4


def _implausible_values(records: np.ndarray) -> str | None:
    """For a shard without a checksum (embedclf 0.1): non-finite or absurdly large vectors betray flipped bytes."""
    for start in range(0, len(records), 65_536):
        vectors = np.asarray(records["vector"][start:start + 65_536])
        if not np.isfinite(vectors).all():
            return "non-finite values in a shard without checksum"
        if vectors.size and np.abs(vectors).max() > PLAUSIBLE_MAGNITUDE:
            return "implausible values in a shard without checksum"
    return None


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
