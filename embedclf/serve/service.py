"""What ``embedclf serve`` holds: the Encoder that ``embedclf encode`` uses, and with a model folder the
classifier that ``embedclf predict`` uses, checked before the server starts and loaded off its loop.

:meth:`Service.prepare` does everything that can refuse bad input (settings, the model's files and
fingerprint, the model folder and its checksums) without loading the transformer, so a mistake is one
line and exit status 2 before a port is bound. :meth:`Service.load` then loads the model and warms it
up while the server already answers ``/health`` (503 until it is done).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from embedclf.encode.encoder import Encoder
from embedclf.encode.settings import EncoderSettings
from embedclf.errors import EmbedclfError

MODEL_ONLY = ("pooling", "max_length", "normalize")  # fixed by the model folder: its head was fitted on them
# A torch pass of fewer padded tokens than this (a lone short text) runs on one thread: served, one short
# text took 14 ms on two threads against 9.6 ms on one (2 cores, MiniLM; 3 alternating server runs). At
# 512, groups of 16 short texts under load ran on one thread too, and 32 clients got 0.30x offline, not 0.45x.
SMALL_PASS_TOKENS = 64
PASS_OVERHEAD_TOKENS = 48  # one more forward pass costs about as much as 45 padded tokens (MiniLM, 1 CPU thread)
FLUSH_TEXTS, FLUSH_SECONDS = 4096, 30.0  # with --cache, new vectors reach the cache a shard per this many or this old


class Service:
    """An :class:`Encoder` (shared with ``classifier`` when there is one), and how to run a batcher's group.

    ``workers``: how many groups encode at once, set by :meth:`load`: two for a torch model on a CPU with
    two threads or more, one otherwise. Two workers, each on its share of the threads, keep the cores busy
    where one worker's passes of a few short texts cannot: much of such a pass runs on one thread while
    the other waits, and the event loop takes a core from it now and then. Measured here (2 cores, MiniLM
    bf16, groups of 16 random comments): one worker on 2 threads 370-390 texts/s, two on one thread each
    470-550.
    """

    workers = 1

    def __init__(self, encoder: Encoder, classifier=None, model_dir: str | None = None):
        self.encoder, self.classifier, self.model_dir = encoder, classifier, model_dir
        self._counter = None
        self._threads = None  # torch's threads, for a torch model on the CPU: each pass sets its own

    @classmethod
    def prepare(cls, settings: EncoderSettings, *, model_dir=None, cache=False,
                given: frozenset[str] = frozenset()) -> "Service":
        """Checked and resolved, the transformer not loaded. ``cache``: a directory, or False for none.

        With ``model_dir`` the encoder is the folder's (as ``embedclf predict`` builds it); ``settings``
        then only override its model path, device, backend, precision and batch policy, and ``given``
        names the options set on the command line, so that one the folder fixes is refused.
        """
        if model_dir is None:
            encoder = Encoder(settings, cache=cache, progress=False)
            encoder.settings  # finds and fingerprints the model's files now: a wrong --model fails here
            return cls(encoder)
        from embedclf.inference import load_classifier

        fixed = [f"--{name.replace('_', '-')}" for name in MODEL_ONLY if name in given]
        if fixed:
            raise EmbedclfError(f"{', '.join(fixed)}: the model folder {model_dir} fixes these (its head was "
                                "fitted on them); leave them out")
        overrides = {name: getattr(settings, name) if name in given else None
                     for name in ("model", "device", "batch_size", "backend", "precision")}
        classifier = load_classifier(model_dir, encoder_overrides=overrides, cache=cache)
        if "max_batch_tokens" in given:
            step = classifier.pipeline.named_steps["encode"]
            step.encoder_ = step.encoder_.derive(max_batch_tokens=settings.max_batch_tokens)
        classifier.encoder.progress = False
        return cls(classifier.encoder, classifier, str(model_dir))

    # -- what the server shows ---------------------------------------------------------------------
    @property
    def settings(self) -> EncoderSettings:
        return self.encoder.settings

    @property
    def embedding_model(self) -> str:
        return self.settings.model

    @property
    def classifier_id(self) -> str | None:
        from pathlib import Path

        return Path(self.model_dir).name if self.model_dir is not None else None

    def describe(self) -> str:
        what = self.settings.describe()
        return f"model folder {self.model_dir} ({what})" if self.classifier is not None else what

    # -- loading, off the event loop ---------------------------------------------------------------
    def load(self) -> "Service":
        """Load the transformer, build the token counter and run one forward pass, so that the first
        request does not pay for start-up. Runs in a thread while the server answers ``/health``."""
        embedder = self.encoder.embedder
        self._counter = _token_counter(embedder)
        # a short text and one at the length limit (a backend may compile a model of its own for those: openvino's
        # static shape), not through the cache: nothing stored
        warm = ["warm up", " ".join(["warm up"] * self.settings.max_length)]
        embedder.encode(warm, self.token_counts(warm))
        if self.settings.backend == "torch" and self.settings.device == "cpu":
            import torch

            self._threads = torch.get_num_threads()
            self.workers = 2 if self._threads >= 2 else 1
        self.encoder.buffer_writes(FLUSH_TEXTS, FLUSH_SECONDS)  # a shard per model call would pile up files
        return self

    def flush_cache(self, due_only: bool = False) -> int:
        """Commit the new vectors held for the cache (only if the oldest is due with ``due_only``); how many."""
        buffer = self.encoder.space
        if buffer is None:
            return 0
        return buffer.flush_due() if due_only else buffer.flush()

    @contextmanager
    def _threads_for(self, tokens: int):
        """Torch's threads for one pass, set in the worker's own thread (OpenMP keeps a count per thread):
        one for a small pass (see :data:`SMALL_PASS_TOKENS`), else the worker's share of all of them; all of
        them again after the pass. A larger pass that runs alone does not take every thread: two workers
        then run three threads on two cores, and both short texts under load and one long text alone were
        slower for it (32 clients 270-280 against 300-320 texts/s; one long text 38 against 29 ms)."""
        if self._threads is None or self._threads == 1:
            yield
            return
        import torch

        torch.set_num_threads(1 if tokens < SMALL_PASS_TOKENS else max(1, self._threads // self.workers))
        try:
            yield
        finally:
            torch.set_num_threads(self._threads)

    @property
    def loaded(self) -> bool:
        return self._counter is not None

    def token_counts(self, texts: list[str]) -> np.ndarray:
        """Tokens per text as the model sees them (special tokens included, truncated at max length).

        A tokenizer of its own: the model's is used by the model's workers, and a fast tokenizer used
        from two threads at once can fail ("Already borrowed").
        """
        counts = self._counter(texts)
        return np.minimum(counts, self.settings.max_length)

    def work(self, texts: list[str], tokens: np.ndarray, score_rows: np.ndarray):
        """One batcher group, in a worker's thread (two may run at once, see :attr:`workers`): vectors of
        ``texts`` through the Encoder (and its cache), in one pass when the model runs without padding
        (``backends/unpadded``) or else in passes of similar lengths (see
        :func:`~embedclf.encode.batching.length_runs`), and the head's scores of ``texts[score_rows]`` when any
        request of the group wants them."""
        from embedclf.encode.batching import length_runs

        unpadded = getattr(self.encoder.embedder, "unpadded", None) is not None
        # without padding one pass is cheapest; otherwise passes of similar lengths pad less
        one_pass = unpadded or len(texts) > 2 * self.settings.batch_size
        runs = [np.arange(len(texts))] if one_pass else length_runs(tokens, PASS_OVERHEAD_TOKENS)
        vectors = None
        for run in runs:
            cost = int(tokens[run].sum()) if unpadded else len(run) * int(tokens[run].max())
            with self._threads_for(cost):
                part = self.encoder.encode([texts[i] for i in run])
            if vectors is None:
                vectors = np.empty((len(texts), part.shape[1]), dtype=part.dtype)
            vectors[run] = part
        scores = None
        if len(score_rows):
            scored = [texts[i] for i in score_rows]
            scores = self.classifier.scores(self.classifier.head_input(scored, vectors[score_rows]))
        return vectors, scores


def _token_counter(embedder):
    """A copy of the embedder's fast tokenizer that counts tokens without truncating or padding."""
    from tokenizers import Tokenizer

    tokenizer = getattr(embedder, "tokenizer", None)
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if not isinstance(backend, Tokenizer):  # not a fast tokenizer: the embedder's own count, in the caller's thread
        return embedder.token_counts
    counter = Tokenizer.from_str(backend.to_str())
    counter.no_truncation()
    counter.no_padding()

    def count(texts: list[str]) -> np.ndarray:
        return np.fromiter((len(e.ids) for e in counter.encode_batch(list(texts))), np.int64, count=len(texts))

    return count
