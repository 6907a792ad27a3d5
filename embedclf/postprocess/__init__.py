"""Post-processing of predicted labels: decision thresholds and label co-occurrence rules.

``thresholds`` tunes per-label decision thresholds; ``cooccur`` is the entry point to the
co-occurrence rules (``rules``, ``rule_inputs``, ``rules_file``, ``rules_plot``,
``auto_threshold``, ``model_rules``).
"""
