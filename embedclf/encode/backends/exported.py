"""What the onnx and openvino backends share: a transformer made traceable and described for running
without torch, the tokenisation, padding, pooling and normalisation around an exported forward pass,
and the cores to run it on.

An export folder holds the runtime's model file(s), the model's fast tokenizer (``tokenizer.json``) and
``embedclf-onnx.json`` (input names, dimension, padding), so a run that finds its export imports neither
torch nor transformers: tokenisation is the ``tokenizers`` library the fast tokenizer is built on, and
pooling and normalisation are numpy.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from embedclf.encode.batching import capped_batches
from embedclf.encode.models import ModelRef
from embedclf.errors import EmbedclfError

TOKENIZER_FILE, META_FILE = "tokenizer.json", "embedclf-onnx.json"
OUTPUT = "last_hidden_state"


def traceable_transformer(ref: ModelRef):
    """``(module, input names, example inputs, tokenizer)``: ``ref``'s transformer in fp32 with positional
    inputs and one output (the last hidden state), as exporters want it."""
    from embedclf.encode.backends.torch import load_sentence_transformer

    fp32 = SimpleNamespace(ref=ref, pooling="mean", max_length=ref.max_length, device="cpu", precision="fp32")
    model = load_sentence_transformer(fp32)  # it reads only these fields
    transformer, tokenizer = model[0].auto_model, model[0].tokenizer
    accepted = inspect.signature(transformer.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids")
             if n in tokenizer.model_input_names and n in accepted]
    # two texts of different lengths, so the traced graph keeps the attention mask (an all-ones
    # mask may be optimised away by the attention code)
    example = tokenizer(["a short text", "a longer text, so that the batch needs padding"], padding=True,
                        return_tensors="pt")
    return _LastHiddenState(transformer, names), names, tuple(example[n] for n in names), tokenizer


def write_tokenizer_and_meta(target: Path, ref: ModelRef, tokenizer, module, names: list[str], **extra) -> None:
    """The fast tokenizer and ``embedclf-onnx.json`` beside an export, for running it without torch."""
    import torch

    tokenizer.backend_tokenizer.save(str(target / TOKENIZER_FILE))
    meta = {"format": 1, "model": ref.name, "fingerprint": ref.fingerprint, "precision": "fp32", "inputs": names,
            "output": OUTPUT, "dimension": int(module.transformer.config.hidden_size),
            "pad_token_id": int(tokenizer.pad_token_id or 0), "truncation_side": tokenizer.truncation_side,
            "torch": torch.__version__, **extra}
    (target / META_FILE).write_text(json.dumps(meta, indent=2))


def _LastHiddenState(transformer, names: list[str]):
    """The transformer with positional inputs in ``names`` order and one output, as the exporter wants."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs):
            return self.transformer(**dict(zip(names, inputs)), return_dict=True).last_hidden_state

    return LastHiddenState().eval()


def cpu_cores() -> int:
    """Physical cores this process may use: its CPU affinity, one per set of hyper-thread siblings,
    capped by a cgroup CPU quota."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        try:
            cores.add(Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip())
        except OSError:
            cores.add(str(cpu))
    count = len(cores)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)



class ExportedEmbedder:
    """Texts to pooled embeddings with an exported transformer (tokenizers + numpy around a runtime's
    forward pass): a subclass opens the export in ``_start`` and runs a padded batch in ``_forward``."""

    def __init__(self, directory: str | Path, settings):
        from tokenizers import Tokenizer

        directory = Path(directory)
        self.directory = directory
        self.meta = json.loads((directory / META_FILE).read_text())
        self.settings = settings
        self.max_length = max_length = settings.max_length
        self.pooling = settings.pooling
        self.dimension = int(self.meta["dimension"])
        try:
            self._start(directory)
        except EmbedclfError:
            raise
        except Exception as exc:
            raise self.damaged(exc) from None
        self._counter = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        self._counter.no_padding()
        self._counter.no_truncation()
        self.tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length, direction=self.meta.get("truncation_side", "right"))

    def damaged(self, exc: Exception) -> EmbedclfError:
        """The error for an export the runtime cannot read (a truncated file), saying how to make it again."""
        return EmbedclfError(
            f"cannot open the {self.settings.backend} export {self.directory}: {' '.join(str(exc).split())[:200]}; "
            f"remove it with 'embedclf cache clear --model {self.settings.ref.name}' and run again")

    def token_counts(self, texts: list[str]) -> np.ndarray:
        """Tokens per text, special tokens included and before truncation."""
        return np.fromiter((len(e.ids) for e in self._counter.encode_batch_fast(list(texts))), dtype=np.int64,
                           count=len(texts))

    def encode(self, texts: list[str], tokens: np.ndarray | None = None) -> np.ndarray:
        """``(len(texts), dim)`` float32 in input order (``tokens`` is the torch backend's; tokenising here
        gives the truncated encodings, and their lengths).

        Batches of texts of similar length (sorted by tokens), each padded to its longest: ``batch_size``
        texts, fewer for long ones (``max_batch_tokens``, as the torch path: see ``capped_batches``).
        Filling batches up to a token budget instead (more short texts per batch) was measured and did
        not help on CPU: padding is already a few per cent, and larger batches ran slower.
        """
        s = self.settings
        encodings = self.tokenizer.encode_batch_fast(list(texts))  # no character offsets: ~15% faster
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)

        def jobs():
            for batch in capped_batches(lengths[order], s.batch_size, self.max_length, s.batch_tokens):
                batch = order[batch]
                yield (batch, *self._inputs([encodings[i] for i in batch], lengths[batch]))

        def pooled(batch, hidden, mask):
            vectors[batch] = pool(hidden, mask, self.pooling)

        self._run(jobs(), pooled)
        return normalized(vectors) if s.normalize else vectors

    def _run(self, jobs, done) -> None:
        """``done(batch, hidden, mask)`` for each ``(batch, feed, mask)`` of ``jobs``: one forward pass
        after another (a runtime with asynchronous requests overlaps them)."""
        for batch, feed, mask in jobs:
            done(batch, self._forward(feed), mask)

    def _start(self, directory: Path) -> None:
        raise NotImplementedError

    def _forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The last hidden state ``(batch, tokens, dim)`` of one padded batch."""
        raise NotImplementedError

    def _width(self, longest: int) -> int:
        """The padded width of a batch whose longest text has ``longest`` tokens (a runtime may pad further:
        to fewer distinct shapes, or up to a shape it runs faster)."""
        return longest

    def _inputs(self, encodings, lengths: np.ndarray, width: int | None = None) -> tuple[dict[str, np.ndarray],
                                                                                         np.ndarray]:
        """One batch right-padded to ``width`` (by default ``_width`` of its longest text): the export's int64
        inputs, and the attention mask."""
        width = self._width(int(lengths.max())) if width is None else width
        mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
        feed = {}
        for name in self.meta["inputs"]:
            if name == "attention_mask":
                feed[name] = mask
                continue
            field, pad = ("ids", self.meta["pad_token_id"]) if name == "input_ids" else ("type_ids", 0)
            array = np.full(mask.shape, pad, dtype=np.int64)
            for row, encoding in enumerate(encodings):
                array[row, :lengths[row]] = getattr(encoding, field)
            feed[name] = array
        return feed, mask


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Sentence vectors from token vectors ``(batch, tokens, dim)`` as sentence-transformers' Pooling does."""
    mask = mask[:, :, None].astype(hidden.dtype)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return np.where(mask > 0, hidden, np.float32(-1e9)).max(axis=1)
    if mode == "mean":
        return (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
    raise ValueError(f"unknown pooling {mode!r}")


def normalized(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (as torch.nn.functional.normalize: a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


