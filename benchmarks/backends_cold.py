"""Cold starts and matmul peaks for ``backends.py``.

Cold start: whole ``embedclf encode`` processes on 200 short texts. What a new cache directory adds is
the difference between a run in a new directory (exports and verdicts already in the store) and a run
in a directory used before, on texts it has not seen, so that both encode every text: the median over
interleaved pairs, each on fresh texts. Also: the first-ever run (empty store and cache), and a warm
re-run (every vector cached).

Peaks: matmul GFLOP/s of each arithmetic on this CPU with the benchmark's threads: fp32 (the better of
torch/MKL and onnxruntime/MLAS), bf16 (torch) and int8 (onnxruntime ``MatMulInteger``, u8 x s8: VNNI
where the CPU has it).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.backends_variants import MAX_LENGTH, ROOT, THREADS, texts

COLD_VARIANTS = {"embedclf default": [], "openvino int8": ["--backend", "openvino", "--precision", "int8"]}


def cold_starts(n: int = 200, pairs: int = 3) -> dict:
    import pandas as pd

    results = {"texts": n, "pairs": pairs}
    with tempfile.TemporaryDirectory(prefix="embedclf-cold-") as tmp:
        files = []
        for i in range(2 * pairs + 1):
            files.append(Path(tmp) / f"texts-{i}.csv")
            pd.DataFrame({"text": texts("short", n, skip=i * n)[0]}).to_csv(files[-1], index=False)
        for name, flags in COLD_VARIANTS.items():
            env = os.environ | {"EMBEDCLF_EXPORTS": f"{tmp}/exports-{name[:4]}"}

            def run(data, cache):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "embedclf", "encode", str(data), "--cache",
                                f"{tmp}/{name[:4]}-{cache}", *flags], env=env, check=True, capture_output=True,
                               cwd=ROOT)
                return time.perf_counter() - start

            times = {"first_ever": run(files[0], "used")}
            used, new = [], []
            for i in range(pairs):
                used.append(run(files[1 + 2 * i], "used"))  # no reusable vectors, all else warm
                new.append(run(files[2 + 2 * i], f"new-{i}"))
            times |= {"used_dir_new_texts": statistics.median(used), "new_cache_dir": statistics.median(new),
                      "new_dir_overhead": statistics.median(b - a for a, b in zip(used, new)),
                      "warm_rerun": run(files[2], "new-0")}
            results[name] = times
        start = time.perf_counter()
        code = ("import sys, pandas as pd; from sentence_transformers import SentenceTransformer; "
                "from benchmarks.encode import model_path; m = SentenceTransformer(str(model_path()), device='cpu'); "
                f"m.encode(pd.read_csv({str(files[0])!r})['text'].tolist(), batch_size=32)")
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)
        results["plain ST"] = {"load_and_encode": time.perf_counter() - start}
    return results


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
