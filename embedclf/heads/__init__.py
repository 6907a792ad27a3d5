"""Classification heads on fixed embeddings, each a scikit-learn estimator.

``make_head(name, **params)`` builds one by its CLI name and checks its parameters against the
head's ``_parameter_constraints`` (the one place the ranges live), turning a bad value into a
one-line :class:`EmbedclfError` that names the command-line option. ``head_params(name)`` lists
the parameters a head takes, so a caller passes e.g. ``random_state`` only where it applies.
"""

from __future__ import annotations

from numbers import Integral, Real

from embedclf.errors import EmbedclfError

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
        _check(cls, key, value)
    return cls(**params)


def _check(cls, key: str, value) -> None:
    from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints

    constraints = cls._parameter_constraints.get(key)
    if constraints is None:
        return
    try:
        validate_parameter_constraints({key: constraints}, {key: value}, caller_name=cls.__name__)
    except InvalidParameterError as error:
        raise EmbedclfError(_friendly(option(key), value, constraints, error)) from None


def _friendly(name: str, value, constraints, error) -> str:
    """One line for a bad value: ``--loss 'hinge' is not one of: bce, focal``, ``--C must be positive, got -1``."""
    from sklearn.utils._param_validation import Interval, StrOptions

    choices = [c for c in constraints if isinstance(c, StrOptions)]
    ranges = [c for c in constraints if isinstance(c, Interval)]
    if isinstance(value, str) and choices:
        return f"{name} {value!r} is not one of: {', '.join(sorted(choices[0].options))}"
    if ranges and isinstance(value, Real) and not isinstance(value, bool):
        bound = ranges[0]
        kind = "a whole number " if bound.type is Integral and not isinstance(value, Integral) else ""
        return f"{name} must be {kind}{_describe(bound)}, got {value!r}"
    return f"{name} must be {str(error).split(' must be ', 1)[-1]}"


def _describe(interval) -> str:
    low, high, closed = interval.left, interval.right, interval.closed
    if high is None:
        if low == 0 and closed in ("neither", "right"):
            return "positive"
        return f"at least {low}" if closed in ("left", "both") else f"above {low}"
    if low is None:
        return f"at most {high}" if closed in ("right", "both") else f"below {high}"
    return (f"in {'[' if closed in ('left', 'both') else '('}{low}, {high}"
            f"{']' if closed in ('right', 'both') else ')'}")


def head_name(head) -> str:
    for name, cls in head_classes().items():
        if type(head) is cls:
            return name
    return type(head).__name__
