"""The feature-set section of ``REPORT.md``, rendered from ``features.json`` (and ``finetune.json`` for the
fine-tune column). Measures nothing."""

from __future__ import annotations

METHODS = ("embedding + logreg", "embedding + svm", "tfidf + logreg", "tfidf + svm", "hybrid + logreg",
           "hybrid + svm", "hybrid word+char + svm", "baseline TF-IDF + LinearSVC",
           "baseline TF-IDF + logistic regression", "baseline TF-IDF word+char + LinearSVC")
SHORT = {"embedding + logreg": "emb LR", "embedding + svm": "emb SVM", "tfidf + logreg": "tfidf LR",
         "tfidf + svm": "tfidf SVM", "hybrid + logreg": "hybrid LR", "hybrid + svm": "hybrid SVM",
         "hybrid word+char + svm": "hybrid SVM, word+char", "baseline TF-IDF + LinearSVC": "baseline LinearSVC",
         "baseline TF-IDF + logistic regression": "baseline LR",
         "baseline TF-IDF word+char + LinearSVC": "baseline LinearSVC, word+char"}


def _cells(row: dict) -> dict:
    """The row's headline figures: per multi-label target micro-F1 (one tuned threshold) and macro-F1
    (per-label thresholds); per multi-class target accuracy."""
    out = {}
    micro, macro = row["test"]["tuned (micro)"], row["test"]["tuned (macro)"]
    for target, metrics in micro.items():
        if metrics.get("accuracy") is not None:
            out[f"{target} accuracy"] = metrics["accuracy"]
        else:
            out[f"{target} micro-F1"] = metrics["micro_f1"]
            out[f"{target} macro-F1"] = macro[target]["macro_f1"]
    return out


def _finetune(finetune: dict | None, dataset: str) -> tuple[dict, int | None]:
    runs = [r for r in (finetune or {}).get("runs", []) if r["dataset"] == dataset]
    if not runs:
        return {}, None
    run = max(runs, key=lambda r: r["train_rows"])
    method = next(m for m in run["methods"] if m["method"].startswith("fine-tune"))
    out = {}
    for target, metrics in method["test"].items():
        tuned = method.get("test_tuned_micro", {}).get(target, {})
        if metrics.get("accuracy") is not None:
            out[f"{target} accuracy"] = metrics["accuracy"]
        else:
            out[f"{target} micro-F1"] = tuned.get("micro_f1", metrics["micro_f1"])
            out[f"{target} macro-F1"] = metrics["macro_f1"]
    return out, run["train_rows"]


def render(features: dict, finetune: dict | None = None) -> list[str]:
    rows = features["rows"]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    lines = ["## Feature sets against a tuned TF-IDF baseline", "",
             "`python benchmarks/features.py`: the sentence embedding (`embedding`), word 1-2 gram TF-IDF "
             "(`tfidf`) and both side by side (`hybrid`, TF-IDF weight "
             f"{rows[0]['tfidf_weight']}) with the logreg and svm heads, beside plain scikit-learn TF-IDF + "
             "LinearSVC and TF-IDF + logistic regression on the same TF-IDF. Every column had its C chosen on the "
             "same validation split from the same grid (logreg 1/4/16, svm 0.1/0.5/2), by validation "
             "micro-F1 with one tuned threshold (multi-label) or mean accuracy (multi-class). Multi-label "
             "micro-F1 uses one threshold tuned for micro-F1, macro-F1 per-label thresholds tuned for macro-F1, "
             "both on validation with the same tuner for every column. The margin's interval is a paired bootstrap "
             "of the two best columns' difference over test rows (1,000 resamples, 95%): the noise floor the "
             "margin has to clear. **Bold**: the best of the row; the "
             "fine-tune column (from `finetune.json`, its largest run, trained on its own slice) is not ranked. "
             "`tfidf + logreg` is the same LogisticRegression per label as the LR baseline (the same scores), so "
             "it is not fitted twice: see the baseline LR column. The two `word+char` columns add character 2-5 "
             "grams beside the words in the TF-IDF block (`fit --tfidf-ngrams word+char`), on embedclf's side "
             "and on the baseline's: the margin is against the best baseline, this stronger one included.", ""]
    if features.get("quick") or any(r.get("sampled") for r in rows):
        lines += ["*Seeded samples of the splits (accuracy.py's quick samples): see the rows per data set.*", ""]
    if features.get("note"):
        lines += [f"*Run: {features['note']}.*", ""]
    header = ["data set", "metric", *(SHORT[m] for m in METHODS), "best embedclf − best baseline", "fine-tune"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
    for dataset in datasets:
        by_method = {r["method"]: r for r in rows if r["dataset"] == dataset}
        cells = {m: _cells(by_method[m]) for m in METHODS if m in by_method}
        tuned, tuned_rows = _finetune(finetune, dataset)
        some = next(iter(by_method.values()))
        name = f"{dataset} ({some['train_rows']:,} train / {some['test_rows']:,} test)"
        for metric in next(iter(cells.values())):
            values = {m: c[metric] for m, c in cells.items()}
            best = max(values.values())
            shown = [("**%.4f**" if values[m] == best else "%.4f") % values[m] if m in values else "–"
                     for m in METHODS]
            extra = f"{tuned[metric]:.4f} ({tuned_rows:,} train)" if metric in tuned else "–"
            ours = max((v for m, v in values.items() if not m.startswith("baseline")), default=None)
            theirs = max((v for m, v in values.items() if m.startswith("baseline")), default=None)
            margin = f"{100 * (ours - theirs):+.1f} points" if None not in (ours, theirs) else "–"
            interval = features.get("margins", {}).get(dataset, {}).get(metric, {}).get("ci95")
            if interval:
                margin += f" ({100 * interval[0]:+.1f} to {100 * interval[1]:+.1f})"
            lines.append(f"| {name} | {metric} | " + " | ".join(shown) + f" | {margin} | {extra} |")
            name = ""
    lines += ["", "Time: fit is the TF-IDF vectoriser's fit (tfidf, hybrid, baselines) plus the head's fit at the "
              "chosen C on cached embeddings; predict is the vectoriser's transform plus the head's scoring, per "
              "1,000 test texts (encoding, the same for embedding and hybrid, is excluded).", "",
              "| data set | " + " | ".join(SHORT[m] for m in METHODS) + " |", "|---|" + "---:|" * len(METHODS)]
    for dataset in datasets:
        by_method = {r["method"]: r for r in rows if r["dataset"] == dataset}
        lines.append(f"| {dataset} | " + " | ".join(
            f"{by_method[m]['fit_seconds']:.1f} s, {by_method[m]['predict_ms_per_1k']:.0f} ms, C={by_method[m]['C']}"
            if m in by_method else "–" for m in METHODS) + " |")
    lines += cooccurrence_lines(rows, datasets)
    return lines


def cooccurrence_lines(rows: list[dict], datasets: list[str]) -> list[str]:
    lines = ["", "### Co-occurrence: hard rules and the soft mode", "",
             "On each column's test scores: `hard 0.9` sets B whenever A is decided and P(B|A) ≥ 0.9 (support ≥ 5; "
             "`embedclf cooccur --threshold 0.9`); `soft` raises p(B) to at least strength · p(A) · P(B|A), "
             "strength from 0/0.25/0.5/0.75/1 tuned on validation for the same objective, thresholds re-tuned "
             "on the raised scores. 0 means the tuning found no gain.", "",
             "| data set | column | rules at 0.9 | micro-F1: none / hard / soft (strength) | "
             "macro-F1: none / hard / soft (strength) |", "|---|---|---:|---|---|"]
    for dataset in datasets:
        for row in (r for r in rows if r["dataset"] == dataset and r.get("cooccurrence")):
            c = row["cooccurrence"]
            parts = [f"{c[o]['none']:.4f} / {c[o]['hard 0.9']:.4f} / {c[o]['soft']:.4f} ({c[o]['soft_strength']})"
                     for o in ("micro", "macro")]
            lines.append(f"| {dataset} | {SHORT.get(row['method'], row['method'])} | {c['hard_rules']} | "
                         + " | ".join(parts) + " |")
    return lines + [""]


def render_mpnet(features: list[dict], speed: dict | None) -> list[str]:
    """all-mpnet-base-v2 beside MiniLM: the best column of each feature set per row (a table per results
    file: the seeded samples, the full splits), and encoding speed."""
    lines = ["### A stronger encoder: all-mpnet-base-v2 (`python benchmarks/mpnet.py`)", ""]
    if speed:
        rates = speed["texts_per_second"]
        kinds, precisions = speed["texts"], ", ".join(sorted(set(speed["precision"].values())))
        lines += [f"Encoding speed, same run, same texts ({', '.join(f'{n:,} {k}' for k, n in kinds.items())}), "
                  f"no cache, default settings (precision {precisions}), best of {speed['rounds']} rounds:", "",
                  "| model | dimensions | " + " | ".join(f"{k} texts/s" for k in kinds) + " |",
                  "|---|---:|" + "---:|" * len(kinds)]
        for model, dims in speed["dimensions"].items():
            rates_shown = " | ".join(f"{rates[f'{model} | {k}']:.1f}" for k in kinds)
            lines.append(f"| {model} | {dims} | {rates_shown} |")
        lines.append("")
    for result in features:
        sampled = " (accuracy.py's seeded samples)" if result.get("quick") else " (full splits)"
        lines += [f"Accuracy with mpnet embeddings{sampled}: the best column per feature set, chosen and scored as in "
                  "the table above (same splits, same C grid, same threshold tuning).", "",
                  "| data set | metric | mpnet embedding | mpnet hybrid | baseline (best) |", "|---|---|---:|---:|---:|"]
        rows = result["rows"]
        for dataset in dict.fromkeys(r["dataset"] for r in rows):
            cells = {r["method"]: _cells(r) for r in rows if r["dataset"] == dataset}
            for metric in next(iter(cells.values())):
                def best(prefix):
                    values = [c[metric] for m, c in cells.items() if m.startswith(prefix)]
                    return f"{max(values):.4f}" if values else "–"
                lines.append(f"| {dataset} | {metric} | {best('embedding')} | {best('hybrid')} | {best('baseline')} |")
        lines.append("")
    return lines
