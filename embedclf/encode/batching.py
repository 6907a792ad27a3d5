"""How texts are grouped into forward passes, and keeping memory flat between chunks: shared by every backend."""

from __future__ import annotations

import functools
import time
from typing import Sequence

import numpy as np


BATCH_TOKENS_PER_TEXT = 64  # the default max_batch_tokens is this many per text of a full batch
TRIM_EVERY_SECONDS = 1.0
_last_trim = float("-inf")


def capped_batches(tokens: Sequence[int], batch_size: int, max_length: int,
                   max_batch_tokens: int | None = None) -> list[slice]:
    """Batches over texts sorted longest first: ``batch_size`` texts, fewer where the batch's longest text
    would make it more than ``max_batch_tokens`` padded tokens (default ``BATCH_TOKENS_PER_TEXT * batch_size``).

    A batch's activations grow with texts x padded tokens (on the CPU, 32 x 256 tokens took ~230 MB more
    than 32 x 32), so without the cap one long text in a corpus of short ones sets the peak memory.
    """
    max_batch_tokens = max_batch_tokens or BATCH_TOKENS_PER_TEXT * batch_size
    batches, start = [], 0
    while start < len(tokens):
        longest = max(1, min(int(tokens[start]), max_length))
        size = max(1, min(batch_size, max_batch_tokens // longest))
        batches.append(slice(start, min(start + size, len(tokens))))
        start += size
    return batches


def length_runs(tokens: Sequence[int], overhead: float, power: int = 1) -> list[np.ndarray]:
    """Positions of ``tokens`` cut into runs of similar lengths, shortest first, at the least total cost: a
    run costs ``overhead`` plus its count x its longest ** ``power``, padded tokens (1) or padded attention
    (2). Found exactly, by dynamic programming over the sorted lengths.

    The server cuts a group of mixed lengths into forward passes so (``serve/service``), and the padding-free
    pass cuts a batch's attention into runs (``backends/unpadded``): ``embedclf encode`` sorts a whole
    corpus, so its batches barely pad, but a server can only sort what arrived together.
    """
    order = np.argsort(tokens, kind="stable")
    lengths = np.asarray(tokens, dtype=np.int64)[order]
    n = len(lengths)
    best, cut = [0] + [None] * n, [0] * (n + 1)
    for end in range(1, n + 1):
        widest = int(lengths[end - 1]) ** power
        best[end], cut[end] = min((best[start] + overhead + (end - start) * widest, start) for start in range(end))
    runs, end = [], n
    while end > 0:
        runs.append(order[cut[end]:end])
        end = cut[end]
    return runs[::-1]


def trim_heap(every: float = TRIM_EVERY_SECONDS) -> None:
    """Give freed heap memory back to the OS, where the C library is glibc, at most once per ``every``
    seconds; a no-op elsewhere.

    Batches of varying lengths free and reallocate tensors of varying sizes, and glibc keeps what
    is freed inside its heap: without this, RSS creeps up chunk after chunk (measured: +50 MB at
    30k texts over 2k). A call costs one to a few milliseconds and holds glibc's heap meanwhile, which
    a server's small calls, two at once, felt (0.2-0.3 ms per text of 8-text calls): hence the spacing.
    """
    global _last_trim
    trim = _malloc_trim()
    now = time.monotonic()
    if trim is not None and now - _last_trim >= every:
        _last_trim = now
        trim(0)


@functools.cache
def _malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
