"""Encoder backends side by side on short and long texts: texts/s as a ratio to plain SentenceTransformer,
FLOP/s as a share of the peak of each variant's own arithmetic, peak memory, cosine to torch fp32, and
cold-start times.

    python benchmarks/backends.py                  # 1,000 short + 150 long texts, 3 interleaved rounds (~12 min)
    python benchmarks/backends.py --quick          # 200 + 40 texts, one round: results/backends-quick.json
    python benchmarks/backends.py --fastembed-python /tmp/venv/bin/python   # adds fastembed (a throwaway venv)

Short texts are GoEmotions comments, long ones CFPB complaint narratives (truncated at 256 tokens). Every
variant runs in a process of its own, with 2 threads, batch 32, warmed up on other texts, both text sets
per process; rounds are interleaved (variant after variant, round after round), so load from other users of
a shared machine spreads over all variants, and each figure is the median of the rounds. Ratios are to
plain ``SentenceTransformer.encode`` fp32 of the same round. Variants: embedclf's default (no flags:
``--precision auto``), torch fp32, onnx int8, openvino bf16 and int8; peers: plain ST (the baseline),
sentence-transformers' own ``backend="onnx"``/``"openvino"`` where they load offline, and fastembed on
embedclf's int8 ONNX export when a Python with fastembed is given. Exports are made first (into a
temporary export store), so the rounds measure encoding only; cold starts are timed separately with the
CLI: the first-ever run (empty store and cache), a new cache directory on a machine that has exported
before, and a warm re-run (everything cached).

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
THREADS = 2
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, str(THREADS))

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure_refused_int8() -> None:
    """embedclf refuses onnx int8 of the default model (min cosine .971 < .98 on its check sample); the
    benchmark measures it anyway, as a row to compare with."""
    from embedclf.encode import guard

    guard.INT8_MIN_COSINE = 0.0
SHARED = ROOT.parent / "shared" / "datasets"
VARIANTS = ("st fp32", "embedclf default", "torch fp32", "onnx int8", "openvino bf16", "openvino int8",
            "st-onnx fp32", "st-openvino fp32", "fastembed int8")
ARITHMETIC = {"st fp32": "fp32", "torch fp32": "fp32", "st-onnx fp32": "fp32", "st-openvino fp32": "fp32",
              "onnx int8": "int8", "openvino int8": "int8", "fastembed int8": "int8", "openvino bf16": "bf16"}
BATCH_SIZE, MAX_LENGTH, WARMUP = 32, 256, 48


def texts(kind: str, n: int) -> tuple[list[str], list[str]]:
    """``n`` measured texts and ``WARMUP`` others of one kind (short: GoEmotions; long: CFPB narratives)."""
    import pandas as pd

    if kind == "short":
        frame = pd.read_csv(SHARED / "goemotions" / "train.tsv", sep="\t", header=None, quoting=3)
        pool = frame[0].astype(str).tolist()
    else:
        frame = pd.read_csv(SHARED / "cfpb-complaints" / "complaints.csv")
        pool = frame["Consumer complaint narrative"].dropna().astype(str).tolist()
    return pool[:n], pool[n:n + WARMUP]


def encoder_for(variant: str):
    """In the child: a function texts -> normalised vectors for ``variant``, and what embedclf resolved to."""
    name, precision = variant.split()
    if name in ("st", "st-onnx", "st-openvino"):
        from sentence_transformers import SentenceTransformer

        from benchmarks.encode import model_path

        backend = {"st": "torch", "st-onnx": "onnx", "st-openvino": "openvino"}[name]
        model = SentenceTransformer(str(model_path()), device="cpu", backend=backend)
        model.max_seq_length = MAX_LENGTH
        return (lambda batch: model.encode(batch, batch_size=BATCH_SIZE, normalize_embeddings=True)), None
    if name == "fastembed":
        raise RuntimeError("fastembed runs in its own Python (--fastembed-python)")
    from embedclf.encode.encoder import Encoder

    measure_refused_int8()
    options = {} if name == "embedclf" else {"backend": name, "precision": precision}
    encoder = Encoder(**options, batch_size=BATCH_SIZE, max_length=MAX_LENGTH, device="cpu", cache=False,
                      progress=False)
    return encoder.encode, f"{encoder.backend} {encoder.precision}"


def run_variant(variant: str, sizes: dict, out: str) -> dict:
    """In the child: warm up, then time each text set; vectors to ``out``-<kind>.npy."""
    import numpy as np
    import torch

    torch.set_num_threads(THREADS)
    try:
        encode, resolved = encoder_for(variant)
    except Exception as exc:  # a peer that does not load offline here: say why, measure nothing
        return {"skipped": " ".join(str(exc).split())[:200]}
    result = {"resolved": resolved} if resolved else {}
    for kind, n in sizes.items():
        measured, warmup = texts(kind, n)
        encode(warmup)
        start = time.perf_counter()
        X = encode(measured)
        seconds = time.perf_counter() - start
        np.save(f"{out}-{kind}.npy", np.asarray(X, dtype=np.float32))
        result[kind] = {"seconds": seconds, "texts_per_second": n / seconds}
    with open("/proc/self/status") as status:
        result["peak_rss_mb"] = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    return result


FASTEMBED_CHILD = """
import json, sys, time, numpy as np
from fastembed import TextEmbedding
from fastembed.common.model_description import ModelSource, PoolingType
folder, out, sizes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
TextEmbedding.add_custom_model("embedclf/int8", pooling=PoolingType.MEAN, normalization=True,
                               sources=ModelSource(hf="embedclf/int8"), dim=384, model_file="model.onnx")
model = TextEmbedding("embedclf/int8", specific_model_path=folder, threads=2)
result = {}
for kind, n in sizes.items():
    measured, warmup = json.load(open(f"{out}-{kind}.json"))
    list(model.embed(warmup, batch_size=32))
    start = time.perf_counter()
    X = np.array(list(model.embed(measured, batch_size=32)), dtype=np.float32)
    seconds = time.perf_counter() - start
    np.save(f"{out}-{kind}.npy", X)
    result[kind] = {"seconds": seconds, "texts_per_second": n / seconds}
result["peak_rss_mb"] = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(json.dumps(result))
"""


def prepare(store: str) -> dict:
    """Make every export once (timed), and a folder fastembed can read (embedclf's int8 ONNX + tokenizer)."""
    from embedclf.encode.encoder import Encoder

    measure_refused_int8()
    sample, _ = texts("short", 400)
    times = {}
    for backend, precision in (("torch", "auto"), ("onnx", "int8"), ("openvino", "bf16"), ("openvino", "int8")):
        start = time.perf_counter()
        encoder = Encoder(backend=backend, precision=precision, cache=False, progress=False)
        encoder._load_embedder(sample)  # the int8 calibration sample: the first texts a user would encode
        times[f"{backend} {precision}"] = time.perf_counter() - start
    return {"prepare_seconds": times}


def fastembed_folder(store: str, tmp: str) -> str:
    """embedclf's int8 ONNX export with the config files fastembed reads, in a folder of its own."""
    import shutil

    from benchmarks.encode import model_path
    from embedclf.encode.exports import ExportStore

    source = next(e.path for e in ExportStore(store).entries() if e.meta.get("backend") == "onnx"
                  and e.meta.get("precision") == "int8")
    folder = Path(tmp) / "fastembed-int8"
    shutil.copytree(source, folder)
    for name in ("config.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (model_path() / name).exists():
            shutil.copyfile(model_path() / name, folder / name)
    config = json.loads((folder / "tokenizer_config.json").read_text()) | {"model_max_length": MAX_LENGTH}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return str(folder)


def measure(sizes: dict, rounds: int, fastembed_python: str | None) -> tuple[dict, dict]:
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
        for kind, n in sizes.items():
            measured, warmup = texts(kind, n)
            Path(f"{tmp}/fastembed-{kind}.json").write_text(json.dumps([measured, warmup]))
        for round_number in range(rounds):
            for variant in VARIANTS:
                out = f"{tmp}/{variant.replace(' ', '-')}"
                if variant == "fastembed int8":
                    if not folder:
                        continue
                    command = [fastembed_python, "-c", FASTEMBED_CHILD, folder, f"{tmp}/fastembed", json.dumps(sizes)]
                    out = f"{tmp}/fastembed"
                else:
                    command = [sys.executable, __file__, "--variant", variant, "--sizes", json.dumps(sizes),
                               "--vectors", out]
                child = subprocess.run(command, capture_output=True, text=True, env=env)
                if child.returncode:
                    run = {"skipped": " ".join(child.stderr.split())[-300:]}
                else:
                    run = json.loads(child.stdout.strip().splitlines()[-1])
                run["load_average"] = os.getloadavg()[0]
                runs[variant].append(run)
                rates = ", ".join(f"{k} {run[k]['texts_per_second']:.0f}/s" for k in sizes if k in run)
                print(f"round {round_number + 1}: {variant}: {rates or run.get('skipped')}", file=sys.stderr)
            for variant in VARIANTS:  # against this round's torch fp32 vectors of the same texts
                out = f"{tmp}/{'fastembed' if variant == 'fastembed int8' else variant.replace(' ', '-')}"
                for kind in sizes:
                    reference, vectors = Path(f"{tmp}/torch-fp32-{kind}.npy"), Path(f"{out}-{kind}.npy")
                    if variant != "torch fp32" and runs[variant] and kind in runs[variant][-1] and reference.exists():
                        similarity = cosines(np.load(reference), np.load(vectors))
                        fidelity[variant][kind].append((float(similarity.mean()), float(similarity.min())))
                        vectors.unlink()
    return {"runs": runs, "fidelity": fidelity}, prepared


def summarise(measured: dict, sizes: dict, flops: dict, peaks: dict) -> dict:
    """Per variant and text set: median texts/s, median of the per-round ratios to plain ST, share of peak."""
    summary = {}
    base = measured["runs"]["st fp32"]
    for variant, runs in measured["runs"].items():
        if not runs or all("skipped" in r for r in runs):
            summary[variant] = {"skipped": runs[0].get("skipped") if runs else "not run"}
            continue
        resolved = next((r["resolved"] for r in runs if r.get("resolved")), None)
        row = {"peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs if "peak_rss_mb" in r),
               "precision": resolved if variant == "embedclf default" else None}
        for kind in sizes:
            rates = [r[kind]["texts_per_second"] for r in runs if kind in r]
            ratios = [r[kind]["texts_per_second"] / b[kind]["texts_per_second"] for r, b in zip(runs, base)
                      if kind in r and kind in b]
            rate = statistics.median(rates)
            arithmetic = ARITHMETIC.get(variant) or (resolved or "x fp32").split()[1]
            peak = peaks[arithmetic if arithmetic in peaks else "fp32"]
            cos = measured["fidelity"][variant][kind]
            row[kind] = {"texts_per_second": rate, "rounds": rates, "ratio_to_plain_st": statistics.median(ratios),
                         "gflops_useful": flops[kind] / n_of(sizes, kind) * rate / 1e9,
                         "share_of_own_peak": flops[kind] / n_of(sizes, kind) * rate / 1e9 / peak,
                         "cosine_mean": min((c[0] for c in cos), default=None),
                         "cosine_min": min((c[1] for c in cos), default=None)}
        summary[variant] = row
    return summary


def n_of(sizes: dict, kind: str) -> int:
    return sizes[kind]


def int8_matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> dict:
    """onnxruntime's ``MatMulInteger`` (u8 x s8 -> s32), the int8 GEMM the CPU's VNNI units run."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from embedclf.encode.backends.onnx import session_options

    a = np.random.randint(0, 255, (size, size), dtype=np.uint8)
    b = np.random.randint(-127, 127, (size, size), dtype=np.int8)
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["C"])], "mm",
                              [helper.make_tensor_value_info("A", TensorProto.UINT8, [size, size]),
                               helper.make_tensor_value_info("B", TensorProto.INT8, [size, size])],
                              [helper.make_tensor_value_info("C", TensorProto.INT32, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), sess_options=session_options(ort, THREADS),
                                   providers=["CPUExecutionProvider"])
    for _ in range(2):
        session.run(None, {"A": a, "B": b})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"A": a, "B": b})
        times.append(time.perf_counter() - start)
    return {"library": "onnxruntime MatMulInteger", "dtype": "int8", "gflops": 2 * size ** 3 / min(times) / 1e9}


def peaks() -> dict:
    import torch

    from benchmarks.encode import matmul_peak_gflops

    torch.set_num_threads(THREADS)
    found = {f"{lib} {dtype}": matmul_peak_gflops(library=lib, dtype=dtype)
             for lib, dtype in (("torch", "fp32"), ("onnxruntime", "fp32"), ("torch", "bf16"))}
    found["onnxruntime int8"] = int8_matmul_peak_gflops()
    return found


def useful_flops(kind: str, n: int) -> float:
    import numpy as np

    from benchmarks.encode import model_dims, token_counts, workload

    lengths = np.minimum(token_counts(texts(kind, n)[0]), MAX_LENGTH)
    return workload([], lengths, model_dims())["flops_useful"]


def cold_starts(n: int = 200) -> dict:
    """Seconds of ``embedclf encode`` on ``n`` short texts: first-ever (empty store and cache), a new cache
    directory with the exports made, a warm re-run (all cached); and plain ST loading and encoding them."""
    import pandas as pd

    measured, _ = texts("short", n)
    results = {}
    with tempfile.TemporaryDirectory(prefix="embedclf-cold-") as tmp:
        data = Path(tmp) / "short.csv"
        pd.DataFrame({"text": measured}).to_csv(data, index=False)
        for name, flags in (("embedclf default", []), ("openvino int8", ["--backend", "openvino", "--precision", "int8"])):
            env = os.environ | {"EMBEDCLF_EXPORTS": f"{tmp}/exports-{name[:4]}"}
            times = {}
            for step, cache in (("first_ever", "a"), ("new_cache_dir", "b"), ("warm_rerun", "b")):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "embedclf", "encode", str(data), "--cache", f"{tmp}/{name[:4]}-{cache}",
                                *flags], env=env, check=True, capture_output=True, cwd=ROOT)
                times[step] = time.perf_counter() - start
            results[name] = times
        start = time.perf_counter()
        code = ("import sys, pandas as pd; from sentence_transformers import SentenceTransformer; "
                "from benchmarks.encode import model_path; m = SentenceTransformer(str(model_path()), device='cpu'); "
                f"m.encode(pd.read_csv({str(data)!r})['text'].tolist(), batch_size=32)")
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)
        results["plain ST"] = {"load_and_encode": time.perf_counter() - start}
    return results


def markdown(report: dict) -> str:
    sizes, peak = report["sizes"], report["matmul_peaks"]
    lines = [f"{sizes['short']:,} short GoEmotions texts and {sizes['long']:,} long CFPB narratives (truncated at "
             f"{MAX_LENGTH} tokens), batch {BATCH_SIZE}, {THREADS} threads, median of {report['rounds']} interleaved "
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
    cold = report.get("cold_start")
    if cold:
        lines += ["", f"Cold start, `embedclf encode` of {cold['texts']} short texts (seconds, whole process):", "",
                  "| variant | first ever (no exports, no cache) | new cache directory | warm re-run |",
                  "|---|---:|---:|---:|"]
        for name in ("embedclf default", "openvino int8"):
            t = cold[name]
            lines.append(f"| {name} | {t['first_ever']:.1f} | {t['new_cache_dir']:.1f} | {t['warm_rerun']:.1f} |")
        lines.append(f"| plain ST (import, load, encode) | {cold['plain ST']['load_and_encode']:.1f} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=None, help="short texts measured [1000; 200 with --quick]")
    parser.add_argument("--long", type=int, default=None, help="long texts measured [150; 40 with --quick]")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds [3; 1 with --quick]")
    parser.add_argument("--quick", action="store_true", help="a fast look, written to backends-cpu-quick.json")
    parser.add_argument("--no-cold-start", action="store_true", help="skip the cold-start timings")
    parser.add_argument("--fastembed-python", help="a Python with fastembed installed (keep it out of this venv)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
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
    measured, prepared = measure(sizes, rounds, args.fastembed_python)
    report = {"benchmark": "backends-cpu", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "sizes": sizes,
              "rounds": rounds, "batch_size": BATCH_SIZE, "max_length": MAX_LENGTH, "threads": THREADS,
              "cpu_model": cpu_model(), "load_average_start": load, "matmul_peaks": found, "fp32_peak": fp32,
              "model_flops_useful": flops, **prepared, "variants": summarise(measured, sizes, flops, own),
              "raw": measured}
    if not args.no_cold_start:
        report["cold_start"] = cold_starts() | {"texts": 200}
    report["load_average_end"] = os.getloadavg()[0]
    name = "backends-cpu-quick" if args.quick else "backends-cpu"
    atomic_write_text(args.out_dir / f"{name}.json", json.dumps(report, indent=1))
    atomic_write_text(args.out_dir / f"{name}.md", markdown(report) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
