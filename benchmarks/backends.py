"""Encoder backends side by side on short and long texts: texts/s as a ratio to plain SentenceTransformer,
FLOP/s as a share of the peak of each variant's own arithmetic, peak memory, cosine to torch fp32, and
cold-start times.

    python benchmarks/backends.py --short 2000 --long 500   # the issue's sizes, 3 interleaved rounds
    python benchmarks/backends.py --quick --out-dir /tmp/b    # 200 + 40 texts, one round, a fast look
    python benchmarks/backends.py --fastembed-python /tmp/venv/bin/python   # adds fastembed (a throwaway venv)
    python benchmarks/backends.py --st-python /tmp/st-peer-venv/bin/python  # adds ST's onnx/openvino (another)

Short texts are GoEmotions comments, long ones CFPB complaint narratives (truncated at 256 tokens). Every
variant runs in a process of its own, with 2 threads, batch 32, warmed up on other texts, both text sets
per process; rounds are interleaved (variant after variant, round after round), so load from other users of
a shared machine spreads over all variants, and each figure is the median of the rounds. Ratios are to
plain ``SentenceTransformer.encode`` fp32 of the same round. Variants: embedclf's default (no flags:
``--precision auto``), torch fp32 and bf16, onnx int8, openvino fp32, bf16 and int8; peers
(``backends_variants``): plain ST (the baseline), OpenVINO static int8 with nncf's default settings,
sentence-transformers' own ``backend="onnx"``/``"openvino"`` with their defaults when a Python with optimum
is given (``backends_st_peer``; its versions go into the result), and fastembed on embedclf's int8 ONNX
export when a Python with fastembed is given. Exports are made first (into a temporary export store;
ST's into a temporary copy of the model folder), so the rounds measure encoding only; cold starts
(``backends_cold``) are timed with the CLI.

Hardware share: model FLOPs (the texts' own token counts, no padding) per second over the matmul peak of
the variant's arithmetic, measured here first: fp32 (the better of torch/MKL and onnxruntime/MLAS), bf16
(torch) and int8 (onnxruntime ``MatMulInteger``, u8 x s8: VNNI where the CPU has it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.backends_cold import cold_starts, peaks, useful_flops  # noqa: E402
from benchmarks.backends_st_peer import BACKENDS as ST_PEERS  # noqa: E402
from benchmarks.backends_variants import (BATCH_SIZE, MAX_LENGTH, THREADS, FASTEMBED_CHILD,  # noqa: E402
                                          fastembed_folder, prepare, run_variant, texts)

VARIANTS = ("st fp32", "embedclf default", "torch fp32", "torch bf16", "onnx int8", "openvino fp32",
            "openvino bf16", "openvino int8", "ov-nncf-default int8", "st onnx", "st openvino", "fastembed int8")
ARITHMETIC = {"st fp32": "fp32", "torch fp32": "fp32", "openvino fp32": "fp32", "onnx int8": "int8",
              "openvino int8": "int8", "fastembed int8": "int8", "ov-nncf-default int8": "int8",
              "openvino bf16": "bf16", "torch bf16": "bf16"}


def last_json(child: subprocess.CompletedProcess) -> dict:
    """A child's result (its last stdout line), or why it failed (the last line of its stderr)."""
    lines, errors = child.stdout.strip().splitlines(), child.stderr.strip().splitlines()
    if child.returncode or not lines:  # the last line of a traceback says what went wrong
        return {"skipped": (errors[-1].strip()[-300:] if errors else f"exit status {child.returncode}")}
    return json.loads(lines[-1])


def st_peer_prepare(st_python: str | None, tmp: str, env: dict) -> dict:
    """ST's onnx and openvino exports, made once in the peer's Python into a copy of the model folder."""
    if not st_python:
        return {"skipped": "needs --st-python"}
    from benchmarks.encode import model_path

    child = subprocess.run([st_python, str(ROOT / "benchmarks" / "backends_st_peer.py"), "prepare",
                            str(model_path()), f"{tmp}/st-peer-model"], capture_output=True, text=True, env=env)
    return last_json(child)


def measure(sizes: dict, rounds: int, fastembed_python: str | None, st_python: str | None) -> tuple[dict, dict]:
    import numpy as np

    from embedclf.encode.similarity import cosines

    runs = {v: [] for v in VARIANTS}
    fidelity = {v: {k: [] for k in sizes} for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="embedclf-backends-") as tmp:
        env = os.environ | {"EMBEDCLF_EXPORTS": f"{tmp}/exports", "EMBEDCLF_CACHE": f"{tmp}/cache"}
        done = subprocess.run([sys.executable, __file__, "--prepare"], env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stderr[-3000:])
        prepared = json.loads(done.stdout.strip().splitlines()[-1])
        folder = fastembed_folder(f"{tmp}/exports", tmp) if fastembed_python else None
        prepared["st_peer"] = st_peer = st_peer_prepare(st_python, tmp, env)
        absent = {"fastembed int8": None if folder else "needs --fastembed-python"} | {
            v: st_peer.get("skipped") for v in ST_PEERS}
        for kind, n in sizes.items():
            measured, warmup = texts(kind, n)
            Path(f"{tmp}/texts-{kind}.json").write_text(json.dumps([measured, warmup]))
        for round_number in range(rounds):
            for variant in VARIANTS:
                out = f"{tmp}/{variant.replace(' ', '-')}"
                if absent.get(variant):
                    continue
                if variant == "fastembed int8":
                    command = [fastembed_python, "-c", FASTEMBED_CHILD, folder, f"{tmp}/texts", out, json.dumps(sizes)]
                elif variant in ST_PEERS:
                    command = [st_python, str(ROOT / "benchmarks" / "backends_st_peer.py"), "run",
                               f"{tmp}/st-peer-model", ST_PEERS[variant], f"{tmp}/texts", out, json.dumps(sizes)]
                else:
                    command = [sys.executable, __file__, "--variant", variant, "--sizes", json.dumps(sizes),
                               "--vectors", out]
                run = last_json(subprocess.run(command, capture_output=True, text=True, env=env))
                run["load_average"] = os.getloadavg()[0]
                runs[variant].append(run)
                rates = ", ".join(f"{k} {run[k]['texts_per_second']:.0f}/s" for k in sizes if k in run)
                print(f"round {round_number + 1}: {variant}: {rates or run.get('skipped')}", file=sys.stderr)
            for variant in VARIANTS:  # against this round's torch fp32 vectors of the same texts
                out = f"{tmp}/{variant.replace(' ', '-')}"
                for kind in sizes:
                    reference, vectors = Path(f"{tmp}/torch-fp32-{kind}.npy"), Path(f"{out}-{kind}.npy")
                    if variant != "torch fp32" and runs[variant] and kind in runs[variant][-1] and reference.exists():
                        similarity = cosines(np.load(reference), np.load(vectors))
                        fidelity[variant][kind].append((float(similarity.mean()), float(similarity.min())))
                        vectors.unlink()
    return {"runs": runs, "fidelity": fidelity, "absent": absent}, prepared


def summarise(measured: dict, sizes: dict, flops: dict, peaks: dict) -> dict:
    """Per variant and text set: median texts/s, median of the per-round ratios to plain ST, share of peak."""
    summary = {}
    base = measured["runs"]["st fp32"]
    for variant, runs in measured["runs"].items():
        if not runs or all("skipped" in r for r in runs):
            summary[variant] = {"skipped": runs[0].get("skipped") if runs else measured["absent"].get(variant)
                                or "not run"}
            continue
        resolved = next((r["resolved"] for r in runs if r.get("resolved")), None)
        row = {"peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs if "peak_rss_mb" in r),
               "precision": resolved if variant == "embedclf default" else
               resolved.split()[-1] if variant in ST_PEERS and resolved else None}
        for kind in sizes:
            rates = [r[kind]["texts_per_second"] for r in runs if kind in r]
            ratios = [r[kind]["texts_per_second"] / b[kind]["texts_per_second"] for r, b in zip(runs, base)
                      if kind in r and kind in b]
            rate = statistics.median(rates)
            arithmetic = ARITHMETIC.get(variant) or (resolved or "x fp32").split()[1]
            peak = peaks[arithmetic if arithmetic in peaks else "fp32"]
            cos = measured["fidelity"][variant][kind]
            row[kind] = {"texts_per_second": rate, "rounds": rates, "ratio_to_plain_st": statistics.median(ratios),
                         "gflops_useful": flops[kind] / sizes[kind] * rate / 1e9,
                         "share_of_own_peak": flops[kind] / sizes[kind] * rate / 1e9 / peak,
                         "cosine_mean": min((c[0] for c in cos), default=None),
                         "cosine_min": min((c[1] for c in cos), default=None)}
        summary[variant] = row
    return summary


def markdown(report: dict) -> str:
    sizes, peak = report["sizes"], report["matmul_peaks"]
    lines = [f"{sizes['short']:,} short GoEmotions texts and {sizes['long']:,} long CFPB narratives (truncated at "
             f"{MAX_LENGTH} tokens) on {report.get('cpu_model', 'an unrecorded CPU')}, batch {BATCH_SIZE}, "
             f"{THREADS} threads, median of {report['rounds']} interleaved "
             f"rounds; plain ST ran at {report['variants']['st fp32']['short']['texts_per_second']:.0f} / "
             f"{report['variants']['st fp32']['long']['texts_per_second']:.0f} texts/s. Matmul peaks: fp32 "
             f"{report['fp32_peak']:.0f}, bf16 {peak['torch bf16']['gflops']:.0f}, int8 "
             f"{peak['onnxruntime int8']['gflops']:.0f} GFLOP/s; load average "
             f"{report['load_average_start']:.1f} at the start.", "",
             "| variant | short × ST | long × ST | share of own peak (short / long) | peak RSS MB | "
             "cosine mean / min (short) | cosine mean / min (long) |", "|---|---:|---:|---:|---:|---|---|"]
    for name, row in report["variants"].items():
        if "skipped" in row:
            lines.append(f"| {name} | – | – | – | – | not run: {row['skipped'][:120]} | |")
            continue
        s, g = row["short"], row["long"]

        def cos(r):
            return "exact (reference)" if name == "torch fp32" else (
                f"{r['cosine_mean']:.5f} / {r['cosine_min']:.5f}" if r["cosine_mean"] is not None else "–")
        lines.append(f"| {name}{' (' + row['precision'] + ')' if row.get('precision') else ''} | "
                     f"{s['ratio_to_plain_st']:.2f} | {g['ratio_to_plain_st']:.2f} | "
                     f"{s['share_of_own_peak']:.0%} / {g['share_of_own_peak']:.0%} | {row['peak_rss_mb']:.0f} | "
                     f"{cos(s)} | {cos(g)} |")
    peer = report.get("st_peer", {}).get("versions")
    if peer:
        lines += ["", "ST onnx / openvino ran in a Python of their own: " + ", ".join(
            f"{name} {peer[name]}" for name in ("sentence-transformers", "transformers", "optimum-onnx",
                                                "optimum-intel", "onnxruntime", "openvino") if peer.get(name)) + "."]
    cold = report.get("cold_start")
    if cold:
        lines += ["", f"Cold start, `embedclf encode` of {cold['texts']} short texts (seconds, whole process; "
                  f"median of {cold['pairs']} interleaved pairs on fresh texts):", "",
                  "| variant | first ever (no exports, no cache) | used cache dir, new texts | new cache dir, "
                  "new texts | new dir adds | warm re-run (all cached) |", "|---|---:|---:|---:|---:|---:|"]
        for name in ("embedclf default", "openvino int8"):
            t = cold[name]
            lines.append(f"| {name} | {t['first_ever']:.1f} | {t['used_dir_new_texts']:.1f} | "
                         f"{t['new_cache_dir']:.1f} | {t['new_dir_overhead']:+.1f} | {t['warm_rerun']:.1f} |")
        lines.append(f"| plain ST (import, load, encode) | {cold['plain ST']['load_and_encode']:.1f} | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=None, help="short texts measured [1000; 200 with --quick]")
    parser.add_argument("--long", type=int, default=None, help="long texts measured [150; 40 with --quick]")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds [3; 1 with --quick]")
    parser.add_argument("--quick", action="store_true", help="a fast look, written to backends-cpu-quick.json")
    parser.add_argument("--no-cold-start", action="store_true", help="skip the cold-start timings")
    parser.add_argument("--fastembed-python", help="a Python with fastembed installed (keep it out of this venv)")
    parser.add_argument("--st-python", help="a Python with sentence-transformers[onnx,openvino] (optimum) installed, "
                        "for ST's own onnx/openvino rows (keep it out of this venv)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results",
                        help="where backends-cpu[-quick].json/.md go (keep noisy runs out of results/)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    parser.add_argument("--vectors", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare:
        print(json.dumps(prepare(os.environ["EMBEDCLF_EXPORTS"])))
        return 0
    if args.variant:
        print(json.dumps(run_variant(args.variant, json.loads(args.sizes), args.vectors)))
        return 0
    # the token counts load an Encoder (its bf16 verdict): keep that out of the user's export store too
    os.environ.setdefault("EMBEDCLF_EXPORTS", tempfile.mkdtemp(prefix="embedclf-bench-exports-"))
    sizes = {"short": args.short or (200 if args.quick else 1000), "long": args.long or (40 if args.quick else 150)}
    rounds = args.rounds or (1 if args.quick else 3)
    from embedclf.io import atomic_write_text

    from benchmarks.encode import cpu_model

    load = os.getloadavg()[0]
    found = peaks()
    fp32 = max(found["torch fp32"]["gflops"], found["onnxruntime fp32"]["gflops"])
    own = {"fp32": fp32, "bf16": found["torch bf16"]["gflops"], "int8": found["onnxruntime int8"]["gflops"]}
    flops = {kind: useful_flops(kind, n) for kind, n in sizes.items()}
    measured, prepared = measure(sizes, rounds, args.fastembed_python, args.st_python)
    report = {"benchmark": "backends-cpu", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "sizes": sizes,
              "rounds": rounds, "batch_size": BATCH_SIZE, "max_length": MAX_LENGTH, "threads": THREADS,
              "cpu_model": cpu_model(), "load_average_start": load, "matmul_peaks": found, "fp32_peak": fp32,
              "model_flops_useful": flops, **prepared, "variants": summarise(measured, sizes, flops, own),
              "raw": measured}
    if not args.no_cold_start:
        report["cold_start"] = cold_starts()
    report["load_average_end"] = os.getloadavg()[0]
    name = "backends-cpu-quick" if args.quick else "backends-cpu"
    atomic_write_text(args.out_dir / f"{name}.json", json.dumps(report, indent=1))
    atomic_write_text(args.out_dir / f"{name}.md", markdown(report) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
