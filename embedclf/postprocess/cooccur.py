"""Label co-occurrence rules, the public entry point: everything callers use, from the modules that hold it.

* :mod:`.rules` — :class:`CooccurrenceRules`, the estimator (fit, apply, align, closure, summary);
* :mod:`.rule_inputs` — :class:`RuleSettings` and the checks of label names and label matrices;
* :mod:`.rules_file` — the JSON rules file and the GraphML export;
* :mod:`.rules_plot` — the PNG drawing;
* :mod:`.auto_threshold` — the threshold picked on validation data (``--threshold auto``);
* :mod:`.model_rules` — rules learnt from a data set and applied to a model's decisions.
"""

from embedclf.postprocess.auto_threshold import DEFAULT_GRID, select_threshold, tune_rule_threshold
from embedclf.postprocess.model_rules import apply_rules, check_rules_fit, learn_rules
from embedclf.postprocess.rule_inputs import RuleSettings
from embedclf.postprocess.rules import CooccurrenceRules
from embedclf.postprocess.rules_file import FORMAT

__all__ = ["CooccurrenceRules", "DEFAULT_GRID", "FORMAT", "RuleSettings", "apply_rules", "check_rules_fit",
           "learn_rules", "select_threshold", "tune_rule_threshold"]
