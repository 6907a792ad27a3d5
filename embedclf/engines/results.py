"""What an engine run read and did: one base for both engines and both jobs, the command's summary lines.

The local engine keeps the :class:`~embedclf.data.Dataset` it read and the encoder's own
:class:`~embedclf.encode.encoder.EncodeReport`; the Ray engine keeps its counts, the actor pool and
the seconds of each stage (start-up, read, encode or predict, import).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from embedclf.data import Dataset, read_as_missing_part
from embedclf.encode.encoder import EncodeReport
from embedclf.encode.settings import EncoderSettings


@dataclass
class RunResult:
    engine: str  # "local" or "ray"
    source: str  # the file or directory read
    settings: EncoderSettings | None = None  # resolved; with Ray, for the actors' hardware
    rows: int = 0
    texts: int = 0
    skipped_empty: int = 0
    skipped_unlabelled: int = 0
    dataset: Dataset | None = field(default=None, repr=False)  # local: what was read
    encoding: EncodeReport | None = None  # local: the encoder's report
    actors: int = 0  # ray: the pool
    stages: dict[str, float] = field(default_factory=dict)  # ray: seconds per stage
    seconds: float = 0.0
    cache_dir: str | None = None  # ray: the cache space the actors' vectors went into
    imported: int = 0  # ray: how many of them were new there
    labels_read_as_missing: dict[str, int] = field(default_factory=dict)  # ray: label cells read as "no label"
    id_col: str | None = None  # ray: the input's id column, if any
    row_ids: list | None = field(default=None, repr=False)  # ray: its value in every input row

    @classmethod
    def read_from(cls, dataset: Dataset, **fields) -> "RunResult":
        return cls(rows=dataset.n_rows, texts=len(dataset.texts), skipped_empty=dataset.skipped_empty,
                   skipped_unlabelled=dataset.skipped_unlabelled, dataset=dataset, **fields)

    @property
    def texts_per_second(self) -> float:
        if self.encoding is not None:
            return self.encoding.texts_per_second
        busy = self.stages.get("encode", self.stages.get("predict", 0.0))
        return self.texts / busy if busy > 0 else 0.0

    def read_line(self, source=None) -> str:
        source = self.source if source is None else source
        if self.dataset is not None:
            return replace(self.dataset, path=str(source)).summary()  # with the task, as the local reader says it
        skipped = [(self.skipped_empty, "empty text"), (self.skipped_unlabelled, "no label")]
        missing = [read_as_missing_part(self.labels_read_as_missing)] if self.labels_read_as_missing else []
        return "; ".join([f"read {self.rows:,} rows from {source}", f"{self.texts:,} texts"]
                         + [f"{n:,} skipped ({why})" for n, why in skipped if n] + missing)

    def input_ids(self) -> tuple[str | None, list | None]:
        """The input's id column and its value in every input row: (None, None) without one."""
        if self.dataset is not None:
            return self.dataset.id_col, self.dataset.row_ids
        return self.id_col, self.row_ids

    def pool_line(self) -> str:
        """The Ray run in one line: texts, actors, speed and where the time went."""
        stages = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.stages.items())
        return (f"{self.texts:,} texts on {self.actors} Ray actors, {self.texts_per_second:,.1f} texts/s, "
                f"{stages}, total {self.seconds:.1f}s")

    def import_lines(self) -> list[str]:
        return [f"imported {self.imported:,} new vectors into the cache, {self.cache_dir}"] if self.cache_dir else []

    def as_dict(self) -> dict:
        keep = ("engine", "source", "rows", "texts", "skipped_empty", "skipped_unlabelled", "actors", "seconds",
                "cache_dir", "imported")
        return {k: getattr(self, k) for k in keep} | {
            "stages": dict(self.stages), "texts_per_second": self.texts_per_second,
            "encoding": self.encoding.as_dict() if self.encoding else None,
            "encoder": self.settings.cache_key() if self.settings is not None and self.settings.resolved else None}


@dataclass
class EncodeResult(RunResult):
    out_dir: str | None = None  # ray: Parquet shards of (row, key, tokens, vector)
    dimension: int = 0
    fidelity: str | None = None  # local, with check_fidelity: the fidelity summary
    vectors: np.ndarray | None = field(default=None, repr=False)  # local: the matrix

    def matrix(self) -> np.ndarray:
        """The ``(rows, dimension)`` float32 matrix with one row per input row, in input order (with Ray,
        read from the shards): row i is the input's row i, and a row that was not encoded (empty text,
        or no label for a multi-class target) is all NaN, so the matrix lines up with the input.
        """
        if self.vectors is None and self.out_dir is not None:
            import pyarrow.parquet as pq

            from embedclf.engines.ray.shards import matrix_of, shard_files

            shards = shard_files(self.out_dir)
            if not shards:
                return np.full((self.rows, self.dimension), np.nan, np.float32)
            table = pq.read_table([str(p) for p in shards], columns=["row", "vector"])
            return _one_row_per_input(self.rows, table.column("row").to_numpy(), matrix_of(table.column("vector")))
        if self.vectors is None or self.dataset is None:
            return self.vectors
        return _one_row_per_input(self.dataset.n_rows, self.dataset.rows, self.vectors)

    def nan_rows_line(self) -> str | None:
        """How many rows of :meth:`matrix` are NaN and why; None when there are none."""
        if not (self.skipped_empty or self.skipped_unlabelled):
            return None
        why = [(self.skipped_empty, "empty text"), (self.skipped_unlabelled, "no label")]
        return "matrix keeps one row per input row: " + ", ".join(
            f"{n:,} row{'s' if n != 1 else ''} with {reason}" for n, reason in why if n) + " written as NaN"

    def lines(self, source=None) -> list[str]:
        s, nan_rows = self.settings, self.nan_rows_line()
        if self.engine == "local":
            lines = [self.read_line(source),
                     f"encoded with {s.describe()}: {self.encoding.summary(s.max_length)}"]
            if self.encoding.cache_dir:
                lines.append(f"embeddings cached in {self.encoding.cache_dir} ({self.dimension} dims)")
            return lines + ([nan_rows] if nan_rows else []) + ([self.fidelity] if self.fidelity else [])
        return [self.read_line(source), f"encoded with {s.describe()}: {self.pool_line()}",
                f"vectors in {self.out_dir} (Parquet: row, key, tokens, vector; {self.dimension} dims)",
                *([nan_rows] if nan_rows else []), *self.import_lines()]


def _one_row_per_input(n_rows: int, rows: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``vectors`` (of the input rows ``rows``, 0-based) placed in an ``(n_rows, dim)`` matrix of NaN."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == n_rows and np.array_equal(rows, np.arange(n_rows)):
        return vectors
    full = np.full((n_rows, vectors.shape[1]), np.nan, dtype=np.float32 if vectors.dtype.kind != "f" else vectors.dtype)
    full[rows] = vectors
    return full


@dataclass
class PredictResult(RunResult):
    out: str = ""  # local: the table; ray: the directory of Parquet shards
    added: int | None = None  # local, with co-occurrence rules: labels they added
    features_line: str = ""  # local: what the features step did, when not only embeddings (tfidf, hybrid)

    def lines(self, source=None) -> list[str]:
        if self.engine == "local":
            extra = f"; rules added {self.added:,} labels" if self.added is not None else ""
            encoded = self.features_line or self.encoding.summary(self.settings.max_length)
            return [self.read_line(source), f"embeddings: {encoded}",
                    f"wrote {self.texts:,} predictions to {self.out}{extra}"]
        return [self.read_line(source), f"predicted with {self.settings.describe()}: {self.pool_line()}",
                f"wrote {self.texts:,} predictions to {self.out} (Parquet shards; row is 1-based, as in predict)",
                *self.import_lines()]


__all__ = ["EncodeResult", "PredictResult", "RunResult"]
