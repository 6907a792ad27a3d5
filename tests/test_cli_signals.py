"""Ctrl-C ends a command with exit 130 and one line, and the next run resumes; status lines on a terminal."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.conftest import sample_texts

ROOT = Path(__file__).resolve().parents[1]
# ``embedclf`` with each chunk's encoding slowed down: the tiny model encodes 3,000 texts in a blink, before
# the test could interrupt it
SLOW_CLI = ("import sys, time; sys.path.insert(0, {root!r}); from embedclf.encode.backends.torch import TorchEmbedder; "
            "fast = TorchEmbedder.encode; TorchEmbedder.encode = lambda self, *a: time.sleep(0.02) or fast(self, *a); "
            "from embedclf.cli import main; main()")


def test_ctrl_c_exits_130_with_one_line_and_the_next_run_resumes(tiny_model, tmp_path):
    import pandas as pd

    data = tmp_path / "texts.csv"
    pd.DataFrame({"text": sample_texts(3000, seed=7)}).to_csv(data, index=False)
    common = [sys.executable, "-m", "embedclf", "encode", str(data), "--model", tiny_model, "--device", "cpu",
              "--precision", "fp32", "--chunk-size", "10"]
    cache = tmp_path / "cache"
    slow = [sys.executable, "-c", SLOW_CLI.format(root=str(ROOT)), *common[3:]]
    # a shell that starts a job in the background (``cmd &``) sets it to ignore SIGINT, and children
    # inherit that: give the command the default disposition a terminal's Ctrl-C would meet
    process = subprocess.Popen([*slow, "--cache", str(cache)], stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache.glob("*/shards/[0-9]*.npy"))) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("embedclf: interrupted")
    resumed = subprocess.run([*common, "--cache", str(cache), "--out", str(tmp_path / "X.npy")], capture_output=True,
                             text=True, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    summary = next(line for line in resumed.stderr.splitlines() if "cached," in line)
    cached = int(summary.split(" cached,")[0].rsplit(", ", 1)[-1].replace(",", ""))
    assert cached >= 30, summary
    clean = subprocess.run([*common, "--cache", str(tmp_path / "clean"), "--out", str(tmp_path / "Y.npy")],
                           capture_output=True, text=True, cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "X.npy"), np.load(tmp_path / "Y.npy"))


# a command whose Ctrl-C lands while a weakref callback runs (as one did in CI, inside WeakValueDictionary's
# remove during garbage collection): Python cannot raise it there, prints it as "Exception ignored" with a
# traceback, and carries on
LOST_INTERRUPT_CLI = """
import gc, sys, time, weakref
sys.path.insert(0, {root!r})
from embedclf.cli import app, main

class Thing:
    pass

def interrupted_in_callback(reference):
    raise KeyboardInterrupt

@app.command("lost-interrupt")
def lost_interrupt() -> None:
    thing = Thing()
    reference = weakref.ref(thing, interrupted_in_callback)
    del thing
    gc.collect()
    for _ in range(200):  # the rest of the command's work
        time.sleep(0.01)
    print("finished the work after Ctrl-C", file=sys.stderr)

main()
"""


def test_ctrl_c_swallowed_by_a_finaliser_still_ends_the_command_with_130():
    # as a terminal's command would meet Ctrl-C: with SIGINT's default disposition (see the test above)
    result = subprocess.run([sys.executable, "-c", LOST_INTERRUPT_CLI.format(root=str(ROOT)), "lost-interrupt"],
                            capture_output=True, text=True, timeout=60,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert result.returncode == 130, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "finished the work" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("embedclf: interrupted")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_status_line_on_a_terminal_only():
    from embedclf.console import status

    terminal, pipe = _Terminal(), io.StringIO()
    with status("loading a model", stream=terminal):
        pass
    with status("loading a model", stream=pipe):
        pass
    assert terminal.getvalue().startswith("loading a model ... done in ") and pipe.getvalue() == ""
