"""The actor pool: encoder settings for the actors' hardware, the actor that encodes a batch (and checks
it encodes as the driver does), and ``map_batches`` over a fixed pool that survives a killed actor."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from embedclf.encode.settings import EncoderSettings
from embedclf.errors import EmbedclfError

VECTOR_COLUMNS = ("key", "tokens", "vector")


def actor_settings(requested: EncoderSettings, gpus_per_actor: float, cache=None) -> EncoderSettings:
    """``requested`` resolved for the actors' hardware, not the driver's (which may have no GPU): device
    ``auto`` is CUDA when each actor gets a GPU (torch) and the CPU otherwise; precision ``auto`` is then
    that device's. The model's files are fingerprinted on the driver (memo in ``cache``, an
    EmbeddingCache), and a model directory is named by its absolute path (the actors' working directory
    is not the driver's)."""
    backend = requested.backend
    if gpus_per_actor and backend != "torch":
        raise EmbedclfError(f"the {backend} backend runs on the CPU; --gpus-per-actor needs --backend torch")
    device = requested.device
    if device == "auto":
        device = "cuda" if gpus_per_actor else "cpu"
    elif device.startswith("cuda") and not gpus_per_actor:
        raise EmbedclfError(f"--device {device} with --engine ray needs --gpus-per-actor (GPUs for the actors)")
    memo = cache.fingerprint_memo if cache is not None else None
    resolved = requested.resolve(memo, device=device)  # the actors' device, taken as given: no torch here
    local = Path(requested.model)  # a model directory: the same absolute path on every node, not our cwd
    return replace(resolved, model=str(local.resolve())) if local.is_dir() else resolved


def mismatch_message(key: dict, expected: dict) -> str:
    """What an actor says when its encoder differs from the driver's."""
    import socket

    different = ", ".join(f"{k} {key.get(k)!r} (driver: {expected.get(k)!r})"
                          for k in sorted(set(key) | set(expected)) if key.get(k) != expected.get(k))
    return (f"Ray worker {socket.gethostname()} encodes differently from the driver: {different}; "
            "install the same model files and embedclf version on every node")


class EncodeActor:
    """One Encoder per actor, loaded once; encodes a batch of (row, text) into (row, key, tokens, vector).

    The actor resolves the driver's settings again from *its own* model files and compares the cache key
    with the driver's, so a node with other files fails the run instead of mixing its vectors into the
    driver's cache space. A failure is raised on the first batch, not here: Ray would restart an actor
    whose constructor failed, again and again.
    """

    def __init__(self, settings: EncoderSettings, expected: dict):
        from embedclf.encode.encoder import Encoder

        self.mismatch = None
        try:
            mine = replace(settings, ref=None).resolve(device=settings.device)
        except EmbedclfError as exc:
            import socket

            self.mismatch = f"Ray worker {socket.gethostname()}: {exc}"
            return
        if mine.cache_key() != expected:
            self.mismatch = mismatch_message(mine.cache_key(), expected)
        self.encoder = Encoder(mine, cache=False, progress=False)

    def __call__(self, batch):
        import pyarrow as pa

        from embedclf.encode.cache import text_key

        if self.mismatch:
            raise EmbedclfError(self.mismatch)
        texts = batch.column("text").to_pylist()
        vectors = self.encoder.encode(texts)
        return pa.table({
            "row": batch.column("row"),
            "key": pa.array([text_key(t) for t in texts], pa.binary(32)),
            "tokens": pa.array(self.encoder.token_counts(texts), pa.int32()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1]),
        })


def map_on_pool(dataset, actor_cls, constructor_kwargs: dict, engine, *, batch_size: int):
    """``dataset.map_batches`` over a fixed pool of ``engine.actors``; a killed actor is restarted and its
    batch retried, at most ``engine.retries`` times each (Ray Data's own default is forever)."""
    import warnings

    import ray
    from ray.data import ActorPoolStrategy

    # The pool: ``concurrency`` before Ray 2.51, ``compute`` since (each warns on the other). Ray Data queues
    # up to 4 batches on an actor by default, so one actor that loads its model first can take the work of
    # all; a CPU batch takes seconds, so one at a time costs nothing, and a GPU batch (tens of ms) gets one
    # more waiting behind it so the GPU never idles.
    gpus = engine.gpus_per_actor
    if tuple(int(part) for part in ray.__version__.split(".")[:2]) >= (2, 51):
        size = dict(compute=ActorPoolStrategy(size=engine.actors, max_tasks_in_flight_per_actor=2 if gpus else 1))
    else:
        size = dict(concurrency=engine.actors)
    with warnings.catch_warnings():
        # max_restarts and max_task_retries have no named parameter yet; Ray 2.60 warns on **ray_remote_args
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=DeprecationWarning)
        return dataset.map_batches(actor_cls, fn_constructor_kwargs=constructor_kwargs, **size,
                                   num_gpus=gpus or None, num_cpus=engine.cpus_per_actor, batch_size=batch_size,
                                   batch_format="pyarrow", max_restarts=engine.retries,
                                   max_task_retries=engine.retries)
