"""sentence-transformers' own ``backend="onnx"`` and ``"openvino"`` as peer rows of ``backends.py``, run in a
Python of their own (``--st-python``): they need optimum (optimum-onnx, optimum-intel), which pins a
transformers older than this venv's, so they live in a throwaway venv, as fastembed does.

What a user gets from ``SentenceTransformer(folder, backend=...)``: optimum's export of the fp32 model, ONNX
Runtime's and OpenVINO's default settings (OpenVINO infers in bf16 where the CPU has it), only the threads
pinned to 2 like every other variant. The exports are made once, before the rounds, into a copy of the model
folder (the installed package is never written to). This file runs as a script in the peer's Python, so it
imports nothing from this repository and nothing but numpy and sentence-transformers there:

    PY benchmarks/backends_st_peer.py prepare SOURCE_FOLDER COPY          # exports; prints versions, seconds
    PY benchmarks/backends_st_peer.py run COPY onnx TEXTS_PREFIX OUT_PREFIX SIZES_JSON   # one variant's timings
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

THREADS, BATCH_SIZE, MAX_LENGTH = 2, 32, 256  # as backends_variants' (this file cannot import it in the peer)
BACKENDS = {"st onnx": "onnx", "st openvino": "openvino"}
PACKAGES = ("sentence-transformers", "transformers", "torch", "optimum", "optimum-onnx", "optimum-intel",
            "onnxruntime", "openvino", "tokenizers")


def load(folder: str, backend: str):
    """``SentenceTransformer(folder, backend=backend)`` with 2 threads and the variants' max length."""
    from sentence_transformers import SentenceTransformer

    if backend == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        kwargs = {"session_options": options}
    else:
        kwargs = {"ov_config": {"INFERENCE_NUM_THREADS": THREADS}}
    model = SentenceTransformer(folder, device="cpu", backend=backend, model_kwargs=kwargs)
    model.max_seq_length = MAX_LENGTH
    return model


def prepare(source: str, copy: str) -> dict:
    """Copy the model folder and export both backends into the copy (ST's recommended ``save_pretrained``
    of the exported model; only its onnx/ and openvino/ subfolders are kept, the rest stays as shipped)."""
    import shutil
    import tempfile
    from importlib.metadata import PackageNotFoundError, version

    shutil.copytree(source, copy)
    seconds = {}
    for name, backend in BACKENDS.items():
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="st-peer-") as saved:
            load(copy, backend).save_pretrained(saved)
            shutil.copytree(Path(saved) / backend, Path(copy) / backend)
        seconds[name] = time.perf_counter() - start

    def installed(package):
        try:
            return version(package)
        except PackageNotFoundError:
            return None
    return {"python": sys.executable, "versions": {p: installed(p) for p in PACKAGES}, "prepare_seconds": seconds}


def precision(model, backend: str) -> str:
    """The arithmetic the backend resolved to: OpenVINO's inference precision (bf16 or f32), ONNX fp32."""
    if backend == "onnx":
        return "onnx fp32"
    hint = model[0].auto_model.request.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return "openvino " + {"f32": "fp32", "f16": "fp16"}.get(hint, hint)


def run(copy: str, backend: str, texts: str, out: str, sizes: dict) -> dict:
    """Warm up, then time each text set (the same texts as every variant); vectors to ``out``-<kind>.npy."""
    import numpy as np
    import torch

    torch.set_num_threads(THREADS)
    model = load(copy, backend)
    result = {}
    for kind in sizes:
        measured, warmup = json.loads(Path(f"{texts}-{kind}.json").read_text())
        model.encode(warmup, batch_size=BATCH_SIZE, normalize_embeddings=True)
        start = time.perf_counter()
        X = model.encode(measured, batch_size=BATCH_SIZE, normalize_embeddings=True)
        seconds = time.perf_counter() - start
        np.save(f"{out}-{kind}.npy", np.asarray(X, dtype=np.float32))
        result[kind] = {"seconds": seconds, "texts_per_second": len(measured) / seconds}
    result["resolved"] = precision(model, backend)
    with open("/proc/self/status") as status:
        result["peak_rss_mb"] = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["prepare"] and len(argv) == 3:
        print(json.dumps(prepare(argv[1], argv[2])))
    elif argv[:1] == ["run"] and len(argv) == 6:
        print(json.dumps(run(argv[1], argv[2], argv[3], argv[4], json.loads(argv[5]))))
    else:
        print(__doc__.strip().splitlines()[-2:], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    here = Path(__file__).resolve().parent  # benchmarks/ holds encode.py, run.py...: keep them from shadowing
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.exit(main(sys.argv[1:]))
