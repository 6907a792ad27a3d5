"""The fine-tune's settings: one frozen dataclass, checked once when it is made."""

from __future__ import annotations

from dataclasses import dataclass, fields
from numbers import Integral, Real

from embedclf.encode.models import DEFAULT_MODEL, ModelRef
from embedclf.errors import EmbedclfError
from embedclf.heads.params import check_value


def _constraints() -> dict:
    """scikit-learn parameter constraints per field (imported late: sklearn is not needed to read settings)."""
    from sklearn.utils._param_validation import Interval, StrOptions

    def at_least(low):
        return [Interval(Integral, low, None, closed="left")]

    positive = [Interval(Real, 0, None, closed="neither")]
    return {"model": [str], "epochs": at_least(1), "lr": positive, "head_lr": positive, "batch_size": at_least(1),
            "max_length": at_least(1), "warmup": [Interval(Real, 0, 1, closed="left")],
            "weight_decay": [Interval(Real, 0, None, closed="left")], "dropout": [Interval(Real, 0, 1, closed="left")],
            "pos_weight": [StrOptions({"balanced"}), None], "seed": at_least(0), "device": [str],
            "checkpoint_every": at_least(0), "max_steps": [*at_least(1), None]}


NO_OPTION = ("weight_decay", "dropout")  # settings the command line does not offer: named as fields


@dataclass(frozen=True)
class FineTuneSettings:
    """What a fine-tune run does; a bad value is an :class:`EmbedclfError` naming its CLI option.

    ``lr`` is the transformer's peak learning rate, ``head_lr`` the new classification layer's (it
    starts from random weights, so it may learn faster); ``warmup`` is the fraction of steps with a
    linear warm-up; ``pos_weight='balanced'`` weighs rare labels' positives up; ``checkpoint_every``
    adds a checkpoint every N steps (0: at the end of each epoch only); ``max_steps`` stops after N
    optimiser steps in all (for quick looks).
    """

    model: str = DEFAULT_MODEL
    epochs: int = 3
    lr: float = 2e-5
    head_lr: float = 1e-3
    batch_size: int = 16
    max_length: int = 128
    warmup: float = 0.1
    weight_decay: float = 0.01
    dropout: float = 0.1
    pos_weight: str | None = None
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 0
    max_steps: int | None = None

    def __post_init__(self):
        constraints = _constraints()
        for field in fields(self):
            name = field.name if field.name in NO_OPTION else "--" + field.name.replace("_", "-")
            check_value(name, getattr(self, field.name), constraints[field.name], type(self).__name__)
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise EmbedclfError(f"--device {self.device!r} is not one of: auto, cpu, cuda, cuda:N")

    def check_model(self, ref: ModelRef) -> None:
        """The checks that need the model's files: ``max_length`` within its position embeddings."""
        if self.max_length > ref.position_limit:
            raise EmbedclfError(f"--max-length {self.max_length} is above the {ref.position_limit} tokens "
                                f"model {self.model} can take")
