"""What ``embedclf cooccur`` does: rules learnt from a labelled file, at a given threshold or one picked on
validation data with a fitted model (``--threshold auto``). It sits above the rest of ``postprocess``:
nothing in the package imports it but the command line."""

from __future__ import annotations

from embedclf.errors import EmbedclfError
from embedclf.inference import load_classifier
from embedclf.postprocess.auto_threshold import tune_rule_threshold
from embedclf.postprocess.model_rules import learn_rules
from embedclf.postprocess.rule_inputs import RuleSettings


def rules_from_files(train_path, data_options, *, threshold: float | str = 0.9, min_support: int = 5,
                     target: str | None = None, valid=None, model_dir=None, cache=None, say=None):
    """``embedclf cooccur``: ``(rules, curve)`` learnt from TRAIN's labels; ``curve`` is None unless
    ``threshold='auto'``, which picks the threshold that maximises ``model_dir``'s micro-F1 on ``valid``
    (data options default to the model's then, unless label columns were given)."""
    say = say or (lambda message: None)
    if threshold != "auto":
        settings = RuleSettings(_number(threshold), min_support)  # refused before any data is read
        dataset = data_options.load(train_path, require_labels=True)
        say(dataset.summary())
        return learn_rules(dataset, settings.threshold, settings.min_support, target), None
    if valid is None or model_dir is None:
        raise EmbedclfError("--threshold auto needs --valid FILE and --model-dir MODEL_DIR")

    classifier = load_classifier(model_dir, cache=cache)
    options = data_options if data_options.label_cols else classifier.data_options
    dataset = options.load(train_path, require_labels=True)
    say(dataset.summary())
    return tune_rule_threshold(dataset, classifier, options.load(valid, require_labels=True), min_support, target)


def _number(threshold) -> float:
    try:
        return float(threshold)
    except (TypeError, ValueError):
        raise EmbedclfError(f"--threshold must be a number in (0, 1] or 'auto', got {threshold!r}") from None
