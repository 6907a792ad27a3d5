"""Classifier chains for multi-label blocks: each label's classifier also sees the labels before it.

A chain lets a label be predicted from correlated labels (Read et al., 2011). The order matters:
``random``, ``frequency`` (most frequent first), or ``cooccurrence`` (greedy: next is the label
best predicted, by conditional frequency, from those already placed). ``ensemble=N`` averages N
chains; the first follows ``order`` and the others random orders. Multi-class blocks of a
multi-output task get a plain base classifier.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.multioutput import ClassifierChain
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import Interval, StrOptions

from embedclf.heads.base import EstimatorPerBlockHead, single_class_columns
from embedclf.labels import MULTICLASS, iter_blocks

ORDERS = ("random", "frequency", "cooccurrence")
BASES = ("logreg", "svm")


def cooccurrence_order(Y: np.ndarray) -> np.ndarray:
    """Greedy order: start with the most frequent label, then add the label with the highest
    P(label | some placed label), so that each label follows the labels that predict it best."""
    Y = Y.astype(np.float64)
    counts = Y.sum(axis=0)
    joint = Y.T @ Y
    conditional = joint / np.maximum(counts[:, None], 1)  # [a, b] = P(b | a)
    np.fill_diagonal(conditional, 0)
    order = [int(counts.argmax())]
    remaining = set(range(Y.shape[1])) - set(order)
    while remaining:
        candidates = sorted(remaining)
        strength = conditional[np.ix_(order, candidates)].max(axis=0)
        best = candidates[int(np.lexsort((-counts[candidates], -strength))[0])]
        order.append(best)
        remaining.remove(best)
    return np.asarray(order)


class ChainHead(EstimatorPerBlockHead):
    """Classifier chains (``base`` logreg or svm) over each multi-label block.

    ``sample_weight`` is not supported: scikit-learn's ``ClassifierChain`` passes it on to its
    estimators only with metadata routing enabled, which would be saved with every fitted link.
    """

    _parameter_constraints = {"base": [StrOptions(set(BASES))], "order": [StrOptions(set(ORDERS))],
                              "ensemble": [Interval(Integral, 1, None, closed="left")],
                              "C": [Interval(Real, 0, None, closed="neither")], "random_state": ["random_state"]}

    def __init__(self, base="logreg", order="random", ensemble=1, C=1.0, random_state=0):
        self.base = base
        self.order = order
        self.ensemble = ensemble
        self.C = C
        self.random_state = random_state

    no_sample_weight_reason = ": ClassifierChain passes it to its links only under metadata routing"

    def _base(self):
        return (LogisticRegression(C=self.C, max_iter=1000) if self.base == "logreg"
                else LinearSVC(C=self.C, random_state=self.random_state))

    def _orders(self, Y, rng):
        first = {"random": None, "frequency": np.argsort(-Y.sum(axis=0), kind="stable"),
                 "cooccurrence": cooccurrence_order(Y) if Y.shape[1] > 1 else np.arange(Y.shape[1])}
        orders = [first[self.order]]
        while len(orders) < self.ensemble:
            orders.append(None)
        return [rng.permutation(Y.shape[1]) if o is None else o for o in orders]

    def _fit_blocks(self, X, Y, sample_weight=None):
        rng = np.random.RandomState(self.random_state)
        self.column_rates_ = Y.mean(axis=0).astype(np.float32)
        self.estimators_ = []
        for kind, block in iter_blocks(self.layout_):
            part = Y[:, block]
            if kind == MULTICLASS:
                known = part.any(axis=1)
                self.estimators_.append(LogisticRegression(C=self.C, max_iter=1000).fit(
                    X[known], part[known].argmax(axis=1)))
                continue
            learnable = ~single_class_columns(part)
            chains = []
            if learnable.sum() >= 1:
                method = "decision_function" if self.base == "svm" else "predict_proba"
                for order in self._orders(part[:, learnable], rng):
                    chains.append(ClassifierChain(self._base(), order=list(map(int, order)), chain_method=method)
                                  .fit(X, part[:, learnable]))
            self.estimators_.append((learnable, chains))
        return self

    def _predict_labels(self, out, columns, fitted, X):
        learnable, chains = fitted
        if chains:
            if self.base == "svm":  # margins, squashed to (0, 1): a score, not a calibrated probability
                scores = [1.0 / (1.0 + np.exp(-2.0 * chain.decision_function(X))) for chain in chains]
            else:
                scores = [chain.predict_proba(X) for chain in chains]
            out[:, columns[learnable]] = np.mean(scores, axis=0)
