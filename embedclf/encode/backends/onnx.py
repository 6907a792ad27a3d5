"""The ONNX Runtime backend: a model's transformer exported once, optionally quantised to int8, run on CPU.

The export lives in the per-user export store (``encode/exports``), shared by every vector cache, one
entry per model fingerprint and recipe::

    <store>/<fingerprint[:16]>-onnx-fp32-opset17/model.onnx  fp32, from torch.onnx.export (TorchScript exporter)
    <store>/<fingerprint[:16]>-onnx-int8-v2/model.onnx       onnxruntime quantize_dynamic: per-channel QInt8
                                                     weights of the MatMuls, down-projections fp32 (see _quantize)

Each folder also holds the model's fast tokenizer (``tokenizer.json``) and ``embedclf-onnx.json`` (input
names, dimension, padding), so a run that finds its export imports neither torch nor transformers:
tokenisation is the ``tokenizers`` library the fast tokenizer is built on, and pooling and
normalisation are numpy. The store builds each entry in a temporary folder renamed into place under a
file lock: two processes never export at once. (Exports that older versions kept in ``<cache>/onnx``
are not read.)
"""

from __future__ import annotations

import importlib
import json
import logging
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from embedclf.console import status
from embedclf.encode.backends.exported import (META_FILE, OUTPUT, TOKENIZER_FILE, ExportedEmbedder, cpu_cores,
                                               traceable_transformer, write_tokenizer_and_meta)
from embedclf.encode import guard
from embedclf.encode.exports import ExportStore, entry_name
from embedclf.encode.models import ModelRef
from embedclf.encode.settings import INT8_RECIPE
from embedclf.encode.similarity import cosines
from embedclf.errors import EmbedclfError, missing_extra

ONNX_PRECISIONS = ("fp32", "int8")
MODEL_FILE = "model.onnx"
OPSET = 17  # LayerNormalization is a single op from opset 17


def require(module: str):
    """Import an optional dependency of the onnx backend, or fail with the install hint."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_extra(module, "onnx") from None


# -- export --------------------------------------------------------------------------------------
def recipe(precision: str) -> str:
    return INT8_RECIPE if precision == "int8" else f"{precision}-opset{OPSET}"


def export_dir(fingerprint: str, precision: str, store: ExportStore | None = None) -> Path:
    """Where the export of a model at ``precision`` lives in the store (whether or not made yet)."""
    return (store or ExportStore()).path(entry_name(fingerprint, "onnx", recipe(precision)))


def ensure_export(ref: ModelRef, precision: str, store: ExportStore | None = None) -> Path:
    """The export folder of ``ref`` at ``precision``, exported (and quantised) on first use on this machine."""
    if precision not in ONNX_PRECISIONS:
        raise EmbedclfError(f"no onnx export at precision {precision!r}; expected {' or '.join(ONNX_PRECISIONS)}")
    store = store or ExportStore()
    meta = {"model": ref.name, "fingerprint": ref.fingerprint, "backend": "onnx", "precision": precision,
            "recipe": recipe(precision)}
    if precision == "int8":
        source = ensure_export(ref, "fp32", store)

        def build(folder):
            with status(f"quantising {ref.name} to int8 (once per model, kept in {store.root})"):
                _quantize(source, folder)
                measured = _int8_fidelity(ref, source, folder)
            print(f"embedclf: onnx int8 of {ref.name}: cosine to fp32 on {measured['held_out_texts']} texts: "
                  f"mean {measured['mean_cosine']:.5f}, min {measured['min_cosine']:.5f}", file=sys.stderr)
            return measured
    else:
        def build(folder):
            with status(f"exporting {ref.name} to ONNX (once per model, kept in {store.root})"):
                _export(ref, folder)
    entry = store.ensure(entry_name(ref.fingerprint, "onnx", recipe(precision)), build, meta)
    least = entry.meta.get("min_cosine")
    if least is not None and least < guard.INT8_MIN_COSINE:
        raise EmbedclfError(f"onnx int8 of {ref.name}: min cosine {least:.5f} to fp32 on {entry.meta.get('held_out_texts')} "
                            f"texts is below {guard.INT8_MIN_COSINE}; use --precision fp32, or --backend openvino "
                            "(its int8 is calibrated on your texts)")
    return entry.path


def _int8_fidelity(ref: ModelRef, fp32: Path, int8: Path) -> dict:
    """Cosine of the int8 export's vectors to the fp32 export's on the fixed sample (short and long texts)."""
    settings = SimpleNamespace(pooling=ref.pooling, max_length=ref.max_length, batch_size=32, batch_tokens=2048,
                               normalize=True)
    texts = list(guard.GUARD_TEXTS)
    similarity = cosines(OnnxEmbedder(fp32, settings).encode(texts), OnnxEmbedder(int8, settings).encode(texts))
    return {"mean_cosine": float(similarity.mean()), "min_cosine": float(similarity.min()),
            "held_out_texts": len(texts), "threshold": guard.INT8_MIN_COSINE}


def _export(ref: ModelRef, target: Path) -> None:
    """torch.onnx.export of the transformer (token ids in, last hidden state out), batch and length dynamic."""
    import warnings

    require("onnx")  # the TorchScript exporter serialises through it
    import torch

    module, names, example, tokenizer = traceable_transformer(ref)
    axes = {name: {0: "batch", 1: "sequence"} for name in names + [OUTPUT]}
    tmp = target / MODEL_FILE  # ``target`` is the store's temporary folder: renamed into place when complete
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, str(tmp), input_names=names, output_names=[OUTPUT], dynamic_axes=axes,
                              opset_version=OPSET, do_constant_folding=True, dynamo=False)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise EmbedclfError(f"cannot export {ref.name} to ONNX: {' '.join(str(exc).split())[:300]}") from None
    write_tokenizer_and_meta(target, ref, tokenizer, module, names, opset=OPSET)


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8: MatMul weights QInt8 per output channel, activations quantised per batch at run time.

    Down-projections (MatMuls with more input than output features: in BERT the feed-forward output,
    1536 -> 384) stay fp32. Their input is the GELU activation, whose few large outliers make the
    per-tensor uint8 activation scale coarse for everything else; measured on 1,000 GoEmotions texts with
    all-MiniLM-L6-v2, quantising them too gave mean cosine 0.9898 to fp32, keeping them fp32 0.9939, for
    about a quarter of the int8 speed-up. Embedding tables (Gather) stay fp32 too: they are lookups, not
    compute, and quantising them costs fidelity for a smaller file only.
    """
    onnx = require("onnx")
    require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source / MODEL_FILE), load_external_data=False).graph
    weights = {w.name: tuple(w.dims) for w in graph.initializer}
    down_projections = [node.name for node in graph.node
                        if node.op_type == "MatMul" and len(weights.get(node.input[1], ())) == 2
                        and weights[node.input[1]][0] > weights[node.input[1]][1]]
    del graph
    tmp = target / MODEL_FILE
    logging.disable(logging.WARNING)  # it advises pre-processing on the root logger; per-channel suffices
    try:
        quantize_dynamic(str(source / MODEL_FILE), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], nodes_to_exclude=down_projections)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise EmbedclfError(f"cannot quantise {source / MODEL_FILE}: {' '.join(str(exc).split())[:300]}") from None
    finally:
        logging.disable(logging.NOTSET)
    shutil.copyfile(source / TOKENIZER_FILE, target / TOKENIZER_FILE)
    meta = json.loads((source / META_FILE).read_text()) | {
        "precision": "int8", "recipe": INT8_RECIPE,
        "quantization": "dynamic (onnxruntime quantize_dynamic): MatMul weights QInt8 per channel, "
                        f"{len(down_projections)} down-projection MatMuls kept fp32"}
    (target / META_FILE).write_text(json.dumps(meta, indent=2))


# -- running -------------------------------------------------------------------------------------
class OnnxEmbedder(ExportedEmbedder):
    """Texts to pooled embeddings with an ONNX export: the onnx backend's counterpart of the SentenceTransformer."""

    def _start(self, directory: Path) -> None:
        ort = require("onnxruntime")
        self.session = ort.InferenceSession(str(directory / MODEL_FILE), sess_options=session_options(ort),
                                            providers=["CPUExecutionProvider"])

    def _forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([OUTPUT], feed)[0]


def session_options(ort, threads: int | None = None):
    options = ort.SessionOptions()
    # One thread per physical core: the GEMMs that dominate a BERT forward saturate a core's vector
    # units, so a hyper-thread sibling adds contention, not throughput; and counted from this process's
    # affinity and cgroup quota, not the host's cores, which onnxruntime's default (0) may see in a
    # container, oversubscribing a small CPU. One inter-op thread, sequential: a BERT graph is a chain.
    options.intra_op_num_threads = threads or cpu_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # ALL adds the layout and CPU-specific fusions (MatMul+Add, GELU, LayerNorm; for int8 the fused
    # DynamicQuantizeMatMul) to the basic ones. They depend on the CPU, so they run at each load
    # (a fraction of a second) rather than being saved with the export.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no warnings about unused initialisers on stderr
    return options


def load_onnx_embedder(settings) -> OnnxEmbedder:
    """The resolved ``settings``' export from the store (made on first use), ready to encode."""
    require("onnxruntime")  # before an export that may take a while
    return OnnxEmbedder(ensure_export(settings.ref, settings.precision), settings)
