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


MATRIX_FORMATS = (".npy", ".parquet")


def _check_output_file(path: str | Path, formats: tuple[str, ...], expected: str) -> Path:
    """Fail before any work is done if ``path`` has none of the ``formats``' extensions, or is a directory."""
    path = Path(path)
    if path.suffix not in formats:
        raise EmbedclfError(f"{path}: {expected}")
    if path.is_dir():
        raise EmbedclfError(f"{path}: is a directory")
    return path


def _replace_file(path: Path, data: bytes) -> None:
    """``data`` as the file ``path``, by an atomic rename; a failure is one line."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise EmbedclfError(f"{path}: cannot write ({exc.strerror})") from None


def check_matrix_path(path: str | Path) -> Path:
    """Fail before any work is done if ``path`` cannot take a matrix."""
    return _check_output_file(path, MATRIX_FORMATS, "--out must end in .npy (the matrix) or .parquet (row, id, vector)")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_matrix(path: str | Path, matrix: np.ndarray, ids: list | None = None, id_col: str | None = None) -> None:
    """The matrix as .npy, or as a Parquet table of (row, the input's id column if any, vector): row is
    1-based, as in predict's output, and ``ids`` (one per matrix row) goes in under ``id_col``."""
    path = check_matrix_path(path)
    buffer = io.BytesIO()
    if path.suffix == ".npy":
        np.save(buffer, np.ascontiguousarray(matrix))
    else:
        _write_embeddings_parquet(buffer, matrix, ids, id_col)
    _replace_file(path, buffer.getvalue())


def _write_embeddings_parquet(buffer, matrix: np.ndarray, ids: list | None, id_col: str | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    columns = {"row": pa.array(np.arange(1, len(matrix) + 1, dtype=np.int64))}
    if ids is not None and id_col not in (None, "row", "vector"):
        try:
            columns[id_col] = pa.array(ids, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed kinds (JSON lines): ids as written, as text
            columns[id_col] = pa.array([None if v is None else str(v) for v in ids], pa.string())
    columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])
    pq.write_table(pa.table(columns), buffer)


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
    _replace_file(path, buffer.getvalue())


def check_table_path(path: str | Path) -> Path:
    return _check_output_file(path, TABLE_FORMATS, f"output must end in one of {', '.join(TABLE_FORMATS)}")


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Fail before any work if ``path`` cannot become a folder: an existing file, or a parent we cannot write.
    ``option`` is the command-line option that named it, for the message."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise EmbedclfError(f"{path}: exists and is a file; {option} names a folder")
    parent = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise EmbedclfError(f"{parent}: not writable; choose another {option}")
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
