"""Regenerate every benchmark and the report: ``python benchmarks/run.py [--quick]``.

Full mode takes a couple of hours on a 2-core CPU (encoding 60k texts once, every head on every
data set, a 20-minute fine-tune); ``--quick`` runs seeded samples and finishes in under 10 minutes
from a fresh clone (nothing cached), measured on this project's 2-core CPU.
Each step is its own script, so one can be re-run alone; the report is rendered from their JSON.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
REUTERS = ROOT.parent / "shared" / "datasets" / "reuters21578"


def step(title: str, command: list[str]) -> None:
    print(f"\n### {title}: {' '.join(command)}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1",
                                                       "TOKENIZERS_PARALLELISM": "false"})
    print(f"### {title} took {time.perf_counter() - start:.0f}s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="samples only; about 10 minutes")
    parser.add_argument("--skip", default="", help="comma-separated steps to skip: rules, accuracy, features, "
                        "defaults, char_ngrams, finetune, encode, backends, ray, serve, sweep")
    parser.add_argument("--finetune-minutes", default="20", help="budget of the largest fine-tune run")
    args = parser.parse_args()
    python, quick = sys.executable, ["--quick"] if args.quick else []
    skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    suffix = "-quick" if args.quick else ""  # a quick run never overwrites the committed full results
    (BENCH / f"figures{suffix}").mkdir(exist_ok=True)
    if "rules" not in skip:
        step("co-occurrence graph", [python, "-m", "embedclf", "cooccur", str(REUTERS / "train.jsonl"), "--text-col",
                                     "text", "--label-col", "labels", "--threshold", "0.9", "--out",
                                     str(BENCH / "results" / f"reuters-rules{suffix}.json"), "--graph",
                                     str(BENCH / f"figures{suffix}" / "reuters-rules.png")])
    if "accuracy" not in skip:
        # quick: one chain, not the ensemble; Reuters topics only (CFPB covers multi-output)
        heads = ["--heads", "logreg,svm,knn,mlp (BCE),mlp (focal),chain", "--datasets", "goemotions,reuters,cfpb"] \
            if args.quick else []
        step("accuracy of every head", [python, str(BENCH / "accuracy.py"), *quick, *heads])
    if "features" not in skip:
        step("feature sets vs a tuned TF-IDF baseline", [python, str(BENCH / "features.py"), *quick,
                                                          "--name", f"features{suffix}"])
    if "defaults" not in skip:
        step("each head at its defaults vs the tuned baseline", [python, str(BENCH / "defaults.py"), *quick])
    if "char_ngrams" not in skip:
        step("character n-grams in the TF-IDF block", [python, str(BENCH / "char_ngrams.py"), *quick, "--out",
                                                        str(BENCH / "results" / f"char_ngrams{suffix}.json")])
    if "finetune" not in skip:
        step("fine-tune vs heads", [python, str(BENCH / "finetune.py"), *quick, "--budget-minutes",
                                    args.finetune_minutes])
    if "encode" not in skip:
        step("encoder throughput and scaling", [python, str(BENCH / "encode.py"), *quick])
    if "backends" not in skip:
        step("encoder backends", [python, str(BENCH / "backends.py"), *quick])
        step("backends downstream", [python, str(BENCH / "downstream.py"), *quick])
    if "ray" not in skip:
        step("local vs Ray engine", [python, str(BENCH / "ray_encode.py"), *quick])
    if "serve" not in skip:
        step("embedclf serve under load", [python, str(BENCH / "serve.py"), *quick])
    if "sweep" not in skip:  # after accuracy.py, whose encoding of GoEmotions warms the cache
        rows = ["--train-rows", "4000", "--grids", "default", "--out", str(BENCH / "results" / "sweep-quick.json")] \
            if args.quick else []
        step("sweep of the default and MLP grids", [python, str(BENCH / "sweep.py"), *rows])
    step("report", [python, str(BENCH / "report.py")] + (["--quick"] if args.quick else []))


if __name__ == "__main__":
    main()
