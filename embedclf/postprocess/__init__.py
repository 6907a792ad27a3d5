"""Post-processing of predicted labels: decision thresholds and label co-occurrence rules."""
