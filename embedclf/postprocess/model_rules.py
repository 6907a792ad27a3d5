"""Co-occurrence rules meet a model and a data set: learn them from a data set, check and apply them per target.

A model's decisions are blocks of columns, one per target; rules belong to the multi-label ones
whose classes they share, re-indexed to each block's class order by
:meth:`~embedclf.postprocess.rules.CooccurrenceRules.align`.
"""

from __future__ import annotations

import numpy as np

from embedclf.errors import EmbedclfError
from embedclf.labels import MULTILABEL, LabelSpace, TargetSpace
from embedclf.postprocess.rule_inputs import RuleSettings
from embedclf.postprocess.rules import CooccurrenceRules


def learn_rules(dataset, threshold: float = 0.9, min_support: int = 5, target: str | None = None):
    """Rules from a labelled :class:`~embedclf.data.Dataset`'s multi-label target (the first, or ``target``)."""
    settings = RuleSettings(threshold, min_support)  # refused before any label is counted
    space = LabelSpace.from_dataset(dataset)
    chosen, block = multilabel_target(space, target, dataset.path)
    rules = CooccurrenceRules(settings.threshold, settings.min_support)
    rules.fit(space.encode(dataset)[0][:, block], chosen.classes)
    rules.source_ = dataset.path
    return rules


def check_rules_fit(rules: CooccurrenceRules, space: LabelSpace, source=None) -> None:
    """Fail with one line if the rules name none of the model's multi-label labels."""
    if not _rule_blocks(rules, space):
        origin = f"rules file {source}" if source else "the rules"
        raise EmbedclfError(f"{origin} is for other labels than the model's: none of its "
                            f"{len(rules.label_names_)} labels is a multi-label class of the model")


def apply_rules(rules: CooccurrenceRules, Y: np.ndarray, space: LabelSpace) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``rules`` to a model's block decisions ``Y``: ``(Y_new, added)`` over all columns."""
    Y_new, added = Y.copy(), np.zeros_like(Y)
    for block, aligned in _rule_blocks(rules, space):
        Y_new[:, block], added[:, block] = aligned.apply(Y[:, block])
    return Y_new, added


def multilabel_target(space: LabelSpace, target: str | None, source) -> tuple[TargetSpace, slice]:
    """The first multi-label target of ``space`` (or the one named ``target``) and its columns."""
    for candidate, block in zip(space.targets, space.slices):
        if candidate.kind == MULTILABEL and (target is None or candidate.name == target):
            return candidate, block
    raise EmbedclfError(f"{source}: no multi-label target{f' named {target!r}' if target else ''}; "
                        "co-occurrence rules need a column holding several labels (--label-sep or JSON lists)")


def _rule_blocks(rules: CooccurrenceRules, space: LabelSpace) -> list[tuple[slice, CooccurrenceRules]]:
    """The multi-label targets of ``space`` that share labels with ``rules``, each with the rules aligned to it."""
    blocks = []
    for target, block in zip(space.targets, space.slices):
        if target.kind == MULTILABEL and set(target.classes) & set(rules.label_names_):
            blocks.append((block, rules.align(target.classes)))
    return blocks

