"""Label co-occurrence rules: when A is predicted, also predict B if P(B|A) was high in training.

From a 0/1 training label matrix ``Y`` (numpy or scipy.sparse, rows x labels) a rule A -> B is
kept for every pair A != B with confidence P(B|A) = |A and B| / |A| >= ``threshold`` and support
|A| >= ``min_support``. Co-occurrence counts come from the sparse product ``Y.T @ Y``, so thousands
of labels are fine. Applying the rules follows chains to their closure (A -> B -> C sets C, cycles
included) through a reachability matrix computed once, so ``apply`` is one sparse product.

Nothing here looks at embeddings: rules are learnt from labels and applied to any head's decisions.
The rules file and the GraphML export are in :mod:`.rules_file`, the drawing in :mod:`.rules_plot`.
"""

from __future__ import annotations

from typing import Sequence

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from embedclf.errors import EmbedclfError
from embedclf.postprocess.rule_inputs import check_names, check_settings, label_matrix, make_rule
from embedclf.postprocess.rules_file import RulesFileMixin
from embedclf.postprocess.rules_plot import RulesPlotMixin


class CooccurrenceRules(RulesFileMixin, RulesPlotMixin, BaseEstimator):
    """Rules A -> B learnt from training labels, applied to predictions to their transitive closure.

    Fitted attributes: ``label_names_`` (column order), ``label_counts_`` (support of each label),
    ``n_rows_``, ``rules_`` (dicts of antecedent, consequent, confidence, support = |A|,
    joint = |A and B|; strongest first), ``closure_`` (sparse boolean, ``[a, b]`` is True when b != a
    follows from a by one or more rules), ``dropped_labels_`` / ``dropped_rules_`` (what
    :meth:`align` left out), ``source_`` (the file the rules were loaded from), ``note_`` (why a
    rule set is empty on purpose, see :meth:`without_rules`) and ``graph_``.
    """

    def __init__(self, threshold: float = 0.9, min_support: int = 5):
        self.threshold = threshold
        self.min_support = min_support

    # -- learning ------------------------------------------------------------------------------
    def fit(self, Y, label_names: Sequence[str]) -> "CooccurrenceRules":
        check_settings(self.threshold, self.min_support)
        names = check_names(label_names, "label names")
        Y = label_matrix(Y, len(names), "training labels")
        return self.fit_pair_stats(names, pair_stats(Y, self.min_support), Y.shape[0])

    def fit_pair_stats(self, label_names: Sequence[str], stats, n_rows: int) -> "CooccurrenceRules":
        """Fit from :func:`pair_stats` already counted (a threshold sweep counts once, then filters)."""
        counts, ante, cons, joint, conf = stats
        keep = np.flatnonzero(conf >= self.threshold)
        rules = [make_rule(label_names[ante[i]], label_names[cons[i]], conf[i], counts[ante[i]], joint[i])
                 for i in keep]
        return self._set_fitted(label_names, counts, rules, n_rows)

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
        self.note_: str | None = None
        return self

    def without_rules(self, note: str) -> "CooccurrenceRules":
        """The same settings and label counts with no rule at all, ``note_`` saying why (kept in the file)."""
        self._check_fitted()
        empty = CooccurrenceRules(self.threshold, self.min_support)
        empty._set_fitted(self.label_names_, self.label_counts_, [], self.n_rows_)
        empty.source_, empty.note_ = self.source_, note
        return empty

    # -- applying ------------------------------------------------------------------------------
    def apply(self, Y_pred, label_names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(Y_new, added)``: predictions with every implied label set, and the labels that were added.

        Columns of ``Y_pred`` follow ``label_names_``, or ``label_names`` when given (see :meth:`align`).
        """
        self._check_fitted()
        if label_names is not None and list(label_names) != self.label_names_:
            return self.align(label_names).apply(Y_pred)
        Y = label_matrix(Y_pred, len(self.label_names_), "predictions")
        Y_new = self.closed(Y).toarray().astype(np.int8)
        return Y_new, Y_new - Y.toarray().astype(np.int8)

    def closed(self, Y: sp.csr_matrix) -> sp.csr_matrix:
        """``Y`` (CSR 0/1, checked by ``label_matrix``) with every label its labels lead to: one sparse product."""
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
        model = check_names(label_names, "model label names")
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
        counts = np.where(src >= 0, self.label_counts_[np.maximum(src, 0)], 0)
        aligned = CooccurrenceRules(self.threshold, self.min_support)
        aligned._set_fitted(model, counts, rules, self.n_rows_, closure=closure)
        aligned.dropped_labels_ = sorted(self._involved() - in_model)
        aligned.dropped_rules_ = len(self.rules_) - len(rules)
        aligned.source_, aligned.note_ = self.source_, self.note_
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
        if self.note_:
            return f"no co-occurrence rules: {self.note_}"
        line = (f"{len(self.rules_)} co-occurrence rule{'s' * (len(self.rules_) != 1)} at P(B|A) >= {self.threshold}"
                f" with support >= {self.min_support}, involving {len(self._involved())} of "
                f"{len(self.label_names_)} labels")
        if self.dropped_rules_:
            line += f"; {self.dropped_rules_} rules dropped for {len(self.dropped_labels_)} labels the model lacks"
        return line

    def _involved(self) -> set[str]:
        return {r[end] for r in self.rules_ for end in ("antecedent", "consequent")}

    def _check_fitted(self) -> None:
        if not hasattr(self, "rules_"):
            raise NotFittedError("CooccurrenceRules is not fitted yet; call fit() or load() first")


def pair_stats(Y: sp.csr_matrix, min_support: int):
    """Label counts, and for every co-occurring pair A != B with |A| >= min_support: A, B, |A and B|, P(B|A)."""
    counts = np.asarray(Y.sum(axis=0)).ravel().astype(np.int64)
    joint = (Y.T @ Y).tocoo()  # only pairs that co-occur at least once: zero-support labels never appear
    ante, cons, n_both = joint.row, joint.col, joint.data.astype(np.int64)
    keep = (ante != cons) & (n_both > 0) & (counts[ante] >= min_support)
    ante, cons, n_both = ante[keep], cons[keep], n_both[keep]
    return counts, ante, cons, n_both, n_both / counts[ante]


def _reachability(n_labels: int, ante, cons) -> sp.csr_matrix:
    """Boolean ``R[a, b]``: b != a follows from a by one or more rules (a breadth-first search per antecedent)."""
    rules = sp.csr_matrix((np.ones(len(ante), dtype=np.int8), (ante, cons)), shape=(n_labels, n_labels))
    rows, cols = [], []
    for a in np.unique(np.asarray(ante, dtype=np.int64)):
        reached = breadth_first_order(rules, a, directed=True, return_predecessors=False)[1:]  # [0] is a
        rows.append(np.full(len(reached), a))
        cols.append(reached)
    rows, cols = (np.concatenate(x) if x else np.zeros(0, dtype=np.int64) for x in (rows, cols))
    return sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(n_labels, n_labels))
