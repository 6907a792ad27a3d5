"""What hybrid features cost over the embedding alone: head fit time and prediction latency on full GoEmotions.

    python benchmarks/fit_time.py [--cache cache] [--heads svm,logreg] [--rounds 1]

The embeddings come from the cache (encoding is the same for both feature sets and is left out);
``hybrid``'s fit time includes fitting its TF-IDF vectoriser on the 43,410 training texts, its
prediction time the vectoriser's transform. Each head keeps its default parameters (what ``embedclf
fit --head H --features F`` fits); rounds interleave the feature sets, the best round counts. Run it on
a quiet machine: it is a timing. Writes ``results/fit_time.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import load_splits  # noqa: E402
from embedclf.encode.encoder import Encoder  # noqa: E402
from embedclf.features.hybrid import join_blocks  # noqa: E402
from embedclf.features.tfidf import tfidf_vectorizer  # noqa: E402
from embedclf.heads import make_head  # noqa: E402
from embedclf.labels import LabelSpace  # noqa: E402


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=str(ROOT / "cache"))
    parser.add_argument("--heads", default="svm,logreg")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fit_time.json"))
    args = parser.parse_args()
    split = load_splits(["goemotions"], quick=False)[0]
    encoder = Encoder(cache=args.cache, progress=False)
    space = LabelSpace.from_dataset(split.train)
    Y = space.encode(split.train)[0]
    train, test = encoder.encode(split.train.texts), encoder.encode(split.test.texts)
    load = os.getloadavg()
    best: dict = {}
    for _ in range(args.rounds):
        for head in args.heads.split(","):
            for features in ("embedding", "hybrid"):
                extra_fit = extra_predict = 0.0
                X, X_test = train, test
                if features == "hybrid":
                    vectorizer, extra_fit = timed(lambda: tfidf_vectorizer().fit(split.train.texts))
                    X = join_blocks(train, vectorizer.transform(split.train.texts))
                    terms, extra_predict = timed(lambda: vectorizer.transform(split.test.texts))
                    X_test = join_blocks(test, terms)
                model, fit_seconds = timed(lambda: make_head(head).fit(X, Y, layout=space.layout))
                _, predict_seconds = timed(lambda: model.predict_proba(X_test))
                key = f"{head} | {features}"
                row = {"head": head, "features": features, "fit_seconds": round(fit_seconds + extra_fit, 2),
                       "tfidf_fit_seconds": round(extra_fit, 2),
                       "predict_ms_per_1k": round(1e6 * (predict_seconds + extra_predict) / len(split.test.texts), 1),
                       "columns": int(X.shape[1])}
                print(json.dumps(row), flush=True)
                if key not in best or row["fit_seconds"] < best[key]["fit_seconds"]:
                    best[key] = row
    rows = list(best.values())
    for row in rows:
        base = best[f"{row['head']} | embedding"]
        row["fit_ratio"] = round(row["fit_seconds"] / base["fit_seconds"], 2)
        row["predict_ratio"] = round(row["predict_ms_per_1k"] / base["predict_ms_per_1k"], 2)
    result = {"dataset": split.name, "train_rows": len(split.train.texts), "test_rows": len(split.test.texts),
              "precision": encoder.settings.precision, "rounds": args.rounds, "cpus": os.cpu_count(),
              "load_average_before": [round(v, 2) for v in load],
              "load_average_after": [round(v, 2) for v in os.getloadavg()], "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


def render(result: dict) -> list[str]:
    """The report's lines: fit and predict cost of hybrid against the embedding, per head."""
    lines = ["", "### What hybrid costs: fit time and prediction latency", "",
             f"`python benchmarks/fit_time.py`: {result['dataset']}, {result['train_rows']:,} training texts, "
             f"cached embeddings ({result['precision']}), each head with its default parameters; hybrid's fit "
             "includes fitting the TF-IDF vectoriser, its predict the vectoriser's transform; best of "
             f"{result['rounds']} round(s) on {result['cpus']} CPUs, load average "
             f"{result['load_average_before'][0]} before and {result['load_average_after'][0]} after. "
             "Target: hybrid fit time at most 1.2× the embedding's.", "",
             "| head | features | columns | fit | × embedding | predict per 1k texts | × embedding |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['head']} | {row['features']} | {row['columns']:,} | {row['fit_seconds']:.1f} s | "
                     f"{row['fit_ratio']:.2f} | {row['predict_ms_per_1k']:.0f} ms | {row['predict_ratio']:.2f} |")
    return lines + [""]


if __name__ == "__main__":
    main()
