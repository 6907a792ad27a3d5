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
OPTIONS = {"C": "--C", "n_neighbors": "--neighbors", "random_state": "--seed", "n_jobs": "--jobs"}


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
    jobs = params.get("n_jobs")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs == 0 or jobs < -1):
        raise EmbedclfError(f"--jobs must be a whole number of at least 1 (or -1 for every core), got {jobs!r}")
    if name == "mlp" and "hidden" in params:  # each size, which the array-like constraint cannot say
        from embedclf.heads.mlp import _hidden

        try:
            _hidden(params["hidden"])
        except ValueError:
            raise EmbedclfError(f"--hidden sizes must be at least 1, got {params['hidden']!r}") from None
    return cls(**params)


def check_fits_rows(head, n_rows: int) -> None:
    """Refuse, before any encoding, a head that cannot be fitted on ``n_rows`` training rows."""
    neighbors = getattr(head, "n_neighbors", None)
    if neighbors is not None and neighbors > n_rows:
        raise EmbedclfError(f"--neighbors {neighbors} is more than the {n_rows:,} training rows; use at most {n_rows:,}")


def head_name(head) -> str:
    for name, cls in head_classes().items():
        if type(head) is cls:
            return name
    return type(head).__name__
