"""Does a faster encoder cost accuracy? The logreg head on GoEmotions, per encoder backend/precision.

    python benchmarks/downstream.py [--quick]

Each backend's vectors live in their own cache space, so the train/dev/test sets are encoded once
per backend (and the timing of that encoding is reported too). Writes ``results/downstream.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import load_splits  # noqa: E402
from embedclf.encode.encoder import Encoder  # noqa: E402
from embedclf.fit import fit_classifier  # noqa: E402
from embedclf.heads import make_head  # noqa: E402
from embedclf.inference import evaluate_dataset  # noqa: E402

VARIANTS = (("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    (split,) = load_splits(["goemotions"], quick=args.quick)
    rows = []
    for backend, precision in VARIANTS:
        encoder = Encoder(backend=backend, precision=precision, device="cpu", cache=ROOT / "cache", progress=False)
        start = time.perf_counter()
        encoded = sum(len(set(d.texts)) for d in (split.train, split.valid, split.test))
        for part in (split.train, split.valid, split.test):
            encoder.encode(part.texts)
        encode_seconds = time.perf_counter() - start
        classifier = fit_classifier(split.train, make_head("logreg"), encoder, data_options=split.options,
                                    valid=split.valid, tune_thresholds=True)
        metrics = evaluate_dataset(classifier, split.test)["metrics"]
        rows.append({"backend": backend, "precision": precision, "micro_f1": metrics["micro_f1"],
                     "macro_f1": metrics["macro_f1"], "encode_seconds_if_uncached": round(encode_seconds, 1),
                     "texts": encoded})
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / ("downstream-quick.json" if args.quick else "downstream.json")).write_text(
        json.dumps({"dataset": split.name, "train_rows": len(split.train.texts), "rows": rows}, indent=1))


def render(results: dict, backends: dict | None) -> list[str]:
    lines = ["## Encoder backends: speed, fidelity, downstream accuracy", ""]
    if backends:
        lines += [f"{backends['texts']} GoEmotions texts, batch {backends['batch_size']}, each variant in its own "
                  "process (best of the runs); cosine against the torch fp32 vectors of the same texts.", "",
                  "| variant | texts/s | × torch fp32 | peak RSS MB | cosine mean | cosine min |", "|---|---|---|---|---|---|"]
        base = max(r["texts_per_second"] for r in backends["variants"]["torch fp32"]["runs"])
        for name, variant in backends["variants"].items():
            best = max(r["texts_per_second"] for r in variant["runs"])
            rss = min(r["peak_rss_mb"] for r in variant["runs"])
            lines.append(f"| {name} | {best:.0f} | {best / base:.2f} | {rss:.0f} | {variant['cosine']['mean']:.5f} | "
                         f"{variant['cosine']['min']:.5f} |")
        lines.append("")
    if results:
        lines += [f"Downstream: logreg head with tuned thresholds on {results['dataset']} "
                  f"({results['train_rows']:,} train texts), test set.", "",
                  "| backend | precision | micro-F1 | macro-F1 | Δ micro-F1 vs torch fp32 (points) |", "|---|---|---|---|---|"]
        base = results["rows"][0]["micro_f1"]
        for row in results["rows"]:
            lines.append(f"| {row['backend']} | {row['precision']} | {row['micro_f1']:.4f} | {row['macro_f1']:.4f} | "
                         f"{100 * (row['micro_f1'] - base):+.2f} |")
        lines.append("")
    return lines


if __name__ == "__main__":
    main()
