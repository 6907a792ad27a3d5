"""Encoder backends side by side: texts/s, peak memory and cosine to torch fp32, on GoEmotions texts.

    python benchmarks/backends.py                # 500 texts, every variant twice, alternating
    python benchmarks/backends.py --quick        # 200 texts, one round: results/backends-quick.json

Variants (all batch size 32, max length 256, the default model, CPU): plain
``SentenceTransformer.encode`` (fp32, the baseline the speed-ups are quoted against), and embedclf's
Encoder with torch fp32, torch bf16, onnx fp32 and onnx int8. The ONNX export is made first; then each
run is its own process, warmed up (model loaded) on 64 other texts, so texts/s is encoding only; the
Encoder runs uncached. The cosine is per text, against the torch fp32 vectors of the same round.

Hardware share: model FLOPs per second (the texts' own token counts, no padding; the formula of
benchmarks/encode.py) over the machine's fp32 matmul peak, measured here first as the better of
``torch.matmul`` (MKL) and onnxruntime's MatMul (MLAS): on AMD CPUs MKL takes a slower path, so
torch's GEMM alone understates what the hardware does. int8 and bf16 runs are counted in the same
FLOPs, so their share is an fp32-equivalent: above 100 % when a narrower type does the work faster
than fp32 arithmetic could (the bf16 ``torch.matmul`` peak is recorded beside it).

Writes ``<out-dir>/backends.json`` and prints a Markdown table; on a shared machine the load average is
part of the result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GOEMOTIONS = ROOT.parent / "shared" / "datasets" / "goemotions" / "train.tsv"
VARIANTS = (("st", "fp32"), ("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8"))
BATCH_SIZE, MAX_LENGTH, WARMUP = 32, 256, 64


def texts(n: int) -> tuple[list[str], list[str]]:
    from embedclf.data import load_dataset

    all_texts = load_dataset(GOEMOTIONS, ["text"], columns=["text", "labels", "id"]).texts
    return all_texts[:n], all_texts[n:n + WARMUP]


def run_variant(backend: str, precision: str, n: int, vectors: str) -> dict:
    """In the child: one uncached Encoder (the ONNX export goes to $EMBEDCLF_CACHE), warmed up, then timed."""
    import numpy as np

    from embedclf.encode.encoder import Encoder

    measured, warmup = texts(n)
    if backend == "st":  # the plain baseline: sentence-transformers as a user would call it
        from sentence_transformers import SentenceTransformer

        from benchmarks.encode import model_path

        model = SentenceTransformer(str(model_path()), device="cpu")
        model.max_seq_length = MAX_LENGTH
        encode = lambda batch: model.encode(batch, batch_size=BATCH_SIZE, normalize_embeddings=True)  # noqa: E731
    else:
        encode = Encoder(backend=backend, precision=precision, batch_size=BATCH_SIZE, max_length=MAX_LENGTH,
                         device="cpu", cache=False, progress=False).encode
    encode(warmup)
    start = time.perf_counter()
    X = encode(measured)
    seconds = time.perf_counter() - start
    np.save(vectors, X)
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    return {"seconds": seconds, "texts_per_second": n / seconds, "peak_rss_mb": peak}


def useful_flops(n: int) -> float:
    """Model FLOPs of encoding the measured texts at their own (capped) token counts."""
    import numpy as np

    from benchmarks.encode import model_dims, token_counts, workload

    lengths = np.minimum(token_counts(texts(n)[0]), MAX_LENGTH)
    return workload([], lengths, model_dims())["flops_useful"]


def measure(n: int, rounds: int) -> dict:
    import numpy as np

    from embedclf.encode.fidelity import cosines

    results = {f"{b} {p}": {"runs": []} for b, p in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="embedclf-backends-") as tmp:
        env = os.environ | {"EMBEDCLF_CACHE": f"{tmp}/cache"}
        # export (and quantise) first, in a process of its own: the measured runs then only load it
        subprocess.run([sys.executable, __file__, "--prepare"], env=env, check=True)
        for round_number in range(rounds):
            for backend, precision in VARIANTS:
                name, out = f"{backend} {precision}", f"{tmp}/{backend}-{precision}.npy"
                command = [sys.executable, __file__, "--variant", backend, precision, "--texts", str(n),
                           "--vectors", out]
                done = subprocess.run(command, capture_output=True, text=True, env=env)
                if done.returncode != 0:
                    raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
                run = json.loads(done.stdout.strip().splitlines()[-1]) | {"load_average": os.getloadavg()[0]}
                results[name]["runs"].append(run)
                print(f"round {round_number + 1}: {name}: {run['texts_per_second']:.1f} texts/s "
                      f"(load {run['load_average']:.1f})", file=sys.stderr)
            reference = np.load(f"{tmp}/torch-fp32.npy")
            for backend, precision in VARIANTS:
                if backend == "st":
                    continue
                similarity = cosines(reference, np.load(f"{tmp}/{backend}-{precision}.npy"))
                results[f"{backend} {precision}"]["cosine"] = {"mean": float(similarity.mean()),
                                                               "min": float(similarity.min())}
    return results


def summarise(results: dict, flops: float, peak_gflops: float) -> None:
    """Each variant's best rate, its speed-up over plain ST, and its FLOP/s as a share of the matmul peak."""
    base = max(r["texts_per_second"] for r in results["st fp32"]["runs"])
    for result in results.values():
        best = min(r["seconds"] for r in result["runs"])
        result["best"] = {"texts_per_second": max(r["texts_per_second"] for r in result["runs"]),
                          "speedup_vs_plain_st": max(r["texts_per_second"] for r in result["runs"]) / base,
                          "gflops_useful": flops / best / 1e9, "share_of_fp32_matmul_peak": flops / best / 1e9 / peak_gflops,
                          "peak_rss_mb": max(r["peak_rss_mb"] for r in result["runs"])}


def markdown(results: dict, n: int) -> str:
    lines = [f"{n} GoEmotions train texts, batch {BATCH_SIZE}, max length {MAX_LENGTH}, CPU; texts/s of each round",
             "", "| variant | texts/s | × plain ST | share of fp32 peak | peak RSS MB | cosine to torch fp32 (mean / min) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, result in results.items():
        rates = " / ".join(f"{r['texts_per_second']:.0f}" for r in result["runs"])
        best, cosine = result["best"], result.get("cosine")
        fidelity = f"{cosine['mean']:.4f} / {cosine['min']:.4f}" if cosine else "-"
        lines.append(f"| {name} | {rates} | {best['speedup_vs_plain_st']:.2f} | "
                     f"{best['share_of_fp32_matmul_peak']:.0%} | {best['peak_rss_mb']:.0f} | {fidelity} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=None, help="texts measured [500; 200 with --quick]")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per variant [2; 1 with --quick]")
    parser.add_argument("--quick", action="store_true", help="a fast look, written to backends-quick.json")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--variant", nargs=2, metavar=("BACKEND", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--vectors", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.texts = args.texts or (200 if args.quick else 500)
    args.rounds = args.rounds or (1 if args.quick else 2)
    if args.prepare:
        from embedclf.encode.encoder import Encoder

        Encoder(backend="onnx", precision="int8", cache=False).embedder  # exports fp32, then quantises it
        return 0
    if args.variant:
        print(json.dumps(run_variant(*args.variant, args.texts, args.vectors)))
        return 0
    from embedclf.io import atomic_write_text

    from benchmarks.encode import busy_warning, cpu_busy, cpu_model, matmul_peak_gflops

    busy = cpu_busy()
    if busy_warning(busy):
        print(f"warning: {busy_warning(busy)}", file=sys.stderr)
    peaks = {f"{library} {dtype}": matmul_peak_gflops(library=library, dtype=dtype)  # before any child runs
             for library, dtype in (("torch", "fp32"), ("onnxruntime", "fp32"), ("torch", "bf16"))}
    peak = max((p for p in peaks.values() if p["dtype"] == "fp32"), key=lambda p: p["gflops"])
    flops = useful_flops(args.texts)
    results = measure(args.texts, args.rounds)
    summarise(results, flops, peak["gflops"])
    report = {"benchmark": "backends", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "texts": args.texts,
              "batch_size": BATCH_SIZE, "max_length": MAX_LENGTH, "cpus": len(os.sched_getaffinity(0)),
              "cpu_model": cpu_model(), "busy_cores_start": busy, "matmul_fp32": peak, "matmul_peaks": peaks, "model_flops_useful": flops, "variants": results}
    atomic_write_text(args.out_dir / ("backends-quick.json" if args.quick else "backends.json"), json.dumps(report, indent=1))
    print(markdown(results, args.texts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
