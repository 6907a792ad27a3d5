"""Decision thresholds for multi-label columns, tuned on validation data to maximise each label's F1."""

from __future__ import annotations

import numpy as np

from embedclf.data import MULTILABEL
from embedclf.heads.base import iter_blocks

GRID = np.round(np.arange(0.02, 0.96, 0.01), 2)


def tune_thresholds(Y_true: np.ndarray, scores: np.ndarray, layout, default: float = 0.5,
                    grid: np.ndarray = GRID) -> np.ndarray:
    """Per column, the grid threshold with the best F1 on ``(Y_true, scores)``.

    Columns of multi-class blocks (decided by argmax) and labels without a positive validation
    example keep ``default``: there is nothing to tune them on. Ties go to the threshold closest
    to ``default``, which keeps rare labels from drifting to extremes.
    """
    thresholds = np.full(scores.shape[1], default, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    preference = np.abs(grid - default)
    for kind, block in iter_blocks(layout):
        if kind != MULTILABEL:
            continue
        for column in range(block.start, block.stop):
            truth = Y_true[:, column].astype(bool)
            if not truth.any():
                continue
            decided = scores[:, column][:, None] >= grid[None, :]  # (n, grid)
            tp = (decided & truth[:, None]).sum(axis=0)
            fp = (decided & ~truth[:, None]).sum(axis=0)
            fn = truth.sum() - tp
            f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
            best = np.lexsort((preference, -f1))[0]
            thresholds[column] = grid[best]
    return thresholds
