"""Does a faster encoder cost accuracy? The logreg head on GoEmotions, per encoder backend/precision.

    python benchmarks/downstream.py [--quick]

Each backend's vectors live in their own cache space, so the train/dev/test sets are encoded once
per backend (the time of that encoding is reported too: near 0 where the cache already held them). The head is fitted on each variant's
own vectors, then the test set is decided three ways: at 0.5, with per-label thresholds tuned on dev
(``--tune-for macro``) and with one tuned threshold (``--tune-for micro``); micro ROC-AUC needs no
threshold. The noise floor is how much torch fp32's tuned micro-F1 moves when the dev set is
resampled (bootstrap): a backend's change smaller than that is not a measurable loss.
Writes ``results/downstream.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import load_splits  # noqa: E402
from embedclf.encode.encoder import Encoder  # noqa: E402
from embedclf.evaluate import evaluate  # noqa: E402
from embedclf.fit import fit_classifier  # noqa: E402
from embedclf.heads import make_head  # noqa: E402
from embedclf.postprocess.thresholds import tune_thresholds  # noqa: E402

# onnx int8 of the default model is refused by its fidelity check (min cosine .97 < .98): openvino int8 is the int8 path
VARIANTS = (("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("openvino", "int8"))
BOOTSTRAP = 20


def scores_of(split, backend: str, precision: str, cache: Path) -> tuple[object, np.ndarray, np.ndarray, float]:
    """The logreg head fitted on this variant's train vectors, its dev and test scores, and the encode time."""
    encoder = Encoder(backend=backend, precision=precision, device="cpu", cache=cache, progress=False)
    start = time.perf_counter()
    for part in (split.train, split.valid, split.test):
        encoder.encode(part.texts)
    encode_seconds = time.perf_counter() - start
    classifier = fit_classifier(split.train, make_head("logreg"), encoder, data_options=split.options,
                                features="embedding")  # the backends' vectors are what is compared
    return (classifier, classifier.scores(encoder.encode(split.valid.texts)),
            classifier.scores(encoder.encode(split.test.texts)), encode_seconds)


def metrics_on_test(classifier, Y_test, S_test, thresholds) -> dict:
    classifier.thresholds = thresholds
    (metrics,) = evaluate(classifier.space, Y_test, classifier.decide(S_test)[0], S_test)["targets"].values()
    return metrics


def noise_floor(classifier, Y_valid, S_valid, Y_test, S_test, seed: int = 0) -> float:
    """Standard deviation of test micro-F1 with --tune-for macro thresholds tuned on resampled dev sets."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(BOOTSTRAP):
        rows = rng.integers(0, len(Y_valid), len(Y_valid))
        tuned = tune_thresholds(Y_valid[rows], S_valid[rows], classifier.space.layout)
        values.append(metrics_on_test(classifier, Y_test, S_test, tuned)["micro_f1"])
    return float(np.std(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--cache", type=Path, default=ROOT / "cache",
                        help="the vector cache; a new one re-encodes every variant with the code as it is now")
    args = parser.parse_args()
    (split,) = load_splits(["goemotions"], quick=args.quick)
    rows, noise = [], None
    for backend, precision in VARIANTS:
        classifier, S_valid, S_test, encode_seconds = scores_of(split, backend, precision, args.cache)
        space = classifier.space
        Y_valid, Y_test = space.encode(split.valid)[0], space.encode(split.test)[0]
        row = {"backend": backend, "precision": precision, "encode_seconds": round(encode_seconds, 1),
               "texts": sum(len(set(d.texts)) for d in (split.train, split.valid, split.test))}
        for name, thresholds in (("at_0.5", np.full(space.n_columns, 0.5)),
                                 ("tuned_macro", tune_thresholds(Y_valid, S_valid, space.layout, objective="macro")),
                                 ("tuned_micro", tune_thresholds(Y_valid, S_valid, space.layout, objective="micro"))):
            metrics = metrics_on_test(classifier, Y_test, S_test, thresholds)
            row[name] = {"micro_f1": metrics["micro_f1"], "macro_f1": metrics["macro_f1"]}
            row["micro_roc_auc"] = metrics["micro_roc_auc"]
        rows.append(row)
        if noise is None:
            noise = noise_floor(classifier, Y_valid, S_valid, Y_test, S_test)
        print(json.dumps(row), flush=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / ("downstream-quick.json" if args.quick else "downstream.json")).write_text(json.dumps(
        {"dataset": split.name, "train_rows": len(split.train.texts), "head": "logreg",
         "noise_floor_micro_f1_sd": noise, "bootstrap_resamples": BOOTSTRAP, "rows": rows}, indent=1))


def render(results: dict, backends: dict | None) -> list[str]:
    lines = ["## Encoder backends: speed, fidelity, downstream accuracy", ""]
    if backends:
        peak = backends["matmul_fp32"]["gflops"]
        lines += [f"{backends['texts']} GoEmotions texts, batch {backends['batch_size']}, max length "
                  f"{backends['max_length']}, each variant in its own process (best of {len(backends['variants']['st fp32']['runs'])} "
                  "rounds); cosine against the torch fp32 vectors of the same texts. Share of peak: model FLOPs per "
                  f"second (the texts' own token counts) over the measured fp32 matmul peak of {peak:.0f} GFLOP/s "
                  f"({backends['matmul_fp32']['library']}; the better of torch and onnxruntime); for bf16 and int8 "
                  "an fp32-equivalent share" + (f" (torch's bf16 matmul peak: "
                  f"{backends['matmul_peaks']['torch bf16']['gflops']:.0f} GFLOP/s)" if "matmul_peaks" in backends
                  else "") + ".", "",
                  "| variant | texts/s | × plain ST | GFLOP/s | share of fp32 peak | peak RSS MB | cosine mean | cosine min |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, variant in backends["variants"].items():
            best, cosine = variant["best"], variant.get("cosine")
            label = "plain SentenceTransformer.encode fp32" if name == "st fp32" else f"embedclf {name}"
            fidelity = f"{cosine['mean']:.5f} | {cosine['min']:.5f}" if cosine else "(baseline) | "
            lines.append(f"| {label} | {best['texts_per_second']:.0f} | {best['speedup_vs_plain_st']:.2f} | "
                         f"{best['gflops_useful']:.0f} | {best['share_of_fp32_matmul_peak']:.0%} | "
                         f"{best['peak_rss_mb']:.0f} | {fidelity} |")
        lines.append("")
    if results:
        base = results["rows"][0]
        lines += [f"Downstream: the {results['head']} head fitted on each variant's own vectors of {results['dataset']} "
                  f"({results['train_rows']:,} train texts), test set; thresholds at 0.5, one tuned on dev for micro-F1 "
                  "(`--tune-for micro`) or one per label (`--tune-for macro`); in brackets the change against "
                  "torch fp32, in points. Per-label thresholds maximise each label's F1, so their micro-F1 is a "
                  "by-product that swings with small changes: torch fp32's own moves by "
                  f"{100 * results['noise_floor_micro_f1_sd']:.2f} points (sd) when the dev set is resampled "
                  f"({results['bootstrap_resamples']} bootstraps).", "",
                  "| variant | micro-F1 at 0.5 | micro-F1, tuned for micro | macro-F1, tuned for macro | "
                  "micro-F1, tuned for macro | micro ROC-AUC |", "|---|---|---|---|---|---|"]
        for row in results["rows"]:
            def cell(key, metric="micro_f1", digits=4):
                value, reference = (row[key], base[key]) if key == "micro_roc_auc" else (row[key][metric], base[key][metric])
                return f"{value:.{digits}f} ({100 * (value - reference):+.2f})"
            lines.append(f"| {row['backend']} {row['precision']} | {cell('at_0.5')} | {cell('tuned_micro')} | "
                         f"{cell('tuned_macro', 'macro_f1')} | {cell('tuned_macro')} | {cell('micro_roc_auc')} |")
        lines.append("")
    return lines


if __name__ == "__main__":
    main()
