"""The training loss over the block label matrix, shared by the MLP head and the fine-tune.

The loss of a row is the sum over blocks of that block's negative log-likelihood:

* a one-hot block: softmax cross-entropy over its logits, times the weight of the row's class;
  a row whose block is all zero (its class was not seen in training) adds nothing;
* a multi-label block: binary cross-entropy with logits (or focal loss, Lin et al. 2017) per
  column, a positive's term times that column's positive weight, summed over the columns.

A batch's loss is the mean over its rows of ``sample_weight * row loss`` (a weight of 1 when none
is given): :meth:`BlockLoss.rows` gives the per-row terms, calling the loss gives that mean.

Torch is imported only when a loss is built or called, so importing this module (and predicting
with a fitted head) does not import it.
"""

from __future__ import annotations

import numpy as np

from embedclf.labels import MULTICLASS, iter_blocks

MAX_POS_WEIGHT = 100.0  # a label seen once in 100,000 rows would otherwise get a weight of 100,000


def balanced_weights(layout, Y: np.ndarray, *, classes: bool = True, positives: bool = True,
                     sample_weight: np.ndarray | None = None) -> list[np.ndarray | None]:
    """Per block, the ``"balanced"`` weights of :class:`BlockLoss` (``None`` where not asked for).

    One-hot blocks (``classes``): scikit-learn's balanced class weights ``n / (n_seen * count)``
    over the classes seen, 1 for classes never seen. Multi-label blocks (``positives``):
    ``n_negative / n_positive`` per column, clipped to [1, 100]. Counts are weighted by
    ``sample_weight`` when given.
    """
    weighted = Y if sample_weight is None else Y * sample_weight[:, None]
    n_rows = len(Y) if sample_weight is None else float(sample_weight.sum())
    weights = []
    for kind, cols in iter_blocks(layout):
        counts = weighted[:, cols].sum(axis=0).astype(np.float64)
        if kind == MULTICLASS and classes:
            seen = counts > 0
            weight = np.ones_like(counts)
            weight[seen] = counts.sum() / (seen.sum() * counts[seen])
        elif kind != MULTICLASS and positives:
            weight = np.clip((n_rows - counts) / np.maximum(counts, 1), 1, MAX_POS_WEIGHT)
        else:
            weight = None
        weights.append(weight)
    return weights


class BlockLoss:
    """Negative log-likelihood of the block matrix ``Y`` given logits (see the module docstring).

    ``weights`` has one entry per block of ``layout``: ``None``, or an array of class weights
    (one-hot block) or positive weights (multi-label block), one per column. ``focal`` uses the
    focal loss on multi-label blocks: ``alpha`` weighs positives, ``1 - alpha`` negatives, and
    ``(1 - p_t) ** gamma`` down-weighs easy columns; one-hot blocks always use cross-entropy.
    Weights are fixed when the loss is built (from the training labels), so a validation loss
    measures the objective being trained.
    """

    def __init__(self, layout, weights=None, *, focal: bool = False, gamma: float = 2.0, alpha: float = 0.25,
                 device=None):
        import torch

        weights = [None] * len(tuple(layout)) if weights is None else list(weights)
        self.focal, self.gamma, self.alpha = bool(focal), float(gamma), float(alpha)
        self.blocks = []
        for (kind, cols), weight in zip(iter_blocks(layout), weights):
            if weight is not None:
                weight = torch.as_tensor(np.asarray(weight), dtype=torch.float32, device=device)
            self.blocks.append((kind, cols, weight))

    def rows(self, logits, Y, sample_weight=None):
        """Each row's loss, times its ``sample_weight`` when given: a tensor of shape ``(len(Y),)``."""
        import torch.nn.functional as F

        logits = logits.float()  # mixed precision: the loss is computed in float32
        total = logits.new_zeros(len(logits))
        for kind, cols, weight in self.blocks:
            z, y = logits[:, cols], Y[:, cols]
            if kind == MULTICLASS:
                seen = y.amax(dim=1)
                total = total + F.cross_entropy(z, y.argmax(dim=1), weight=weight, reduction="none") * seen
                continue
            loss = F.binary_cross_entropy_with_logits(z, y, reduction="none")
            if self.focal:
                p_t = (-loss).exp()
                loss = (y * self.alpha + (1 - y) * (1 - self.alpha)) * (1 - p_t) ** self.gamma * loss
            if weight is not None:
                loss = loss * (1 + (weight - 1) * y)
            total = total + loss.sum(dim=1)
        return total if sample_weight is None else total * sample_weight

    def __call__(self, logits, Y, sample_weight=None):
        """The batch's loss: the mean over rows of :meth:`rows`."""
        return self.rows(logits, Y, sample_weight).sum() / len(logits)
