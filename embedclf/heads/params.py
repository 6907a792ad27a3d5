"""One-line errors for settings checked against scikit-learn parameter constraints.

Heads declare ``_parameter_constraints`` as scikit-learn estimators do, and the fine-tune settings
declare theirs the same way; :func:`check_value` checks one value and turns a violation into an
:class:`EmbedclfError` that names the command-line option: ``--loss 'hinge' is not one of: bce,
focal``, ``--epochs must be at least 1, got 0``, ``--warmup must be in [0, 1), got 1.5``.
"""

from __future__ import annotations

from numbers import Integral, Real

from embedclf.errors import EmbedclfError


def check_value(name: str, value, constraints: list, caller: str = "embedclf") -> None:
    """Raise an :class:`EmbedclfError` about ``name`` unless ``value`` meets one of ``constraints``."""
    from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints

    try:
        validate_parameter_constraints({"value": constraints}, {"value": value}, caller_name=caller)
    except InvalidParameterError as error:
        raise EmbedclfError(_friendly(name, value, constraints, error)) from None


def _friendly(name: str, value, constraints, error) -> str:
    from sklearn.utils._param_validation import Interval, StrOptions

    choices = [c for c in constraints if isinstance(c, StrOptions)]
    ranges = [c for c in constraints if isinstance(c, Interval)]
    if isinstance(value, str) and choices:
        return f"{name} {value!r} is not one of: {', '.join(sorted(choices[0].options))}"
    if ranges and isinstance(value, Real) and not isinstance(value, bool):
        bound = ranges[0]
        kind = "a whole number " if bound.type is Integral and not isinstance(value, Integral) else ""
        return f"{name} must be {kind}{describe(bound)}, got {value!r}"
    return f"{name} must be {str(error).split(' must be ', 1)[-1]}"


def describe(interval) -> str:
    """An :class:`~sklearn.utils._param_validation.Interval` in words: ``positive``, ``at least 1``, ``in [0, 1)``."""
    low, high, closed = interval.left, interval.right, interval.closed
    if high is None:
        if low == 0 and closed in ("neither", "right"):
            return "positive"
        return f"at least {low}" if closed in ("left", "both") else f"above {low}"
    if low is None:
        return f"at most {high}" if closed in ("right", "both") else f"below {high}"
    return (f"in {'[' if closed in ('left', 'both') else '('}{low}, {high}"
            f"{']' if closed in ('right', 'both') else ')'}")
