"""What full fine-tuning buys over cheap heads, on the same training slice, on this machine.

    python benchmarks/finetune.py [--quick] [--budget-minutes 20]

1. GoEmotions: fine-tune all-MiniLM-L6-v2 for one epoch on a 2,000-text slice of train; then on the
   largest slice that fits ``--budget-minutes`` at the speed just measured. Each is evaluated on the
   official test set next to logreg and MLP heads fitted on the same slice's cached embeddings.
2. CFPB complaints (multi-output Product + Issue): fine-tune vs the same heads on the same split.

Thresholds are tuned on 1,000 dev texts for every method, both ways (``--tune-for macro``: per label;
``micro``: one per target). Results go to ``results/finetune.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import load_splits  # noqa: E402
from embedclf.data import Dataset  # noqa: E402
from embedclf.encode.encoder import Encoder  # noqa: E402
from embedclf.finetune import FineTuneSettings, finetune  # noqa: E402
from embedclf.fit import fit_classifier  # noqa: E402
from embedclf.heads import make_head  # noqa: E402
from embedclf.inference import evaluate_dataset  # noqa: E402
from embedclf.postprocess.thresholds import tune_thresholds  # noqa: E402


def _headline(report: dict) -> dict:
    return {name: {k: m.get(k) for k in ("micro_f1", "macro_f1", "accuracy", "micro_roc_auc") if k in m}
            for name, m in report["targets"].items()}


def evaluate_tuned(classifier, valid: Dataset, test: Dataset) -> dict:
    """Test metrics with thresholds tuned on ``valid`` for macro-F1 (per label) and for micro-F1 (shared)."""
    space = classifier.space
    Y_valid, S_valid = space.encode(valid)[0], classifier.scores(classifier.embed(valid.texts))
    tested = {}
    for objective in ("macro", "micro"):
        classifier.thresholds = tune_thresholds(Y_valid, S_valid, space.layout, objective=objective)
        tested[objective] = _headline(evaluate_dataset(classifier, test))
    return tested


def _slice(dataset: Dataset, n: int) -> Dataset:
    rows = np.sort(np.random.RandomState(0).permutation(len(dataset.texts))[:n])
    return dataset.subset(rows)


def compare(split, train: Dataset, epochs: int, work: Path, say) -> dict:
    """Fine-tune and two heads on ``train``; all evaluated on ``split.test`` with tuned thresholds."""
    valid = _slice(split.valid, 1000)
    result = {"dataset": split.name, "train_rows": len(train.texts), "test_rows": len(split.test.texts),
              "epochs": epochs, "methods": []}
    start = time.perf_counter()
    classifier = finetune(train, FineTuneSettings(epochs=epochs, batch_size=16, max_length=128), work / "ft",
                          data_options=split.options, valid=valid, cache=work / "cache", say=say)
    seconds = time.perf_counter() - start
    tested = evaluate_tuned(classifier, valid, split.test)
    result["methods"].append({"method": f"fine-tune ({epochs} epoch{'s' * (epochs > 1)})", "seconds": round(seconds, 1),
                              "seconds_per_text": seconds / len(train.texts) / epochs, "test": tested["macro"],
                              "test_tuned_micro": tested["micro"]})
    encoder = Encoder(cache=ROOT / "cache", progress=False)
    for name, params in (("logreg", {}), ("mlp", {})):
        start = time.perf_counter()
        head = fit_classifier(train, make_head(name, **params), encoder, data_options=split.options, valid=valid,
                              features="embedding")
        seconds = time.perf_counter() - start
        tested = evaluate_tuned(head, valid, split.test)
        result["methods"].append({"method": f"{name} head on cached embeddings", "seconds": round(seconds, 1),
                                  "test": tested["macro"], "test_tuned_micro": tested["micro"]})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 texts, no budget-sized run")
    parser.add_argument("--budget-minutes", type=float, default=20.0)
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    say = lambda message: print(f"   {message}", flush=True)  # noqa: E731
    go, cfpb = load_splits(["goemotions", "cfpb"], quick=False)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        first = compare(go, _slice(go.train, 500 if args.quick else 2000), 1, Path(tmp) / "a", say)
        runs.append(first)
        print(json.dumps(first["methods"], indent=1), flush=True)
        if not args.quick:
            per_text = first["methods"][0]["seconds_per_text"]
            n = int(min(len(go.train.texts), args.budget_minutes * 60 / per_text) // 1000 * 1000)
            if n > 2000:
                runs.append(compare(go, _slice(go.train, n), 1, Path(tmp) / "b", say))
                runs[-1]["budget_minutes"] = args.budget_minutes
            runs.append(compare(cfpb, cfpb.train, 2, Path(tmp) / "c", say))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / ("finetune-quick.json" if args.quick else "finetune.json")).write_text(json.dumps({"runs": runs}, indent=1))


def render(results: dict) -> list[str]:
    lines = ["## Fine-tune vs heads", "",
             "Full fine-tune of all-MiniLM-L6-v2 (AdamW, lr 2e-5 body / 1e-3 classifier, batch 16, max 128 tokens, "
             "linear warm-up 10 %) against heads on the same slice's cached embeddings; test set, thresholds tuned "
             "on 1,000 dev texts per label (for macro-F1) or shared (for micro-F1; last column). Seconds: wall time of the fine-tune on this CPU; for the heads, fit on cached "
             "embeddings (encoding paid once beforehand).", ""]
    for run in results["runs"]:
        budget = f", the largest slice for a {run['budget_minutes']:.0f}-minute budget" if "budget_minutes" in run else ""
        lines += [f"### {run['dataset']}: {run['train_rows']:,} training texts{budget}", ""]
        targets = list(run["methods"][0]["test"])
        header = ["method", "seconds"] + [f"{t} micro-F1" if len(targets) > 1 else "micro-F1" for t in targets] + \
            [f"{t} macro-F1" if len(targets) > 1 else "macro-F1" for t in targets] + \
            [f"{t} micro-F1, tuned for micro" if len(targets) > 1 else "micro-F1, tuned for micro" for t in targets]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for method in run["methods"]:
            cells = [method["method"], f"{method['seconds']:.0f}"]
            cells += [f"{method['test'][t].get('micro_f1', 0):.4f}" for t in targets]
            cells += [f"{method['test'][t].get('macro_f1', 0):.4f}" for t in targets]
            micro = method.get("test_tuned_micro")
            cells += [f"{micro[t].get('micro_f1', 0):.4f}" if micro else "" for t in targets]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


if __name__ == "__main__":
    main()
