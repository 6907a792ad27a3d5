"""The Ray session: import Ray or say how to install it, start or join an instance, keep its logs quiet,
turn a worker's EmbedclfError back into the driver's one line, and refuse a pool that cannot start."""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager

from embedclf.errors import EmbedclfError, missing_extra


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (ray without the [data] extra lacks pandas/pyarrow glue)
    except ImportError:
        raise missing_extra("Ray", "ray") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None, progress: bool | None = None):
    """Use the running Ray instance, connect to ``address`` ('auto', 'ray://head:10001'), or start a
    local one with ``num_cpus`` (default: this machine's); yields the seconds start-up took (0 if running)."""
    ray = require_ray()
    start = time.perf_counter()
    _quiet_ray_logging()
    ours = not ray.is_initialized()
    if ours:
        quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
        if address is None:
            ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = sys.stderr.isatty() if progress is None else progress
    try:
        yield time.perf_counter() - start if ours else 0.0
    finally:
        if ours:
            ray.shutdown()


class _Drop(logging.Filter):
    def __init__(self, function: str):
        super().__init__()
        self.function = function

    def filter(self, record: logging.LogRecord) -> bool:
        return record.funcName != self.function


def _quiet_ray_logging() -> None:
    """Ray's INFO lines off stderr, and two warnings about choices made here; Ray's other warnings stay."""
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # "Running Dataset ...", stats
    for name in ("ray.data.exceptions", "ray.data._internal.execution.streaming_executor_state"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # they log the exception the driver then raises
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "Progress bars disabled"
    auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _Drop) for f in auth.filters):
        auth.addFilter(_Drop("_warn_token_auth_enabled"))  # "token authentication is enabled": good, not news


def run_action(action):
    """Run a Ray call; an EmbedclfError raised in a task or actor becomes the driver's one-line error.

    A task's error carries its cause; Ray Data hands a worker's exception back as text inside its own
    exception type, so there the message is found by the exception's qualified name.
    """
    try:
        with warnings.catch_warnings():  # an input of fewer blocks than actors is fine: the pool is not resized
            warnings.filterwarnings("ignore", message="The minimum number of concurrent actors", category=UserWarning)
            return action()
    except Exception as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, EmbedclfError):
            raise EmbedclfError(str(cause)) from None
        marker = f"{EmbedclfError.__module__}.{EmbedclfError.__qualname__}: "
        for line in str(exc).splitlines():
            if marker in line:
                raise EmbedclfError(line.split(marker, 1)[1].strip()) from None
        raise


def check_fits(engine) -> None:
    """On a local instance (no autoscaler to add machines), a pool that cannot start would wait forever."""
    import ray

    if engine.address is not None:
        return
    have = ray.cluster_resources()
    for name, each in (("CPU", engine.cpus_per_actor), ("GPU", engine.gpus_per_actor)):
        if each and engine.actors * each > have.get(name, 0):
            raise EmbedclfError(f"{engine.actors} actors x {each:g} {name} need {engine.actors * each:g} {name}s; "
                                f"this machine's Ray instance has {have.get(name, 0):g}: lower --actors"
                                + (" or --gpus-per-actor" if name == "GPU" else ""))
