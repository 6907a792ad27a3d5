"""The label space of a task: its targets, their classes, and the indicator matrix every head uses.

Every task kind is one matrix ``Y`` of 0/1 with a block of columns per target:

* multi-class — one target, a block with exactly one 1 per row (one-hot);
* multi-label — one target, a block with any number of 1s;
* multi-output — several targets side by side, each one-hot or multi-label.

Heads score each block (softmax for one-hot blocks, sigmoid for multi-label ones) and decisions
are taken per block, so one code path serves all three kinds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from embedclf.errors import EmbedclfError

if TYPE_CHECKING:
    from embedclf.data import Dataset

MULTICLASS, MULTILABEL, MULTIOUTPUT = "multiclass", "multilabel", "multioutput"
TASK_KINDS = (MULTICLASS, MULTILABEL, MULTIOUTPUT)


@dataclass
class TargetSpace:
    name: str
    kind: str  # MULTICLASS or MULTILABEL
    classes: list[str]

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "classes": list(self.classes)}


@dataclass
class LabelSpace:
    targets: list[TargetSpace]
    _index: list[dict[str, int]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self):
        self._index = [{c: i for i, c in enumerate(t.classes)} for t in self.targets]

    @classmethod
    def from_dataset(cls, dataset: "Dataset") -> "LabelSpace":
        """Classes seen in ``dataset`` (in --label-names order when given, else sorted)."""
        if not dataset.targets:
            raise EmbedclfError(f"{dataset.path}: no labels; give --label-col")
        targets = []
        for target in dataset.targets:
            seen = Counter(label for row in target.labels for label in row)
            if target.names_order is not None:
                classes = [name for name in target.names_order if name in seen]
            else:
                classes = sorted(seen)
            if target.kind == MULTICLASS and len(classes) < 2:
                raise EmbedclfError(f"{dataset.path}: target {target.name!r} has {len(classes)} class; "
                                    "a classifier needs at least two")
            if not classes:
                raise EmbedclfError(f"{dataset.path}: target {target.name!r} has no labels")
            targets.append(TargetSpace(target.name, target.kind, classes))
        return cls(targets)

    @classmethod
    def from_dict(cls, targets: list[dict]) -> "LabelSpace":
        return cls([TargetSpace(t["name"], t["kind"], list(t["classes"])) for t in targets])

    def to_dict(self) -> list[dict]:
        return [t.to_dict() for t in self.targets]

    @property
    def task(self) -> str:
        return MULTIOUTPUT if len(self.targets) > 1 else self.targets[0].kind

    @property
    def sizes(self) -> list[int]:
        return [len(t.classes) for t in self.targets]

    @property
    def slices(self) -> list[slice]:
        ends = np.cumsum([0] + self.sizes)
        return [slice(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:])]

    @property
    def layout(self) -> tuple[tuple[str, int], ...]:
        """(kind, size) per block: what a head needs to know about ``Y``."""
        return tuple((t.kind, len(t.classes)) for t in self.targets)

    @property
    def n_columns(self) -> int:
        return sum(self.sizes)

    def column_names(self) -> list[str]:
        if len(self.targets) == 1:
            return list(self.targets[0].classes)
        return [f"{t.name}={c}" for t in self.targets for c in t.classes]

    def encode(self, dataset: "Dataset") -> tuple[np.ndarray, dict[str, Counter]]:
        """The indicator matrix of ``dataset``'s labels, and labels unknown to this space per target."""
        if [t.name for t in dataset.targets] != [t.name for t in self.targets]:
            raise EmbedclfError(f"{dataset.path}: label columns {[t.name for t in dataset.targets]} do not match "
                                f"the model's {[t.name for t in self.targets]}")
        Y = np.zeros((len(dataset.texts), self.n_columns), dtype=np.int8)
        unseen: dict[str, Counter] = {}
        for target, space, index, block in zip(dataset.targets, self.targets, self._index, self.slices):
            if target.kind != space.kind:
                raise EmbedclfError(f"{dataset.path}: target {target.name!r} is {target.kind} here but "
                                    f"{space.kind} in the model; check --label-sep")
            unknown: Counter = Counter()
            for row, labels in enumerate(target.labels):
                for label in labels:
                    column = index.get(label)
                    if column is None:
                        unknown[label] += 1
                    else:
                        Y[row, block.start + column] = 1
            if unknown:
                unseen[target.name] = unknown
        return Y, unseen

    def decode(self, Y: np.ndarray) -> list[list[list[str]]]:
        """Per target, per row, the labels set in ``Y``."""
        decoded = []
        for space, block in zip(self.targets, self.slices):
            classes = np.asarray(space.classes, dtype=object)
            part = np.asarray(Y[:, block]) > 0
            decoded.append([list(classes[row]) for row in part])
        return decoded


def block_decisions(scores: np.ndarray, layout, thresholds: np.ndarray | float = 0.5,
                    at_least_one: bool = False, top_k: int | None = None) -> np.ndarray:
    """Turn per-block scores into 0/1 decisions: argmax for one-hot blocks, thresholds for multi-label ones
    (``top_k``: of those, at most the k most probable per row)."""
    Y = np.zeros(scores.shape, dtype=np.int8)
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=float), (scores.shape[1],))
    start = 0
    for kind, size in layout:
        block = scores[:, start:start + size]
        if kind == MULTICLASS:
            Y[np.arange(len(block)), start + block.argmax(axis=1)] = 1
        else:
            decided = block >= thresholds[start:start + size]
            if at_least_one and size:
                empty = ~decided.any(axis=1)
                decided[empty, block[empty].argmax(axis=1)] = True
            if top_k is not None and top_k < size:
                beyond = np.argsort(-block, axis=1, kind="stable")[:, top_k:]
                np.put_along_axis(decided, beyond, False, axis=1)
            Y[:, start:start + size] = decided
        start += size
    return Y


def check_layout(layout) -> tuple[tuple[str, int], ...]:
    layout = tuple((str(kind), int(size)) for kind, size in layout)
    for kind, size in layout:
        if kind not in (MULTICLASS, MULTILABEL) or size < 1:
            raise ValueError(f"bad layout block {(kind, size)}")
    return layout

def to_blocks(y, layout=None):
    """Return ``(Y, layout, classes)``: the 0/1 block matrix, its layout, and classes for 1-D ``y``."""
    y = np.asarray(y)
    if y.ndim == 1:
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError("a classifier needs at least two classes")
        Y = np.zeros((len(y), len(classes)), dtype=np.int8)
        Y[np.arange(len(y)), codes] = 1
        return Y, ((MULTICLASS, len(classes)),), classes
    if layout is None:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("a 2-D y must be a 0/1 indicator matrix, or pass layout=")
        layout = ((MULTILABEL, y.shape[1]),)
    layout = check_layout(layout)
    if sum(size for _, size in layout) != y.shape[1]:
        raise ValueError(f"layout covers {sum(s for _, s in layout)} columns, y has {y.shape[1]}")
    return y.astype(np.int8, copy=False), layout, None

def iter_blocks(layout):
    start = 0
    for kind, size in layout:
        yield kind, slice(start, start + size)
        start += size

def block_probabilities(logits: np.ndarray, layout) -> np.ndarray:
    """Logits to probabilities per block: softmax over a one-hot block, sigmoid per multi-label column."""
    from scipy.special import expit, softmax

    out = np.empty_like(logits)
    for kind, block in iter_blocks(layout):
        out[:, block] = softmax(logits[:, block], axis=1) if kind == MULTICLASS else expit(logits[:, block])
    return out


def labelled_matrix(space: LabelSpace, dataset: "Dataset", say=None) -> np.ndarray:
    """``dataset``'s labels in ``space``, reporting labels the model has never seen."""
    return labelled_matrix_and_unseen(space, dataset, say)[0]


def labelled_matrix_and_unseen(space: LabelSpace, dataset: "Dataset", say=None):
    """``(Y, unseen)``: as :func:`labelled_matrix`, with the unseen labels' counts per target."""
    Y, unseen = space.encode(dataset)
    if unseen and say is not None:
        for target, counter in unseen.items():
            shown = ", ".join(f"{label} ({n})" for label, n in counter.most_common(8))
            more = f" and {len(counter) - 8} more" if len(counter) > 8 else ""
            say(f"{dataset.path}: {sum(counter.values()):,} labels of {target!r} unseen at fit time: {shown}{more}")
    return Y, unseen
