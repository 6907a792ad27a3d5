"""What ``embedclf fit`` gives with no head options: each head at its defaults against the tuned TF-IDF baseline.

    python benchmarks/defaults.py [--datasets goemotions,reuters,cfpb] [--cache DIR] [--quick]

The product promises a better classifier than TF-IDF + LinearSVC without flags, so the default head has to
keep it at its default C, where the feature-set table (``features.py``) gives every column its best C.
Each head sees ``--features auto`` (hybrid: the embedding beside word 1-2 gram TF-IDF, weight 1) and its
thresholds are tuned on validation as ``fit --tune-thresholds --tune-for micro|macro`` tunes them; the
baseline (plain scikit-learn TF-IDF + LinearSVC, seeded) gets its C from features.py's grid on the same
validation split, in the same run. Margins carry a 95% paired bootstrap over the test rows. Fit seconds are
this run's, not a quiet timing. Writes ``results/defaults.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import load_splits  # noqa: E402
from benchmarks.features import Baseline, margins, run_config, tfidf_blocks  # noqa: E402
from embedclf.encode.encoder import Encoder  # noqa: E402
from embedclf.features.hybrid import join_blocks  # noqa: E402
from embedclf.heads import make_head  # noqa: E402
from embedclf.labels import LabelSpace  # noqa: E402

HEADS = ("svm", "logreg")  # the default head first
BASELINE = "baseline TF-IDF + LinearSVC svm"  # features.py's config label: its last word picks the C grid
BASELINE_METHOD = BASELINE.removesuffix(" svm")  # the method its rows are stored under, as in features.json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="goemotions,reuters,cfpb")
    parser.add_argument("--cache", default=str(ROOT / "cache"), help="embedding cache (encoded once, first run pays)")
    parser.add_argument("--quick", action="store_true", help="accuracy.py's seeded samples, to check the script")
    parser.add_argument("--out", default=None, help="[default: results/defaults.json, or defaults-quick.json]")
    args = parser.parse_args()
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"defaults{'-quick' if args.quick else ''}.json")
    encoder = Encoder(cache=args.cache, progress=False)
    result = {"quick": args.quick, "model": str(encoder.settings.model), "rows": [], "margins": {}}
    for split in load_splits(args.datasets.split(","), quick=args.quick):
        print(f"== {split.name}", flush=True)
        space = LabelSpace.from_dataset(split.train)
        Y, Y_valid, Y_test = (space.encode(d)[0] for d in (split.train, split.valid, split.test))
        dense = [encoder.encode(d.texts) for d in (split.train, split.valid, split.test)]
        tfidf = tfidf_blocks(split)
        hybrid = [join_blocks(d, t) for d, t in zip(dense, tfidf.terms)]
        decided = {}
        configs = [(f"{head} at its defaults", hybrid, lambda C, h=head: make_head(h, C=C), (make_head(head).C,))
                   for head in HEADS]
        configs.append((BASELINE, tfidf.terms, lambda C: Baseline("svm", C), None))
        for label, (X, X_valid, X_test), make, grid in configs:
            print(f"   {label}", flush=True)
            decided[label], row = run_config(space, label, make, X, Y, X_valid,
                                             Y_valid, X_test, Y_test, tfidf.fit_seconds, tfidf.predict_seconds, grid)
            row.pop("cooccurrence")
            result["rows"].append({"dataset": split.name, "method": BASELINE_METHOD if label == BASELINE else label,
                                   **row})
        result["margins"][split.name] = {head: margins(space, Y_test, {f"{head} at its defaults":
                                                                       decided[f"{head} at its defaults"],
                                                                       BASELINE: decided[BASELINE]})
                                         for head in HEADS}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))


def render(result: dict) -> list[str]:
    """The report's lines: each head at its defaults against the tuned baseline, per data set and metric."""
    lines = ["", "### What `fit` gives with no head options (`python benchmarks/defaults.py`)", "",
             "Each head at its default C on `--features auto` (hybrid), thresholds tuned on validation as "
             "`fit --tune-thresholds` tunes them (micro-F1: `--tune-for micro`; macro-F1: per label); the baseline "
             "TF-IDF + LinearSVC with C chosen on the same validation split, in the same run. Difference: the head "
             "minus the baseline, in points, with a 95% paired bootstrap over the test rows.", "",
             "| data set | metric | " + " | ".join(f"{h} at its defaults" for h in HEADS)
             + " | baseline, tuned | " + " | ".join(f"{h} − baseline" for h in HEADS) + " |",
             "|---|---|" + "---:|" * (2 * len(HEADS) + 1)]
    for dataset, per_head in result["margins"].items():
        for metric in per_head[HEADS[0]]:
            cells = [per_head[h][metric] for h in HEADS]
            base = _test_figure(result, dataset, BASELINE_METHOD, metric)
            scores = [_test_figure(result, dataset, f"{h} at its defaults", metric) for h in HEADS]
            lines.append(f"| {dataset} | {metric} | " + " | ".join(f"{s:.4f}" for s in scores) + f" | {base:.4f} | "
                         + " | ".join(f"{100 * c['difference']:+.1f} ({100 * c['ci95'][0]:+.1f} to "
                                      f"{100 * c['ci95'][1]:+.1f})" for c in cells) + " |")
    fits = {(r["dataset"], r["method"]): r["fit_seconds"] for r in result["rows"]}
    lines += ["", "Fit seconds (this run, vectoriser included): " + "; ".join(
        f"{dataset.split(' (')[0]} " + ", ".join(f"{h} {fits[(dataset, f'{h} at its defaults')]:.0f}" for h in HEADS)
        for dataset in result["margins"]) + ".", ""]
    return lines


def _test_figure(result: dict, dataset: str, method: str, metric: str) -> float:
    """A row's test figure for a margins metric name ("labels micro-F1", "Product accuracy")."""
    row = next(r for r in result["rows"] if r["dataset"] == dataset and r["method"] == method)
    target, name = metric.rsplit(" ", 1)
    mode = "tuned (macro)" if name == "macro-F1" else "tuned (micro)"
    key = {"micro-F1": "micro_f1", "macro-F1": "macro_f1", "accuracy": "accuracy"}[name]
    return row["test"][mode][target][key]


if __name__ == "__main__":
    main()
