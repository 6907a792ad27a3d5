"""A status line on stderr for the slow, silent steps (loading a model, exporting or quantising it).

Shown only where a person watches (stderr is a terminal), like the progress bars: logs and pipes stay
clean. While the step runs a spinner counts the seconds (and says how long it should take, when the
caller knows); it ends with how long the step took, so a user learns what a cold start costs.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

SPINNER = "|/-\\"


@contextmanager
def status(message: str, *, stream=None, eta: float | None = None):
    stream = stream or sys.stderr
    shown = hasattr(stream, "isatty") and stream.isatty()
    start = time.perf_counter()
    done = threading.Event()
    expected = f", about {eta:.0f}s" if eta else ""

    drawn = []

    def spin():
        while not done.wait(0.25):
            drawn.append(1)
            stream.write(f"\r{message} ... {SPINNER[len(drawn) % 4]} {time.perf_counter() - start:.0f}s{expected}")
            stream.flush()

    def end(word: str) -> None:
        done.set()
        spinner.join()
        line = f"{word} {time.perf_counter() - start:.1f}s"
        stream.write(f"\r{message} ... {line}{' ' * (len(expected) + 6)}\n" if drawn else f" {line}\n")
        stream.flush()

    spinner = threading.Thread(target=spin, daemon=True) if shown else None
    if shown:
        stream.write(f"{message} ...")
        stream.flush()
        spinner.start()
    try:
        yield
    except BaseException:
        if shown:
            end("stopped after")
        raise
    if shown:
        end("done in")
