"""A status line on stderr for the slow, silent steps (loading a model, exporting it to ONNX).

Shown only where a person watches (stderr is a terminal), like the progress bars: logs and pipes stay
clean. It ends with how long the step took, so a user learns what a cold start costs.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


@contextmanager
def status(message: str, *, stream=None):
    stream = stream or sys.stderr
    shown = hasattr(stream, "isatty") and stream.isatty()
    start = time.perf_counter()
    if shown:
        stream.write(f"{message} ...")
        stream.flush()
    try:
        yield
    except BaseException:
        if shown:
            stream.write(" stopped\n")
        raise
    if shown:
        stream.write(f" done in {time.perf_counter() - start:.1f}s\n")
        stream.flush()
