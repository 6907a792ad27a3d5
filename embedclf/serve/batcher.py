"""Dynamic batching: concurrent requests merged into one forward pass, the model run off the event loop.

Requests wait in a queue that ``workers`` workers drain (two groups can encode at once: see
:attr:`embedclf.serve.service.Service.workers`). A worker takes the oldest request and adds the
next ones while the group still fits ``passes`` forward passes of the encoder's policy (``batch_size``
texts, ``max_batch_tokens`` padded tokens each, as ``embedclf encode`` batches): a larger group sorts
by length into fuller passes with less padding (a pass has a fixed cost of several short texts), and a
request waits at most for the group ahead of it. A single request larger than that is taken alone
and split by the encoder. It waits up to ``max_wait_ms`` for company, but only while
other requests are still being read or another worker's group is in the model (the clients it just
answered send again within a few milliseconds, and the cores are busy meanwhile): a lone client is
never held back. A worker takes at most its fair share of the texts in the server, those in the model
included, and goes as soon as it has it (see :meth:`Batcher._share`). The group runs in a thread of the
worker's own (``run_in_executor``), so the loop keeps answering ``/health`` and reading
requests while the model works, and the next group forms meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Job:
    """One request's texts, their token counts (truncated), and whether it wants the head's scores."""

    texts: list[str]
    tokens: np.ndarray
    scores: bool = False
    future: asyncio.Future | None = field(default=None, repr=False)

    @property
    def longest(self) -> int:
        return int(self.tokens.max()) if len(self.tokens) else 1


@dataclass
class Output:
    vectors: np.ndarray
    scores: np.ndarray | None = None


# work(texts, tokens, score_rows) -> (vectors of texts, scores of texts[score_rows] or None), in the model's thread
Work = Callable[[list[str], np.ndarray, np.ndarray], tuple[np.ndarray, "np.ndarray | None"]]
GROUP_PASSES = 4  # a group holds up to this many forward passes' worth of texts


class Batcher:
    """Merge concurrent :meth:`submit` calls into groups that fit one forward pass, and run them with ``work``."""

    def __init__(self, work: Work, *, batch_size: int, batch_tokens: int, max_wait_ms: float, metrics=None,
                 passes: int = GROUP_PASSES, workers: int = 1):
        self.work, self.batch_size, self.batch_tokens = work, batch_size * passes, batch_tokens * passes
        self.max_wait = max_wait_ms / 1000
        self.metrics = metrics
        self._pending: collections.deque[Job] = collections.deque()
        self._queued = asyncio.Event()
        self._arriving = 0
        self._encoding = 0  # groups in the model now
        self._in_model = 0  # their texts
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embedclf-model")
        self._worker: asyncio.Task | None = None

    # -- the requests' side ----------------------------------------------------------------------
    @contextmanager
    def arriving(self):
        """Around reading a request: while any is being read, the worker may wait for it to join."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    def submit(self, texts: list[str], tokens: np.ndarray, *, scores: bool = False) -> "asyncio.Future[Output]":
        """Queue a request's texts (with their token counts); await the returned future for its :class:`Output`."""
        job = Job(texts, np.asarray(tokens, dtype=np.int64), scores, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._queued.set()
        self._show_depth()
        return job.future

    # -- the worker ------------------------------------------------------------------------------
    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run_workers(), name="embedclf-batcher")

    async def stop(self) -> None:
        """Stop the worker (requests still queued or in the group being formed fail) and the model's threads."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        _fail(list(self._pending), RuntimeError("the server is shutting down"))
        self._pending.clear()
        self._executor.shutdown(wait=True)

    async def _run_workers(self) -> None:
        await asyncio.gather(*(self._run() for _ in range(self.workers)))

    async def _run(self) -> None:
        while True:
            while not self._pending:
                self._queued.clear()
                await self._queued.wait()
            group: list[Job] = []
            try:
                await self._gather(group)
                self._show_depth()
                size = sum(len(job.texts) for job in group)
                self._encoding += 1
                self._in_model += size
                try:
                    await self._encode(group)
                finally:
                    self._encoding -= 1
                    self._in_model -= size
            except asyncio.CancelledError:
                _fail(group, RuntimeError("the server is shutting down"))
                raise

    async def _gather(self, group: list[Job]) -> None:
        """Fill ``group`` with the oldest request and those that fit the group's passes with it, up to this
        worker's fair share (see :meth:`_share`); with its share in hand it goes at once."""
        loop = asyncio.get_running_loop()
        group.append(self._pending.popleft())
        texts, longest = len(group[0].texts), group[0].longest
        deadline = loop.time() + self.max_wait
        while True:
            if not self._pending:
                remaining = deadline - loop.time()
                if (self._arriving == 0 and self._encoding == 0) or remaining <= 0 or texts >= self._share(texts):
                    return
                self._queued.clear()
                try:
                    await asyncio.wait_for(self._queued.wait(), remaining)
                except TimeoutError:
                    return
                continue
            job = self._pending[0]
            n, widest = texts + len(job.texts), max(longest, job.longest)
            if n > self.batch_size or n * widest > self.batch_tokens or n > self._share(texts):
                return
            group.append(self._pending.popleft())
            texts, longest = n, widest

    def _share(self, taken: int) -> int:
        """The most texts a gathering worker takes: its fair share of every text in the server, those of the
        groups in the model included. Without the latter, a worker that found the other busy took all that
        waited, and the two settled into unequal cohorts of clients: 32 clients sent one text each, one
        worker ran groups of 2 or 3 while the other ran 29, and the small one spent half its time waiting
        for its few clients to come back. With a model that only sleeps 3.3 ms per text (600 texts/s on two
        workers), 32 clients got 464 texts/s before (workers 75% busy) and 541 after (90%, groups of 16).
        """
        if self.workers == 1:
            return self.batch_size
        waiting = taken + sum(len(job.texts) for job in self._pending)
        return max(1, -(-(waiting + self._in_model) // self.workers))

    async def _encode(self, group: list[Job]) -> None:
        texts = [t for job in group for t in job.texts]
        ends = np.cumsum([len(job.texts) for job in group])
        starts = ends - [len(job.texts) for job in group]
        tokens = np.concatenate([job.tokens for job in group])
        wanted = [np.arange(a, b) for job, a, b in zip(group, starts, ends) if job.scores]
        score_rows = np.concatenate(wanted) if wanted else np.empty(0, np.int64)
        if self.metrics is not None:
            self.metrics.observe_batch(len(group), len(texts), int(tokens.sum()))
        try:
            vectors, scores = await asyncio.get_running_loop().run_in_executor(self._executor, self.work, texts,
                                                                                tokens, score_rows)
        except Exception as exc:  # the group's requests fail; the server keeps going
            _fail(group, exc)
            return
        row = 0
        for job, a, b in zip(group, starts, ends):
            job_scores = None
            if job.scores:
                job_scores, row = scores[row:row + (b - a)], row + (b - a)
            if not job.future.done():  # a client that went away leaves a cancelled future
                job.future.set_result(Output(vectors[a:b], job_scores))

    def _show_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(sum(len(job.texts) for job in self._pending))


def _fail(jobs: list[Job], error: BaseException) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error)
