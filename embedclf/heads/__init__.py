"""Classification heads on fixed embeddings, each a scikit-learn estimator.

``make_head(name, **params)`` builds one by its CLI name and checks its parameters against the
head's ``_parameter_constraints`` (the one place the ranges live), turning a bad value into a
one-line :class:`EmbedclfError` that names the command-line option. ``head_params(name)`` lists
the parameters a head takes, so a caller passes e.g. ``random_state`` only where it applies.
"""

from __future__ import annotations

from embedclf.errors import EmbedclfError
from embedclf.heads.params import check_value

HEAD_NAMES = ("logreg", "svm", "knn", "mlp", "chain")
# parameters whose command-line option is not ``--`` plus the name with dashes
OPTIONS = {"C": "--C", "n_neighbors": "--neighbors", "random_state": "--seed"}


def head_classes() -> dict:
    from embedclf.heads.chain import ChainHead
    from embedclf.heads.linear import KNNHead, LogRegHead, SVMHead
    from embedclf.heads.mlp import MLPHead

    return {"logreg": LogRegHead, "svm": SVMHead, "knn": KNNHead, "mlp": MLPHead, "chain": ChainHead}


def _head_class(name: str):
    classes = head_classes()
    if name not in classes:
        raise EmbedclfError(f"unknown head {name!r}; expected one of {', '.join(HEAD_NAMES)}")
    return classes[name]


def head_params(name: str) -> set[str]:
    """The parameters head ``name`` takes (its ``__init__`` arguments)."""
    return set(_head_class(name)._get_param_names())


def option(param: str) -> str:
    """The command-line option of a head parameter: ``n_neighbors`` → ``--neighbors``."""
    return OPTIONS.get(param, "--" + param.replace("_", "-"))


def make_head(name: str, **params):
    """Head ``name`` with ``params``; ``None`` values mean "not given" and keep the head's default.

    A parameter the head does not take, or a value out of its range, is an :class:`EmbedclfError`.
    """
    cls = _head_class(name)
    params = {key: value for key, value in params.items() if value is not None}
    accepted = head_params(name)
    unknown = sorted(set(params) - accepted)
    if unknown:
        shown = ", ".join(sorted(accepted, key=str.lower))
        raise EmbedclfError(f"the {name} head takes no {', '.join(map(repr, unknown))}; it takes: {shown}")
    for key, value in params.items():
        if key in cls._parameter_constraints:
            check_value(option(key), value, cls._parameter_constraints[key], cls.__name__)
    return cls(**params)


def head_name(head) -> str:
    for name, cls in head_classes().items():
        if type(head) is cls:
            return name
    return type(head).__name__
