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
    return cls(**{k: v for k, v in params.items() if k in accepted and v is not None})


def head_name(head) -> str:
    for name, cls in head_classes().items():
        if type(head) is cls:
            return name
    return type(head).__name__
