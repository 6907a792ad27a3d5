"""Hybrid's TF-IDF weight: what each weight scores on validation and on test, and what ``fit``'s tuning picks.

    python benchmarks/tfidf_weight.py [--datasets goemotions,cfpb] [--quick] [--weights 0.25,0.5,1,2,4]

Per data set and head (logreg and svm at their defaults): the embeddings and the vectoriser once, the head
fitted at each weight; validation scored as ``fit --tune-thresholds --tune-for micro`` scores a weight
(micro-F1 with one tuned threshold for a multi-label target, accuracy for a multi-class one, mean over
targets), test at the thresholds tuned on validation. ``picked`` is the best on validation among
``embedclf.features.TFIDF_WEIGHT_GRID``, what ``fit`` would keep. Results go to ``tfidf_weight.json``
(``quick`` says whether the samples were used).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import load_splits  # noqa: E402
from embedclf.encode.encoder import Encoder  # noqa: E402
from embedclf.evaluate import evaluate  # noqa: E402
from embedclf.features import TFIDF_WEIGHT_GRID  # noqa: E402
from embedclf.features.hybrid import join_blocks  # noqa: E402
from embedclf.features.tfidf import fit_terms, tfidf_vectorizer  # noqa: E402
from embedclf.features.weight import metric_label, target_metrics, validation_value  # noqa: E402
from embedclf.heads import make_head  # noqa: E402
from embedclf.labels import LabelSpace, block_decisions  # noqa: E402
from embedclf.postprocess.thresholds import tune_thresholds  # noqa: E402


def score(space, metrics, Y, scores, thresholds) -> float:
    return validation_value(evaluate(space, Y, block_decisions(scores, space.layout, thresholds), scores)["targets"],
                            metrics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="goemotions,cfpb")
    parser.add_argument("--cache", default=str(ROOT / "cache"), help="embedding cache (encoded once, first run pays)")
    parser.add_argument("--weights", default="0.25,0.5,1,2,4")
    parser.add_argument("--quick", action="store_true", help="accuracy.py's seeded samples")
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    encoder = Encoder(cache=args.cache, progress=False)
    results = {"quick": args.quick, "grid": list(TFIDF_WEIGHT_GRID), "cpus": os.cpu_count(), "rows": []}
    for split in load_splits(args.datasets.split(","), quick=args.quick):
        print(f"== {split.name}: {len(split.train.texts)} train, {len(split.valid.texts)} valid, "
              f"{len(split.test.texts)} test", flush=True)
        space = LabelSpace.from_dataset(split.train)
        metrics = target_metrics(space, "micro")
        Y, Y_valid, Y_test = (space.encode(d)[0] for d in (split.train, split.valid, split.test))
        dense = [encoder.encode(d.texts) for d in (split.train, split.valid, split.test)]
        vectorizer = tfidf_vectorizer()
        terms = [fit_terms(vectorizer, split.train.texts)] + [vectorizer.transform(d.texts)
                                                              for d in (split.valid, split.test)]
        for head_name in ("logreg", "svm"):
            by_weight = {}
            for weight in weights:
                X, X_valid, X_test = (join_blocks(d, t, sparse_weight=weight) for d, t in zip(dense, terms))
                start = time.perf_counter()
                head = make_head(head_name).fit(X, Y, layout=space.layout)
                seconds = time.perf_counter() - start
                valid_scores, test_scores = head.predict_proba(X_valid), head.predict_proba(X_test)
                thresholds = tune_thresholds(Y_valid, valid_scores, space.layout, objective="micro")
                by_weight[weight] = {"validation": round(score(space, metrics, Y_valid, valid_scores, thresholds), 4),
                                     "test": round(score(space, metrics, Y_test, test_scores, thresholds), 4),
                                     "fit_seconds": round(seconds, 2)}
                print(f"   {head_name} weight {weight:g}: {by_weight[weight]}", flush=True)
            grid = [w for w in TFIDF_WEIGHT_GRID if w in by_weight]
            # as fit: the best on validation, ties to the weight nearest 1
            picked = max(grid, key=lambda w: (by_weight[w]["validation"], -abs(math.log(w)))) if grid else None
            results["rows"].append({"dataset": split.name, "head": head_name, "metric": metric_label(metrics),
                                    "train_rows": len(split.train.texts), "weights": by_weight, "picked": picked,
                                    "test_picked": by_weight[picked]["test"] if picked else None,
                                    "test_default": by_weight.get(1.0, {}).get("test")})
    out = Path(args.out_dir) / "tfidf_weight.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


def render(result: dict) -> list[str]:
    """The report's lines: each weight's validation and test score per data set and head, and fit's pick."""
    weights = sorted({float(w) for row in result["rows"] for w in row["weights"]})
    sampled = "On accuracy.py's seeded samples" if result["quick"] else "On the full splits"
    lines = ["", "### Hybrid's TF-IDF weight (`python benchmarks/tfidf_weight.py`)", "",
             f"{sampled}; each weight's head fitted on the same embeddings and vectoriser, scored "
             "as `fit --tune-thresholds --tune-for micro` scores it (validation), then on test at the thresholds "
             f"tuned on validation. `fit` picks the best on validation of {', '.join(f'{w:g}' for w in result['grid'])} "
             "(ties to 1) when it tunes and no `--tfidf-weight` is given.", "",
             "| data set | head | metric | " + " | ".join(f"weight {w:g}: valid / test" for w in weights)
             + " | picked | test at pick | test at 1 |", "|---|---|---|" + "---:|" * (len(weights) + 3)]
    for row in result["rows"]:
        cells = [f"{row['weights'][str(w)]['validation']:.4f} / {row['weights'][str(w)]['test']:.4f}"
                 if str(w) in row["weights"] else "–" for w in weights]
        lines.append(f"| {row['dataset']} | {row['head']} | {row['metric']} | " + " | ".join(cells)
                     + f" | {row['picked']:g} | {row['test_picked']:.4f} | {row['test_default']:.4f} |")
    return lines + [""]


if __name__ == "__main__":
    main()
