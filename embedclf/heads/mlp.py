"""A small torch MLP on fixed embeddings, for every block layout at once.

One shared body (Linear → ReLU → Dropout per hidden layer) feeds one output layer with a logit per
label column. The loss of a row is the sum over blocks of the negative log-likelihood of that
block: softmax cross-entropy over a one-hot block's logits, binary cross-entropy (or focal loss)
summed over a multi-label block's columns; training minimises its mean over rows with AdamW and
stops early on a validation loss, keeping the best epoch's weights.

The fitted network is stored as plain float32 numpy arrays and prediction is a numpy forward pass,
so a fitted head holds no torch objects: skops can save and load it without pickle, and predicting
does not import torch. Inputs are used as given (no scaling): sentence embeddings are already on
a common scale, and a hidden standardisation would have to be saved and applied everywhere else too.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from embedclf.heads.base import BlockHead
from embedclf.labels import MULTICLASS, block_probabilities, iter_blocks

LOSSES = ("bce", "focal")
MIN_ROWS_TO_HOLD_OUT = 20  # below this a held-out set is too small to judge epochs by
PREDICT_BATCH = 8192


class MLPHead(BlockHead):
    """Torch MLP head: one shared body, one output layer covering every label column.

    Parameters: ``hidden`` (hidden layer sizes; ``()`` is a linear model), ``dropout``, ``epochs``
    (the most passes over the data), ``lr`` and ``weight_decay`` (AdamW), ``batch_size``, ``loss``
    (``"bce"`` or ``"focal"``; focal applies to multi-label blocks, one-hot blocks always use
    softmax cross-entropy), ``gamma`` and ``alpha`` (focal: ``alpha`` weights positives,
    ``1 - alpha`` negatives, as in Lin et al.), ``class_weight`` (``None`` or ``"balanced"``:
    scikit-learn's balanced weights in the cross-entropy of one-hot blocks, and
    ``pos_weight = n_neg / n_pos`` clipped to [1, 100] on multi-label columns), ``patience`` (epochs
    without a lower validation loss before stopping; ``None`` trains every epoch),
    ``validation_fraction`` (rows held out for early stopping when ``fit`` gets no validation
    data), ``random_state`` and ``device`` (``"auto"``: cuda when available, else cpu; training
    only, prediction runs in numpy).

    Fitted attributes: ``weights_`` (float32 arrays of shape ``(n_in, n_out)``, one per layer),
    ``biases_``, ``n_epochs_`` (epochs run), ``best_epoch_`` (1-based epoch whose weights were
    kept), ``loss_curve_`` and ``validation_loss_curve_`` (mean loss per row, per epoch; the latter
    empty when nothing was held out), plus ``layout_``, ``classes_`` and ``n_features_in_``.
    """

    def __init__(self, hidden=(512,), dropout=0.1, epochs=100, lr=1e-3, weight_decay=1e-4, batch_size=64,
                 loss="bce", gamma=2.0, alpha=0.25, class_weight=None, patience=5, validation_fraction=0.1,
                 random_state=0, device="auto"):
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.loss = loss
        self.gamma = gamma
        self.alpha = alpha
        self.class_weight = class_weight
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device

    def fit(self, X, y, layout=None, validation=None) -> "MLPHead":
        """Fit on ``X`` and ``y`` (see :class:`BlockHead`); ``validation`` is ``(X_valid, y_valid)``.

        ``y_valid`` has the form of ``y`` (classes for 1-D ``y``, else the same block matrix). Without
        it, ``validation_fraction`` of the rows is held out, unless there are fewer than 20.
        """
        return super().fit(X, y, layout=layout, validation=validation)

    # -- training ------------------------------------------------------------------------------
    def _fit_blocks(self, X, Y, validation=None):
        self._check_params()
        if not np.isfinite(X).all():  # torch would train on them silently and return NaN weights
            raise ValueError("X contains NaN or infinity")
        rng = check_random_state(self.random_state)
        if validation is not None:
            X_valid, Y_valid = self._validation_blocks(validation)
        elif self.patience is not None and self.validation_fraction and len(X) >= MIN_ROWS_TO_HOLD_OUT:
            order = rng.permutation(len(X))
            n_valid = max(1, int(round(self.validation_fraction * len(X))))
            X_valid, Y_valid = X[order[:n_valid]], Y[order[:n_valid]]
            X, Y = X[order[n_valid:]], Y[order[n_valid:]]
        else:
            X_valid = Y_valid = None
        seed = int(rng.randint(np.iinfo(np.int32).max))
        layers, curves = _train(self, X, Y, X_valid, Y_valid, seed)
        self.weights_ = [w for w, _ in layers]
        self.biases_ = [b for _, b in layers]
        self.loss_curve_, self.validation_loss_curve_, self.best_epoch_ = curves
        self.n_epochs_ = len(self.loss_curve_)

    def _check_params(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")
        if any(int(size) < 1 for size in _hidden(self.hidden)):
            raise ValueError(f"hidden layer sizes must be positive, got {self.hidden!r}")
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")

    def _validation_blocks(self, validation):
        X_valid, y_valid = validation
        X_valid = np.asarray(X_valid, dtype=np.float32)
        y_valid = np.asarray(y_valid)
        if self.classes_ is not None and y_valid.ndim == 1:
            # Classes unknown to the training set give an all-zero row, which adds no loss.
            Y_valid = (y_valid[:, None] == self.classes_[None, :]).astype(np.int8)
        else:
            Y_valid = y_valid.astype(np.int8, copy=False)
        n_columns = sum(size for _, size in self.layout_)
        if X_valid.ndim != 2 or X_valid.shape[1] != self.n_features_in_:
            raise ValueError(f"validation X must have {self.n_features_in_} columns")
        if Y_valid.shape != (len(X_valid), n_columns):
            raise ValueError(f"validation y must be {len(X_valid)} x {n_columns}, got {Y_valid.shape}")
        return X_valid, Y_valid

    # -- predicting ----------------------------------------------------------------------------
    def _predict_blocks(self, X):
        if X.ndim != 2:
            raise ValueError(f"Expected a 2-D array of embeddings, got shape {X.shape}. Reshape your data.")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input")
        scores = np.empty((len(X), self.biases_[-1].shape[0]), dtype=np.float64)
        for start in range(0, len(X), PREDICT_BATCH):
            h = X[start:start + PREDICT_BATCH]
            for weight, bias in zip(self.weights_[:-1], self.biases_[:-1]):
                h = np.maximum(h @ weight + bias, 0)
            logits = h @ self.weights_[-1] + self.biases_[-1]
            scores[start:start + len(logits)] = block_probabilities(logits, self.layout_)
        return scores


def _train(head: MLPHead, X, Y, X_valid, Y_valid, seed: int):
    """Train the network; return its layers as ``(weight, bias)`` arrays and ``(loss, valid loss, best epoch)``.

    Torch's global RNG is seeded inside ``fork_rng`` (weights, dropout) so the caller's RNG state is
    left as it was; a separate generator shuffles the rows. On CPU, training runs on one thread and
    restores the caller's setting after: batches this small gain nothing from intra-op threads, and
    when other processes share the cores, OpenMP's waiting makes each step up to 100x slower.
    """
    import torch

    if head.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(head.device)
    forked = [device.index or 0] if device.type == "cuda" else []
    threads = torch.get_num_threads()
    try:
        if device.type == "cpu":
            torch.set_num_threads(1)
        with torch.random.fork_rng(devices=forked):
            return _train_loop(head, X, Y, X_valid, Y_valid, seed, device)
    finally:
        torch.set_num_threads(threads)


def _train_loop(head: MLPHead, X, Y, X_valid, Y_valid, seed: int, device):
    import torch

    torch.manual_seed(seed)
    shuffler = torch.Generator().manual_seed(seed)
    net = _network(X.shape[1], _hidden(head.hidden), Y.shape[1], head.dropout).to(device)
    loss_fn = _BlockLoss(head, Y, device)
    # The fused kernel updates all parameters in one call: about 20% faster a step at these sizes.
    optimizer = torch.optim.AdamW(net.parameters(), lr=head.lr, weight_decay=head.weight_decay,
                                  fused=device.type in ("cpu", "cuda"))
    X_t, Y_t = torch.from_numpy(X).to(device), torch.from_numpy(Y).to(device, torch.float32)
    if X_valid is not None:
        X_valid_t = torch.from_numpy(X_valid).to(device)
        Y_valid_t = torch.from_numpy(Y_valid).to(device, torch.float32)
    losses, valid_losses = [], []
    best_loss, best_epoch, best_state = np.inf, 0, None
    for epoch in range(1, int(head.epochs) + 1):
        net.train()
        total = torch.zeros((), device=device)
        for batch in torch.randperm(len(X), generator=shuffler).to(device).split(int(head.batch_size)):
            loss = loss_fn(net(X_t[batch]), Y_t[batch]).sum()
            optimizer.zero_grad(set_to_none=True)
            (loss / len(batch)).backward()
            optimizer.step()
            total += loss.detach()
        losses.append(float(total) / len(X))
        if X_valid is None:
            continue
        valid_losses.append(_mean_loss(net, loss_fn, X_valid_t, Y_valid_t))
        if valid_losses[-1] < best_loss:
            best_loss, best_epoch = valid_losses[-1], epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif head.patience is not None and epoch - best_epoch >= head.patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        best_epoch = len(losses)
    layers = [(m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy())
              for m in net if isinstance(m, torch.nn.Linear)]
    return layers, (losses, valid_losses, int(best_epoch))


def _hidden(hidden) -> tuple[int, ...]:
    return (int(hidden),) if np.isscalar(hidden) else tuple(int(size) for size in hidden)


def _network(n_in: int, hidden: tuple[int, ...], n_out: int, dropout: float):
    import torch.nn as nn

    layers = []
    for size in hidden:
        layers += [nn.Linear(n_in, size), nn.ReLU(), nn.Dropout(dropout)]
        n_in = size
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


def _mean_loss(net, loss_fn, X, Y) -> float:
    import torch

    net.eval()
    with torch.no_grad():
        total = sum(float(loss_fn(net(x), y).sum()) for x, y in zip(X.split(PREDICT_BATCH), Y.split(PREDICT_BATCH)))
    return total / len(X)


class _BlockLoss:
    """Per-row loss: the sum over blocks of each block's negative log-likelihood (see module docstring).

    Class weights are computed once from the training labels and apply to the validation loss
    too, so early stopping judges the objective being trained. A row whose one-hot block is all
    zero (its label was not seen in training) adds nothing for that block.
    """

    def __init__(self, head: MLPHead, Y: np.ndarray, device):
        import torch

        self.focal = head.loss == "focal"
        self.gamma, self.alpha = float(head.gamma), float(head.alpha)
        self.blocks = []
        for kind, cols in iter_blocks(head.layout_):
            counts = Y[:, cols].sum(axis=0).astype(np.float64)
            if head.class_weight != "balanced":
                weight = None
            elif kind == MULTICLASS:
                seen = counts > 0
                weight = np.ones_like(counts)
                weight[seen] = counts.sum() / (seen.sum() * counts[seen])
            else:
                weight = np.clip((len(Y) - counts) / np.maximum(counts, 1), 1, 100)
            if weight is not None:
                weight = torch.as_tensor(weight, dtype=torch.float32, device=device)
            self.blocks.append((kind, cols, weight))

    def __call__(self, logits, Y):
        import torch.nn.functional as F

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
        return total
