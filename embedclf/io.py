"""Writing result files safely: a file is replaced only by an atomic rename."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

from embedclf.errors import EmbedclfError


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_matrix_path(path: str | Path) -> Path:
    """Fail before any work is done if ``path`` cannot take a matrix."""
    path = Path(path)
    if path.suffix != ".npy":
        raise EmbedclfError(f"{path}: --out must end in .npy")
    if path.is_dir():
        raise EmbedclfError(f"{path}: is a directory")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_matrix(path: str | Path, matrix: np.ndarray) -> None:
    path = check_matrix_path(path)
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(matrix))
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise EmbedclfError(f"{path}: cannot write ({exc.strerror})") from None


TABLE_FORMATS = (".csv", ".tsv", ".jsonl", ".parquet")


def write_table(frame, path: str | Path) -> None:
    """Write a DataFrame as CSV, TSV, JSON lines or Parquet (by extension), atomically."""
    path = check_table_path(path)
    buffer = io.BytesIO()
    if path.suffix == ".csv":
        frame.to_csv(buffer, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(buffer, index=False, sep="\t")
    elif path.suffix == ".jsonl":
        frame.to_json(buffer, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(buffer, index=False)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise EmbedclfError(f"{path}: cannot write ({exc.strerror})") from None


def check_table_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix not in TABLE_FORMATS:
        raise EmbedclfError(f"{path}: output must end in one of {', '.join(TABLE_FORMATS)}")
    if path.is_dir():
        raise EmbedclfError(f"{path}: is a directory")
    return path


def check_output_dir(path: str | Path) -> Path:
    """Fail before any work if ``path`` cannot become a folder: an existing file, or a parent we cannot write."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise EmbedclfError(f"{path}: exists and is a file; --out names a folder")
    parent = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise EmbedclfError(f"{parent}: not writable; choose another --out")
    return path


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in blocks (of a directory: of its files' names and hashes, sorted):
    what identifies a data file in a sweep or a tracked run."""
    import hashlib

    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{child.relative_to(path)}\0{file_sha256(child)}\n".encode())
        return digest.hexdigest()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise EmbedclfError(f"{path}: cannot read ({exc.strerror})") from None
    return digest.hexdigest()
