"""A status line on stderr for the slow, silent steps (loading a model, exporting or quantising it).

Shown only where a person watches (stderr is a terminal), like the progress bars: logs and pipes stay
clean. While the step runs a spinner counts the seconds (and says how long it should take, when the
caller knows); it ends with how long the step took, so a user learns what a cold start costs. A step
inside another (an export while a model loads) gets a line of its own; the outer one resumes after it.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

SPINNER = "|/-\\"
_active: list[dict] = []  # the status lines open now, innermost last


@contextmanager
def status(message: str, *, stream=None, eta: float | None = None):
    stream = stream or sys.stderr
    shown = hasattr(stream, "isatty") and stream.isatty()
    start = time.perf_counter()
    done = threading.Event()
    expected = f", about {eta:.0f}s" if eta else ""
    me = {"drawn": 0, "broken": False}

    def line(tail: str) -> str:
        return f"{message} ... {tail}"

    def spin():
        while not done.wait(0.25):
            if _active and _active[-1] is me:
                me["drawn"] += 1
                prefix = "" if me["broken"] else "\r"  # broken: an inner step ended, the cursor is on a new line
                me["broken"] = False
                stream.write(prefix + line(f"{SPINNER[me['drawn'] % 4]} {time.perf_counter() - start:.0f}s{expected}"))
                stream.flush()

    def end(word: str) -> None:
        done.set()
        spinner.join()
        _active.remove(me)
        took = f"{word} {time.perf_counter() - start:.1f}s"
        if me["broken"]:  # an inner step wrote its own line meanwhile
            stream.write(line(took) + "\n")
        elif me["drawn"]:
            stream.write("\r" + line(took) + " " * (len(expected) + 6) + "\n")
        else:
            stream.write(f" {took}\n")
        stream.flush()
        if _active:
            _active[-1]["broken"] = True

    if not shown:
        yield
        return
    if _active and not _active[-1]["broken"]:
        stream.write("\n")  # the outer step's line stays as it was; it resumes below
        _active[-1]["broken"] = True
    stream.write(f"{message} ...")
    stream.flush()
    _active.append(me)
    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        yield
    except BaseException:
        end("stopped after")
        raise
    end("done in")
