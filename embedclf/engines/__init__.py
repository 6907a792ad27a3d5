"""Engines: where texts are encoded and labelled. One interface, two engines.

* ``local`` (:mod:`.local`): this process, through the embedding cache.
* ``ray`` (:mod:`.ray`): a pool of Ray actors, on this machine or a cluster (``embedclf[ray]``).

A command builds an :class:`EngineSettings` from ``--engine`` and the scale-out options and calls
:func:`encode_data` or :func:`predict_data`; both engines read files by the same rules
(``embedclf.data``), honour the same encoder settings, device and cache, and return a result
whose ``lines()`` are the command's summary. Importing this package imports neither Ray nor torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from embedclf.errors import EmbedclfError

if TYPE_CHECKING:
    from embedclf.data import DataOptions
    from embedclf.encode.settings import EncoderSettings
    from embedclf.engines.results import EncodeResult, PredictResult


class EngineKind(str, Enum):
    """Where the work runs."""

    local = "local"  # this process
    ray = "ray"  # a pool of Ray actors, on this machine or a cluster (needs embedclf[ray])


@dataclass(frozen=True)
class EngineSettings:
    """The engine and, for Ray, its cluster (``address``: None starts Ray here, 'auto', 'ray://head:10001')
    and actor pool: ``actors`` workers of ``cpus_per_actor`` CPUs and ``gpus_per_actor`` GPUs, a killed
    one restarted and its batch retried ``retries`` times."""

    kind: EngineKind | str = EngineKind.local
    address: str | None = None
    actors: int = 2
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    retries: int = 3

    def __post_init__(self):
        kind = self.kind.value if isinstance(self.kind, Enum) else self.kind
        if kind not in EngineKind.__members__:
            raise EmbedclfError(f"--engine {kind!r} is not one of: {', '.join(EngineKind.__members__)}")
        object.__setattr__(self, "kind", EngineKind(kind))
        if isinstance(self.actors, bool) or not isinstance(self.actors, int) or self.actors < 1:
            raise EmbedclfError(f"--actors must be at least 1, got {self.actors!r}")
        if not self.gpus_per_actor >= 0:
            raise EmbedclfError(f"--gpus-per-actor must be 0 or more, got {self.gpus_per_actor!r}")
        if not self.cpus_per_actor > 0:
            raise EmbedclfError(f"--cpus-per-actor must be more than 0, got {self.cpus_per_actor!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise EmbedclfError(f"retries must be 0 or more, got {self.retries!r}")
        scale_out = (self.address, self.actors, self.gpus_per_actor, self.cpus_per_actor)
        if self.kind is EngineKind.local and scale_out != (None, 2, 0, 1):
            raise EmbedclfError("--address, --actors and --gpus-per-actor are for --engine ray")


def encode_data(path: str | Path, data_options: DataOptions, encoder_settings: EncoderSettings,
                engine: EngineSettings = EngineSettings(), *, cache=None, out_dir: str | Path | None = None,
                progress: bool | None = None, check_fidelity: int | None = None, long_text=None) -> EncodeResult:
    """Encode the texts of ``path`` (a data file, or a directory of them) into the cache.

    ``cache``: None for ``$EMBEDCLF_CACHE`` or ``./cache``, a directory, or False for none. With Ray,
    ``out_dir`` takes the actors' Parquet shards (default ``CACHE/ray-SPACE/RUN``). ``check_fidelity=N``
    (local only) also compares the first N vectors with fp32 torch. ``long_text``
    (:class:`~embedclf.encode.long_text.LongTextSettings`, local only) chunks long texts.
    ``result.matrix()`` is in input order.
    """
    if check_fidelity is not None and check_fidelity < 1:
        raise EmbedclfError("--check-fidelity needs a positive number of texts")
    if engine.kind is EngineKind.ray:
        if check_fidelity is not None:
            raise EmbedclfError("--check-fidelity runs with --engine local")
        if long_text is not None and long_text.mode != "truncate":
            raise EmbedclfError("--long-text chunk runs with --engine local")
        from embedclf.engines.ray.encode import encode

        return encode(path, data_options, encoder_settings, engine, cache=cache, out_dir=out_dir, progress=progress)
    if out_dir is not None:
        raise EmbedclfError("--out-dir is for --engine ray")
    from embedclf.engines.local import encode

    return encode(path, data_options, encoder_settings, cache=cache, progress=progress, check_fidelity=check_fidelity,
                  long_text=long_text)


def predict_data(model_dir: str | Path, path: str | Path, out: str | Path, engine: EngineSettings = EngineSettings(),
                 *, data_overrides: dict | None = None, encoder_overrides: dict | None = None, cache=None,
                 cooccur: str | Path | None = None) -> PredictResult:
    """Label the texts of ``path`` with the model folder ``model_dir``.

    ``data_overrides`` (``text_cols``, ``columns``) and ``encoder_overrides`` (``model``, ``device``,
    ``batch_size``, ``backend``, ``precision``) replace the model's own where not None. ``cache`` as for
    :func:`encode_data`. Local writes the table ``out`` (.csv, .tsv, .jsonl or .parquet); Ray writes a
    directory ``out`` of Parquet shards, and imports the actors' vectors into ``cache``.
    """
    options = dict(data_overrides=data_overrides or {}, encoder_overrides=encoder_overrides or {}, cache=cache,
                   cooccur=cooccur)
    if engine.kind is EngineKind.ray:
        from embedclf.engines.ray.predict import predict

        return predict(model_dir, path, out, engine, **options)
    from embedclf.engines.local import predict

    return predict(model_dir, path, out, **options)


def __getattr__(name: str):  # the result types, imported when first asked for (they import numpy)
    if name in ("EncodeResult", "PredictResult", "RunResult"):
        from embedclf.engines import results

        return getattr(results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EngineKind", "EngineSettings", "EncodeResult", "PredictResult", "encode_data", "predict_data"]
