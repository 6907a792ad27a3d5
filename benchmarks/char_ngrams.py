"""Do character n-grams earn a place in the TF-IDF block? Word 1-2 grams alone against word 1-2 grams plus
character 2-5 grams within word boundaries, in hybrid (with logreg and svm) and in TF-IDF + svm.

    python benchmarks/char_ngrams.py [--datasets goemotions,reuters,cfpb] [--cache DIR] [--quick]

Same protocol as ``features.py`` (its ``run_config``: C from the same grid chosen on validation, thresholds
tuned on validation for micro- and macro-F1). The word+char block is ``fit --tfidf-ngrams word+char``'s
(``embedclf.features.tfidf``): the two TF-IDF blocks side by side, each L2-normalised and scaled by
1/sqrt(2). Fit seconds include the vectoriser's fit; they are from a run where every configuration shares
the machine alike, not a quiet timing. Results go to ``char_ngrams.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import load_splits  # noqa: E402
from benchmarks.features import run_config, tfidf_blocks  # noqa: E402
from embedclf.encode.encoder import Encoder  # noqa: E402
from embedclf.features.hybrid import join_blocks  # noqa: E402
from embedclf.features.tfidf import CHAR_DEFAULTS  # noqa: E402
from embedclf.heads import make_head  # noqa: E402
from embedclf.labels import LabelSpace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="goemotions,reuters,cfpb")
    parser.add_argument("--cache", default=str(ROOT / "cache"), help="embedding cache (encoded once, first run pays)")
    parser.add_argument("--quick", action="store_true", help="accuracy.py's seeded samples, to check the script")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "char_ngrams.json"))
    args = parser.parse_args()
    encoder = Encoder(cache=args.cache, progress=False)
    char = {k: list(v) if isinstance(v, tuple) else str(v) for k, v in CHAR_DEFAULTS.items()}
    results = {"quick": args.quick, "char": char, "rows": []}
    for split in load_splits(args.datasets.split(","), quick=args.quick):
        print(f"== {split.name}: {len(split.train.texts)} train", flush=True)
        space = LabelSpace.from_dataset(split.train)
        Y, Y_valid, Y_test = (space.encode(d)[0] for d in (split.train, split.valid, split.test))
        dense = [encoder.encode(d.texts) for d in (split.train, split.valid, split.test)]
        for kind in ("word", "word+char"):
            blocks = tfidf_blocks(split, kind)
            terms, hybrid = blocks.terms, [join_blocks(d, t) for d, t in zip(dense, blocks.terms)]
            for label, (X, X_valid, X_test) in (("hybrid + svm", hybrid), ("hybrid + logreg", hybrid),
                                                ("tfidf + svm", terms)):
                print(f"   {kind}: {label} ({X.shape[1]} columns, {X.nnz} stored values)", flush=True)
                _, row = run_config(space, label, lambda C, h=label.split()[-1]: make_head(h, C=C),
                                    X, Y, X_valid, Y_valid, X_test, Y_test, blocks.fit_seconds, blocks.predict_seconds)
                row.pop("cooccurrence")
                results["rows"].append({"dataset": split.name, "tfidf": kind, "method": label, **row,
                                        "columns": int(X.shape[1]), "stored_values": int(X.nnz),
                                        "train_rows": len(split.train.texts)})
                print(f"      -> C={row['C']} test {json.dumps(row['test'])} fit {row['fit_seconds']}s", flush=True)
                Path(args.out).write_text(json.dumps(results, indent=1))


def _metrics(row: dict):
    """(metric name, value) per target: micro-F1 (one tuned threshold) and macro-F1 (per-label thresholds) for
    a multi-label target, accuracy for a multi-class one."""
    for target, scores in row["test"]["tuned (micro)"].items():
        if scores.get("accuracy") is not None:
            yield f"{target} accuracy", scores["accuracy"]
        else:
            yield f"{target} micro-F1", scores["micro_f1"]
            yield f"{target} macro-F1", row["test"]["tuned (macro)"][target]["macro_f1"]


def render(result: dict) -> list[str]:
    """The report's lines: each data set, method and metric with word and word+char n-grams side by side."""
    sampled = "On accuracy.py's seeded samples" if result["quick"] else "On the full splits"
    rows = {(r["dataset"], r["method"], r["tfidf"]): r for r in result["rows"]}
    lines = ["", "### Character n-grams in the TF-IDF block (`python benchmarks/char_ngrams.py`)", "",
             f"{sampled}, as in the feature-set table (C from the same grid on validation, thresholds tuned on "
             "validation): word 1-2 grams against `fit --tfidf-ngrams word+char` (character 2-5 grams within "
             "words beside them). Fit seconds (at the C chosen) include the vectoriser; they come from this run, "
             "not a quiet timing. Prediction: vectoriser and head per 1,000 test texts (encoding left out).", "",
             "| data set | method | metric | word | word+char | difference | fit s word / word+char "
             "| predict ms per 1k word / word+char |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for (dataset, method, kind), word in rows.items():
        both = rows.get((dataset, method, "word+char"))
        if kind != "word" or both is None:
            continue
        for (metric, a), (_, b) in zip(_metrics(word), _metrics(both)):
            lines.append(f"| {dataset} | {method} | {metric} | {a:.4f} | {b:.4f} | {100 * (b - a):+.1f} | "
                         f"{word['fit_seconds']:.0f} / {both['fit_seconds']:.0f} | "
                         f"{word['predict_ms_per_1k']:.0f} / {both['predict_ms_per_1k']:.0f} |")
    return lines + [""]


if __name__ == "__main__":
    main()
