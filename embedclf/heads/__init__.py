"""Classification heads on fixed embeddings, each a scikit-learn estimator.

``make_head(name, **params)`` builds one by its CLI name; parameters a head does not take are
ignored, so one set of command-line options serves every head.
"""

from __future__ import annotations

import inspect

from embedclf.errors import EmbedclfError


def head_classes() -> dict:
    from embedclf.heads.chain import ChainHead
    from embedclf.heads.linear import KNNHead, LogRegHead, SVMHead
    from embedclf.heads.mlp import MLPHead

    return {"logreg": LogRegHead, "svm": SVMHead, "knn": KNNHead, "mlp": MLPHead, "chain": ChainHead}


HEAD_NAMES = ("logreg", "svm", "knn", "mlp", "chain")


def make_head(name: str, **params):
    classes = head_classes()
    if name not in classes:
        raise EmbedclfError(f"unknown head {name!r}; expected one of {', '.join(HEAD_NAMES)}")
    cls = classes[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    params = {k: v for k, v in params.items() if k in accepted and v is not None}
    for key, allowed in CHOICES.items():
        if key in params and params[key] not in allowed:
            shown = ", ".join(str(a) for a in allowed if a is not None)
            raise EmbedclfError(f"--{key.replace('_', '-')} {params[key]!r} is not one of: {shown}")
    for key in ("C", "lr", "epochs", "batch_size", "n_neighbors", "ensemble", "gamma"):
        if key in params and not params[key] > 0:
            raise EmbedclfError(f"--{key.replace('_', '-').replace('n-neighbors', 'neighbors')} must be positive")
    for key in ("dropout", "alpha"):
        if key in params and not 0 <= params[key] < 1:
            raise EmbedclfError(f"--{key} must be in [0, 1)")
    return cls(**params)


CHOICES = {"loss": ("bce", "focal"), "class_weight": (None, "balanced"), "base": ("logreg", "svm"),
           "order": ("random", "frequency", "cooccurrence")}


def head_name(head) -> str:
    for name, cls in head_classes().items():
        if type(head) is cls:
            return name
    return type(head).__name__
