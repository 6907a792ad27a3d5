"""Label co-occurrence rules: when A is predicted, also predict B if P(B|A) was high in training.

From a 0/1 training label matrix ``Y`` (numpy or scipy.sparse, rows x labels) a rule A -> B is
kept for every pair A != B with confidence P(B|A) = |A and B| / |A| >= ``threshold`` and support
|A| >= ``min_support``. Co-occurrence counts come from the sparse product ``Y.T @ Y``, so thousands
of labels are fine. Applying the rules follows chains to their closure (A -> B -> C sets C, cycles
included) through a reachability matrix computed once, so ``apply`` is one sparse product.

Nothing here looks at embeddings: rules are learnt from labels and applied to any head's decisions.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Sequence

import networkx as nx
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from embedclf import __version__
from embedclf.errors import EmbedclfError
from embedclf.io import atomic_write_bytes

FORMAT = "embedclf.cooccurrence-rules"
DEFAULT_GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)


class CooccurrenceRules(BaseEstimator):
    """Rules A -> B learnt from training labels, applied to predictions to their transitive closure.

    Fitted attributes: ``label_names_`` (column order), ``label_counts_`` (support of each label),
    ``n_rows_``, ``rules_`` (dicts of antecedent, consequent, confidence, support = |A|,
    joint = |A and B|; strongest first), ``closure_`` (sparse boolean, ``[a, b]`` is True when b != a
    follows from a by one or more rules), ``dropped_labels_`` / ``dropped_rules_`` (what
    :meth:`align` left out), ``source_`` (the file the rules were loaded from) and ``graph_``.
    """

    def __init__(self, threshold: float = 0.9, min_support: int = 5):
        self.threshold = threshold
        self.min_support = min_support

    # -- learning ------------------------------------------------------------------------------
    def fit(self, Y, label_names: Sequence[str]) -> "CooccurrenceRules":
        _check_params(self.threshold, self.min_support)
        names = _check_names(label_names, "label names")
        Y = _label_matrix(Y, len(names), "training labels")
        return self._fit_stats(names, _pair_stats(Y, self.min_support), Y.shape[0])

    def _fit_stats(self, names, stats, n_rows) -> "CooccurrenceRules":
        counts, ante, cons, joint, conf = stats
        keep = np.flatnonzero(conf >= self.threshold)
        rules = [_rule(names[ante[i]], names[cons[i]], conf[i], counts[ante[i]], joint[i]) for i in keep]
        return self._set_fitted(names, counts, rules, n_rows)

    def _set_fitted(self, names, counts, rules, n_rows, closure=None) -> "CooccurrenceRules":
        self.label_names_ = list(names)
        self.label_counts_ = np.asarray(counts, dtype=np.int64)
        self.n_rows_ = int(n_rows)
        self.rules_ = sorted(rules, key=lambda r: (-r["confidence"], -r["support"], -r["joint"],
                                                   r["antecedent"], r["consequent"]))
        if closure is None:
            index = {name: i for i, name in enumerate(self.label_names_)}
            closure = _reachability(len(names), [index[r["antecedent"]] for r in self.rules_],
                                    [index[r["consequent"]] for r in self.rules_])
        self.closure_ = closure
        self.dropped_labels_: list[str] = []
        self.dropped_rules_ = 0
        self.source_: str | None = None
        return self

    # -- applying ------------------------------------------------------------------------------
    def apply(self, Y_pred, label_names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(Y_new, added)``: predictions with every implied label set, and the labels that were added.

        Columns of ``Y_pred`` follow ``label_names_``, or ``label_names`` when given (see :meth:`align`).
        """
        self._check_fitted()
        if label_names is not None and list(label_names) != self.label_names_:
            return self.align(label_names).apply(Y_pred)
        Y = _label_matrix(Y_pred, len(self.label_names_), "predictions")
        Y_new = self._closed(Y).toarray().astype(np.int8)
        return Y_new, Y_new - Y.toarray().astype(np.int8)

    def _closed(self, Y: sp.csr_matrix) -> sp.csr_matrix:
        """``Y`` (checked CSR 0/1) with every label its labels lead to: one sparse product."""
        closed = Y + Y @ self.closure_.astype(np.int32)
        closed.data[:] = 1
        return closed

    def align(self, label_names: Sequence[str]) -> "CooccurrenceRules":
        """These rules re-indexed for a model whose labels are ``label_names`` (another order or a subset).

        Rules naming a label the model lacks are dropped (counted in ``dropped_rules_``, their
        labels listed in ``dropped_labels_``); chains through such a label still hold (A -> X -> C
        still sets C). Model labels the rules never saw get count 0 and no rules.
        """
        self._check_fitted()
        model = _check_names(label_names, "model label names")
        where = {name: i for i, name in enumerate(self.label_names_)}
        src = np.array([where.get(name, -1) for name in model], dtype=np.int64)
        known = np.flatnonzero(src >= 0)
        if known.size == 0:
            origin = f"rules file {self.source_}" if self.source_ else "the rules"
            raise EmbedclfError(f"{origin} is for other labels than the model's: none of its "
                                f"{len(self.label_names_)} labels is among the model's {len(model)}")
        sub = self.closure_[src[known]][:, src[known]].tocoo()
        closure = sp.csr_matrix((np.ones(sub.nnz, dtype=bool), (known[sub.row], known[sub.col])),
                                shape=(len(model), len(model)))
        in_model = set(model)
        rules = [r for r in self.rules_ if r["antecedent"] in in_model and r["consequent"] in in_model]
        involved = {r[end] for r in self.rules_ for end in ("antecedent", "consequent")}
        counts = np.where(src >= 0, self.label_counts_[np.maximum(src, 0)], 0)
        aligned = CooccurrenceRules(self.threshold, self.min_support)
        aligned._set_fitted(model, counts, rules, self.n_rows_, closure=closure)
        aligned.dropped_labels_ = sorted(involved - in_model)
        aligned.dropped_rules_ = len(self.rules_) - len(rules)
        aligned.source_ = self.source_
        return aligned

    # -- looking at the rules --------------------------------------------------------------------
    @property
    def graph_(self) -> nx.DiGraph:
        """Labels as nodes (attribute ``count``), rules as edges (``confidence``, ``support``, ``joint``)."""
        self._check_fitted()
        graph = nx.DiGraph(threshold=float(self.threshold), min_support=int(self.min_support))
        graph.add_nodes_from((name, {"count": int(count)})
                             for name, count in zip(self.label_names_, self.label_counts_))
        graph.add_edges_from((r["antecedent"], r["consequent"],
                              {"confidence": r["confidence"], "support": r["support"], "joint": r["joint"]})
                             for r in self.rules_)
        return graph

    def summary(self) -> str:
        if not hasattr(self, "rules_"):
            return f"co-occurrence rules (threshold {self.threshold}, min support {self.min_support}), not fitted"
        involved = {r[end] for r in self.rules_ for end in ("antecedent", "consequent")}
        line = (f"{len(self.rules_)} co-occurrence rule{'s' * (len(self.rules_) != 1)} at P(B|A) >= {self.threshold}"
                f" with support >= {self.min_support}, involving {len(involved)} of {len(self.label_names_)} labels")
        if self.dropped_rules_:
            line += f"; {self.dropped_rules_} rules dropped for {len(self.dropped_labels_)} labels the model lacks"
        return line

    def plot(self, path: str | Path, top: int = 100) -> None:
        """A PNG of the ``top`` strongest rules: edge width and colour by confidence, node size by frequency."""
        self._check_fitted()
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize
        from matplotlib.figure import Figure

        rules = self.rules_[:max(int(top), 0)]
        fig = Figure(figsize=(16, 12), dpi=120)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.set_axis_off()
        condition = f"P(B|A) ≥ {self.threshold}, support ≥ {self.min_support}"
        if not rules:
            ax.set_title(f"Label co-occurrence rules ({condition})", fontsize=16)
            ax.text(0.5, 0.5, f"No rules: no label pair reaches\n{condition}", ha="center", va="center",
                    fontsize=28, color="0.35", transform=ax.transAxes)
        else:
            graph = nx.DiGraph()
            graph.add_edges_from((r["antecedent"], r["consequent"]) for r in rules)
            count = dict(zip(self.label_names_, self.label_counts_.tolist()))
            biggest = max(max(count[n] for n in graph), 1)
            sizes = [250 + 2250 * math.sqrt(count[n] / biggest) for n in graph]
            confidence = np.array([r["confidence"] for r in rules])
            norm = Normalize(vmin=min(float(confidence.min()), float(self.threshold)), vmax=1.0)
            if norm.vmin >= norm.vmax:
                norm.vmin = norm.vmax - 0.1
            cmap = colormaps["viridis_r"]
            pos = _layout(graph)
            nx.draw_networkx_nodes(graph, pos, ax=ax, node_size=sizes, node_color="#dbe8f6",
                                   edgecolors="#4a7bb0", linewidths=1.0)
            nx.draw_networkx_edges(graph, pos, ax=ax, node_size=sizes, width=0.6 + 3.4 * norm(confidence),
                                   edge_color=[cmap(norm(c)) for c in confidence], arrows=True,
                                   arrowstyle="-|>", arrowsize=16, connectionstyle="arc3,rad=0.12", alpha=0.85)
            nx.draw_networkx_labels(graph, pos, ax=ax, font_size=9,
                                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})
            fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.5, pad=0.01,
                         label="confidence P(B|A)")
            shown = (f"strongest {len(rules)} of {len(self.rules_)}" if len(rules) < len(self.rules_)
                     else f"all {len(rules)}")
            ax.set_title(f"Label co-occurrence rules A → B ({condition}): {shown} rules; "
                         "node size = label frequency", fontsize=15)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        _write(path, buffer.getvalue())

    # -- persistence ---------------------------------------------------------------------------
    def to_json(self) -> str:
        """The rules as JSON text: settings, then one line per label and per rule (strongest first)."""
        self._check_fitted()
        head = {"format": FORMAT, "embedclf_version": __version__, "threshold": self.threshold,
                "min_support": self.min_support, "n_rows": self.n_rows_}
        labels = [{"name": n, "count": int(c)} for n, c in zip(self.label_names_, self.label_counts_)]
        parts = [f" {json.dumps(key)}: {json.dumps(value)}" for key, value in head.items()]
        for key, items in (("labels", labels), ("rules", self.rules_)):
            lines = ",\n".join(f"  {json.dumps(item, ensure_ascii=False)}" for item in items)
            parts.append(f' "{key}": [\n{lines}\n ]' if items else f' "{key}": []')
        return "{\n" + ",\n".join(parts) + "\n}\n"

    @classmethod
    def from_json(cls, text: str, source: str | None = None) -> "CooccurrenceRules":
        where = source or "rules JSON"
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EmbedclfError(f"{where}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(document, dict) or document.get("format", FORMAT) != FORMAT:
            raise EmbedclfError(f"{where}: not an embedclf co-occurrence rules file")
        try:
            rules = cls(float(document["threshold"]), int(document["min_support"]))
            names = [str(label["name"]) for label in document["labels"]]
            counts = [int(label["count"]) for label in document["labels"]]
            found = [_rule(str(r["antecedent"]), str(r["consequent"]), r["confidence"], r["support"], r["joint"])
                     for r in document["rules"]]
            n_rows = int(document.get("n_rows", 0))
            _check_params(rules.threshold, rules.min_support)
        except EmbedclfError as exc:
            raise EmbedclfError(f"{where}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbedclfError(f"{where}: malformed co-occurrence rules file ({type(exc).__name__}: {exc})") from None
        names = _check_names(names, f"{where}: labels")
        unknown = sorted({r[end] for r in found for end in ("antecedent", "consequent")} - set(names))
        if unknown:
            raise EmbedclfError(f"{where}: rules name {len(unknown)} labels missing from its label list, "
                                f"e.g. {unknown[0]!r}")
        rules._set_fitted(names, counts, found, n_rows)
        rules.source_ = source
        return rules

    def save(self, path: str | Path) -> None:
        _write(path, self.to_json().encode("utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> "CooccurrenceRules":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise EmbedclfError(f"{path}: no such rules file") from None
        except UnicodeDecodeError:
            raise EmbedclfError(f"{path}: not a co-occurrence rules file (not UTF-8 text)") from None
        except OSError as exc:
            raise EmbedclfError(f"{path}: cannot read ({exc.strerror})") from None
        return cls.from_json(text, source=str(path))

    def save_graphml(self, path: str | Path) -> None:
        buffer = io.BytesIO()
        nx.write_graphml(self.graph_, buffer)
        _write(path, buffer.getvalue())

    def _check_fitted(self) -> None:
        if not hasattr(self, "rules_"):
            raise NotFittedError("CooccurrenceRules is not fitted yet; call fit() or load() first")


def select_threshold(Y_train, label_names: Sequence[str], Y_valid_true, Y_valid_pred,
                     grid: Sequence[float] = DEFAULT_GRID, min_support: int = 5) -> tuple[float | None, list[dict]]:
    """The rule threshold that maximises validation micro-F1, and the whole curve.

    ``curve[0]`` is the baseline without rules (``threshold`` None), then one entry per grid value,
    ascending: ``{threshold, n_rules, micro_f1, macro_f1}``. Ties go to the higher threshold (fewer
    rules) and the baseline counts as the highest, so the answer is None when no threshold beats
    using no rules at all.
    """
    names = _check_names(label_names, "label names")
    grid = sorted({float(t) for t in grid})
    if not grid:
        raise EmbedclfError("select_threshold: the threshold grid is empty")
    for threshold in grid:
        _check_params(threshold, min_support)
    train = _label_matrix(Y_train, len(names), "training labels")
    truth = _label_matrix(Y_valid_true, len(names), "validation labels")
    predicted = _label_matrix(Y_valid_pred, len(names), "validation predictions")
    if truth.shape[0] != predicted.shape[0]:
        raise EmbedclfError(f"validation labels have {truth.shape[0]} rows but predictions {predicted.shape[0]}")

    stats = _pair_stats(train, min_support)  # counted once; each threshold only filters
    curve = [{"threshold": None, "n_rules": 0, **_f1_scores(truth, predicted)}]
    for threshold in grid:
        rules = CooccurrenceRules(threshold, min_support)._fit_stats(names, stats, train.shape[0])
        curve.append({"threshold": threshold, "n_rules": len(rules.rules_),
                      **_f1_scores(truth, rules._closed(predicted))})
    best = max(curve, key=lambda p: (p["micro_f1"], math.inf if p["threshold"] is None else p["threshold"]))
    return best["threshold"], curve


# -- helpers --------------------------------------------------------------------------------------
def _check_params(threshold, min_support) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise EmbedclfError(f"co-occurrence threshold must be in (0, 1], got {threshold!r}")
    if isinstance(min_support, bool) or not isinstance(min_support, (int, np.integer)) or min_support < 1:
        raise EmbedclfError(f"co-occurrence min support must be a whole number >= 1, got {min_support!r}")


def _check_names(label_names, what: str) -> list[str]:
    if isinstance(label_names, str):
        raise EmbedclfError(f"{what}: expected a list of label names, got one string")
    names = [str(name) for name in label_names]
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise EmbedclfError(f"{what}: label {twice[0]!r} appears more than once")
    return names


def _label_matrix(Y, n_labels: int, what: str) -> sp.csr_matrix:
    """``Y`` as a CSR matrix of int32 ones, after checking its shape and that it holds only 0/1."""
    if sp.issparse(Y):
        Y = sp.csr_matrix(Y)
        values = Y.data
    else:
        Y = np.asarray(Y)
        values = Y
    if Y.ndim != 2:
        raise EmbedclfError(f"{what}: expected a 2-d 0/1 label matrix, got {Y.ndim} dimension(s)")
    if Y.shape[1] != n_labels:
        raise EmbedclfError(f"{what}: {Y.shape[1]} label columns but {n_labels} label names")
    if values.dtype.kind not in "biuf" or not ((values == 0) | (values == 1)).all():
        raise EmbedclfError(f"{what}: a label matrix must hold only 0 and 1")
    Y = sp.csr_matrix(Y, dtype=np.int32)
    Y.eliminate_zeros()
    return Y


def _pair_stats(Y: sp.csr_matrix, min_support: int):
    """Label counts, and for every co-occurring pair A != B with |A| >= min_support: A, B, |A and B|, P(B|A)."""
    counts = np.asarray(Y.sum(axis=0)).ravel().astype(np.int64)
    joint = (Y.T @ Y).tocoo()  # only pairs that co-occur at least once: zero-support labels never appear
    ante, cons, n_both = joint.row, joint.col, joint.data.astype(np.int64)
    keep = (ante != cons) & (n_both > 0) & (counts[ante] >= min_support)
    ante, cons, n_both = ante[keep], cons[keep], n_both[keep]
    return counts, ante, cons, n_both, n_both / counts[ante]


def _f1_scores(truth: sp.csr_matrix, predicted: sp.csr_matrix) -> dict:
    """Micro- and macro-F1 of 0/1 CSR matrices; a label never true nor predicted scores 0 (as zero_division=0)."""
    tp = np.asarray(truth.multiply(predicted).sum(axis=0), dtype=float).ravel()
    wrong = np.asarray(truth.sum(axis=0) + predicted.sum(axis=0), dtype=float).ravel() - 2 * tp
    per_label = np.divide(2 * tp, 2 * tp + wrong, out=np.zeros_like(tp), where=2 * tp + wrong > 0)
    total = 2 * tp.sum() + wrong.sum()
    return {"micro_f1": float(2 * tp.sum() / total) if total else 0.0,
            "macro_f1": float(per_label.mean()) if per_label.size else 0.0}


def _rule(antecedent: str, consequent: str, confidence, support, joint) -> dict:
    return {"antecedent": antecedent, "consequent": consequent, "confidence": float(confidence),
            "support": int(support), "joint": int(joint)}


def _reachability(n_labels: int, ante, cons) -> sp.csr_matrix:
    """Boolean ``R[a, b]``: b != a follows from a by one or more rules (a breadth-first search per antecedent)."""
    from scipy.sparse.csgraph import breadth_first_order

    rules = sp.csr_matrix((np.ones(len(ante), dtype=np.int8), (ante, cons)), shape=(n_labels, n_labels))
    rows, cols = [], []
    for a in np.unique(np.asarray(ante, dtype=np.int64)):
        reached = breadth_first_order(rules, a, directed=True, return_predecessors=False)[1:]  # [0] is a
        rows.append(np.full(len(reached), a))
        cols.append(reached)
    rows, cols = (np.concatenate(x) if x else np.zeros(0, dtype=np.int64) for x in (rows, cols))
    return sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(n_labels, n_labels))


def _layout(graph: nx.DiGraph) -> dict:
    """Kamada-Kawai per connected component (neighbours about one unit apart), components packed in rows.

    One spring layout of a graph with many small components squeezes each into a knot and leaves
    the middle empty; packing keeps every label readable with a hundred edges on one page.
    """
    components = sorted((sorted(c) for c in nx.weakly_connected_components(graph)), key=lambda c: (-len(c), c))
    boxes = []
    for nodes in components:
        if len(nodes) == 1:
            pos = np.zeros((1, 2))
        else:
            spread = nx.kamada_kawai_layout(graph.subgraph(nodes).to_undirected())
            pos = np.array([spread[n] for n in nodes])
            gaps = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
            np.fill_diagonal(gaps, np.inf)
            pos /= max(float(np.median(gaps.min(axis=1))), 1e-9)  # a typical node one unit from its nearest
        pos -= pos.min(axis=0)
        boxes.append((nodes, pos, pos.max(axis=0) + 1.2))  # 1.2: room for node circles and labels
    row_width = max(math.sqrt(sum(w * h for _, _, (w, h) in boxes) * 4 / 3), max(w for _, _, (w, _) in boxes))
    layout, x, y, row_height = {}, 0.0, 0.0, 0.0
    for nodes, pos, (width, height) in boxes:
        if x > 0 and x + width > row_width:
            x, y, row_height = 0.0, y - row_height, 0.0
        layout.update((n, p + (x, y - height)) for n, p in zip(nodes, pos))
        x, row_height = x + width, max(row_height, height)
    return layout


def _write(path: str | Path, data: bytes) -> None:
    try:
        atomic_write_bytes(Path(path), data)
    except OSError as exc:
        raise EmbedclfError(f"{path}: cannot write ({exc.strerror})") from None


def _rule_blocks(rules: CooccurrenceRules, space) -> list[tuple[slice, CooccurrenceRules]]:
    """The multi-label targets of ``space`` that share labels with ``rules``, each with the rules aligned to it."""
    from embedclf.labels import MULTILABEL

    blocks = []
    for target, block in zip(space.targets, space.slices):
        if target.kind == MULTILABEL and set(target.classes) & set(rules.label_names_):
            blocks.append((block, rules.align(target.classes)))
    return blocks


def check_rules_fit(rules: CooccurrenceRules, space, source=None) -> None:
    """Fail with one line if the rules name none of the model's multi-label labels."""
    if not _rule_blocks(rules, space):
        origin = f"rules file {source}" if source else "the rules"
        raise EmbedclfError(f"{origin} is for other labels than the model's: none of its "
                            f"{len(rules.label_names_)} labels is a multi-label class of the model")


def apply_rules(rules: CooccurrenceRules, Y: np.ndarray, space) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``rules`` to a model's block decisions ``Y``: ``(Y_new, added)`` over all columns."""
    Y_new, added = Y.copy(), np.zeros_like(Y)
    for block, aligned in _rule_blocks(rules, space):
        Y_new[:, block], added[:, block] = aligned.apply(Y[:, block])
    return Y_new, added


def _multilabel_target(space, target: str | None, source):
    """The first multi-label target of ``space`` (or the one named ``target``) and its columns."""
    from embedclf.labels import MULTILABEL

    for candidate, block in zip(space.targets, space.slices):
        if candidate.kind == MULTILABEL and (target is None or candidate.name == target):
            return candidate, block
    raise EmbedclfError(f"{source}: no multi-label target{f' named {target!r}' if target else ''}; "
                        "co-occurrence rules need a column holding several labels (--label-sep or JSON lists)")


def learn_rules(dataset, threshold: float = 0.9, min_support: int = 5, target: str | None = None):
    """Rules from a labelled :class:`~embedclf.data.Dataset`'s multi-label target (the first, or ``target``)."""
    from embedclf.labels import LabelSpace

    space = LabelSpace.from_dataset(dataset)
    chosen, block = _multilabel_target(space, target, dataset.path)
    rules = CooccurrenceRules(threshold, min_support).fit(space.encode(dataset)[0][:, block], chosen.classes)
    rules.source_ = dataset.path
    return rules


def tune_rule_threshold(train, classifier, valid, min_support: int = 5, target: str | None = None,
                        grid: Sequence[float] = DEFAULT_GRID) -> tuple[CooccurrenceRules, list[dict]]:
    """Rules learnt on ``train`` at the threshold that maximises ``classifier``'s micro-F1 on ``valid``.

    When no threshold beats applying no rules, the rule set returned is empty.
    """
    from embedclf.labels import LabelSpace
    from embedclf.labels import labelled_matrix

    train_space = LabelSpace.from_dataset(train)
    chosen, train_block = _multilabel_target(train_space, target, train.path)
    names, Y_train = chosen.classes, train_space.encode(train)[0][:, train_block]
    model_target, model_block = _multilabel_target(classifier.space, target, "the model")
    # the candidates are judged against the head's own decisions, without any rules the model holds
    Y_pred = classifier.decide(classifier.scores(classifier.embed(valid.texts)), rules=False)[0]
    truth = labelled_matrix(classifier.space, valid)
    position = {name: i for i, name in enumerate(model_target.classes)}
    if not set(position) & set(names):
        raise EmbedclfError(f"{train.path}: the model has none of these {len(names)} labels")

    def in_rule_order(M):
        out = np.zeros((len(M), len(names)), dtype=np.int8)
        for j, name in enumerate(names):
            if name in position:
                out[:, j] = M[:, model_block.start + position[name]]
        return out

    best, curve = select_threshold(Y_train, names, in_rule_order(truth), in_rule_order(Y_pred), grid, min_support)
    if best is None:
        rules = CooccurrenceRules(1.0, len(Y_train) + 1).fit(Y_train, names)  # support no label has: no rules
    else:
        rules = CooccurrenceRules(best, min_support).fit(Y_train, names)
    rules.source_ = train.path
    return rules, curve
