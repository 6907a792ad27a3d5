"""Table files: CSV, TSV, JSON lines (or one JSON array) and Parquet, chosen by extension, optionally compressed.

:func:`read_table` turns a file into a DataFrame of its cells as written (CSV/TSV cells stay
strings, TSV quotes are content); every failure is one ``EmbedclfError`` naming the file, and
the line or byte where it can. What the columns mean is :mod:`embedclf.data`'s business.
"""

from __future__ import annotations

import codecs
import csv
import json
from pathlib import Path
from typing import Iterable, Sequence

from embedclf.errors import EmbedclfError

COMPRESSIONS = {".gz", ".bz2", ".xz", ".zst", ".zip"}
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def detect_format(path: str | Path) -> str:
    """``csv``, ``tsv``, ``jsonl`` or ``parquet``, from the extension under any compression suffix."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    while suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise EmbedclfError(f"{path}: unknown file type; expected one of "
                            + ", ".join(sorted(FORMATS)) + " (optionally compressed)")
    return fmt


def read_table(path: str | Path, columns: Sequence[str] | None = None):
    """Read a table into a DataFrame; ``columns`` names the columns of a headerless CSV/TSV."""
    path = Path(path)
    if not path.exists():
        raise EmbedclfError(f"{path}: no such file")
    if path.is_dir():
        raise EmbedclfError(f"{path}: is a directory, expected a data file")
    fmt = detect_format(path)
    if columns and fmt == "parquet":  # JSON lines ignore them: a model read from headerless TSV reads JSON too
        raise EmbedclfError(f"{path}: --columns is for headerless CSV/TSV files; Parquet names its columns")
    try:
        if fmt in ("csv", "tsv"):
            return _read_delimited(path, fmt, columns)
        if fmt == "jsonl":
            return _read_json_lines(path)
        import pandas as pd

        return pd.read_parquet(path)
    except UnicodeDecodeError:
        raise EmbedclfError(f"{path}: not valid UTF-8 ({_first_bad_utf8(path)})") from None
    except EmbedclfError:
        raise
    except Exception as exc:  # pandas/pyarrow parser errors carry the line number in their text
        message = " ".join(str(exc).split())
        raise EmbedclfError(f"{path}: cannot read as {fmt.upper()}: {message}") from None


def _read_delimited(path: Path, fmt: str, columns: Sequence[str] | None):
    import pandas as pd

    options = dict(sep="," if fmt == "csv" else "\t", dtype=str, keep_default_na=False, na_values=[],
                   encoding="utf-8")
    if fmt == "tsv":
        options["quoting"] = csv.QUOTE_NONE  # TSV cells are raw text: quotes are content
    if columns:
        options.update(header=None, names=list(columns))
    frame = pd.read_csv(path, **options)
    if columns and len(frame.columns) != len(columns):
        raise EmbedclfError(f"{path}: --columns names {len(columns)} columns, the file has {len(frame.columns)}")
    return frame


def _read_json_lines(path: Path):
    import pandas as pd

    with open_text(path) as handle:
        records = json_records(handle, path)
    if records is not None:
        return pd.DataFrame.from_records(records)
    with open_text(path) as handle:  # a JSON array, not JSON lines
        try:
            document = json.load(handle)
        except json.JSONDecodeError as exc:
            raise EmbedclfError(f"{path}: invalid JSON array (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(document, list) or not all(isinstance(record, dict) for record in document):
        raise EmbedclfError(f"{path}: expected JSON lines or a JSON array of objects")
    return pd.DataFrame.from_records(document)


def json_records(lines: Iterable[str], path) -> list[dict] | None:
    """The objects of JSON lines, blank lines skipped; None when the first line opens a JSON array instead."""
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == 1 and line.lstrip().startswith("["):
                return None
            raise EmbedclfError(f"{path}: line {number}: invalid JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # numbers too long for int(), nesting too deep
            raise EmbedclfError(f"{path}: line {number}: unreadable JSON ({exc})") from None
        if not isinstance(record, dict):
            raise EmbedclfError(f"{path}: line {number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return records


def open_text(path: Path):
    """``path`` opened as UTF-8 text, through gzip, bz2 or xz when its suffix says so."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        import gzip
        return gzip.open(path, "rt", encoding="utf-8")
    if suffix == ".bz2":
        import bz2
        return bz2.open(path, "rt", encoding="utf-8")
    if suffix == ".xz":
        import lzma
        return lzma.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _first_bad_utf8(path: Path) -> str:
    """Locate the first byte that is not UTF-8, as 'line N, byte B'."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                newlines = chunk[:exc.start].count(b"\n")
                return f"line {line + newlines}, byte {offset + exc.start}"
            line += chunk.count(b"\n")
            offset += len(chunk)
    return "at end of file"
