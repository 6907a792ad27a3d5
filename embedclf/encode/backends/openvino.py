"""The OpenVINO backend: the transformer converted once to OpenVINO IR, run on the CPU in fp32, bf16 or int8.

Exports live in the per-user export store (``encode/exports``)::

    <store>/<fingerprint[:16]>-openvino-ir-v1/model.xml           fp32 IR, converted from the torch model
    <store>/<fingerprint[:16]>-openvino-ov-int8-v5-<sample>/...    static int8 (nncf), calibrated on the user's texts
    <entry>/compiled/, compiled-unfused/                            OpenVINO's compiled models, made by the first run

fp32 and bf16 run the same IR, with OpenVINO's inference precision hint (``f32`` or ``bf16``: OpenVINO's
own default on a CPU with native bf16 is bf16, so fp32 is asked for explicitly). int8 is nncf's static
post-training quantisation, calibrated offline on up to 300 texts of the first int8 run on this machine
(no download): the transformer preset with symmetric activations (nncf's default preset, the fastest on
the CPU), SmoothQuant at alpha 0.75 and activation ranges from the calibration's global min and max, with the
first four layers' feed-forward down-projections left unquantised; then every layer's, then the attention
output projections too, where the held-out minimum is not reached (see ``_quantize``). Batches run on two
streams, two requests in flight (see ``_start``).
Each int8 export is checked once, when made, on texts held out from calibration (and a fixed sample of
long ones): its cosine to the fp32 IR is printed and kept with it, and an export whose minimum is below
:data:`INT8_MIN_COSINE` is refused. Tokenisation, padding and pooling are ``backends/exported``'s.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import shutil
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from embedclf.console import status
from embedclf.encode.backends.exported import (META_FILE, TOKENIZER_FILE, ExportedEmbedder, cpu_cores,
                                               traceable_transformer, write_tokenizer_and_meta)
from embedclf.encode.exports import ENTRY_FILE, Entry, ExportStore, entry_name, sample_hash
from embedclf.encode import guard
from embedclf.encode.guard import GUARD_TEXTS, native_bf16
from embedclf.encode.models import ModelRef
from embedclf.encode.settings import OV_INT8_RECIPE
from embedclf.encode.similarity import cosines
from embedclf.errors import EmbedclfError, missing_extra

MODEL_XML = "model.xml"
COMPILED_DIR = "compiled"  # OpenVINO's compiled-model cache, inside a complete store entry (fused attention)
UNFUSED_COMPILED_DIR = "compiled-unfused"  # the same without it: OpenVINO's cache key ignores SNIPPETS_MODE
IR_RECIPE = "ir-v1"
INT8_MIN_COSINE = guard.INT8_MIN_COSINE  # the least cosine to fp32 an int8 export may have on a held-out text
CALIBRATION_TEXTS, HELD_OUT_TEXTS = 300, 100
UNQUANTISED_FIRST = 4  # feed-forward down-projections of the first layers left unquantised (see _quantize)
SMOOTH_QUANT_ALPHA = 0.75  # nncf's default for transformers is 0.95 (see _quantize)
STREAMS = 2  # OpenVINO streams (and requests in flight) on a CPU with at least two cores
# batches are padded to a multiple of this many tokens: OpenVINO compiles kernels for each new input shape, and
# a run over new texts meets many widths. 2,000 short texts in a fresh process: int8 1,700-1,790 texts/s
# padded to their longest, 2,060-2,100 to a multiple of 4 (8: 2,000-2,050); once every width had been seen,
# 2,280-2,300 and 2,220-2,300 (bf16: +4% on the first pass; long texts, mostly 256 tokens: +2%)
WIDTH_STEP = 4
# OpenVINO's CPU plugin fuses each layer's attention into one generated kernel ("snippets"). With dynamic shapes,
# measured on an Intel Xeon with AMX, one thread, int8 and bf16 alike, batches of min(32, 2048 / width) texts:
# the fused kernel is fast only at widths that are multiples of 16, where from 128 tokens on it is 5-12% faster
# than the unfused attention; at every other width, and at any width below 128, the unfused attention is as fast
# or faster (by 18-24% at 4-28 tokens, 13% over 2,000 short texts). (The fused kernel of OpenVINO 2026.4 also
# gets int8 batches padded to exactly 32 tokens wrong, cosine .37-.65 to fp32; unfused they are right.)
# Compiled for one static shape, OpenVINO fuses further (each layer's element-wise steps too): 8 x 256 tokens,
# int8, 73 ms a batch against 85 ms fused with dynamic shapes (14%; 16 x 128: 14%; 32 x 24: 5%, too little
# to compile a model per narrow width). Batches at the length limit (long texts, truncated) are the one shape
# a corpus fills over and over. So bf16 and int8 run two compilations: batches at the limit (padded to it from
# 16 tokens below, and with copies of their last text to its number of rows) on a static fused one, every
# other batch on a dynamic unfused one. Over 500 long complaints (59% of their tokens in batches at the
# limit) int8 ran 222-227 texts/s against 192-210 with the dynamic fused compilation for widths of 128 and more,
# at the same peak memory (885-890 MB against 877-900; keeping that third compilation too took 130 MB more).
FUSED_ATTENTION_FROM = 128
FUSED_WIDTH_STEP = 16
FUSED, UNFUSED, STATIC = "fused", "unfused", "static"  # compilations: dynamic fused (fp32), dynamic unfused, static


def require(module: str):
    """Import an optional dependency of the openvino backend, or fail with the install hint."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_extra(module, "openvino") from None


# -- export --------------------------------------------------------------------------------------
def ensure_ir(ref: ModelRef, store: ExportStore | None = None) -> Path:
    """The fp32 IR of ``ref``, converted on first use on this machine."""
    store = store or ExportStore()
    meta = {"model": ref.name, "fingerprint": ref.fingerprint, "backend": "openvino", "precision": "fp32 (IR)",
            "recipe": IR_RECIPE}

    def build(folder):
        with status(f"converting {ref.name} to OpenVINO (once per model, kept in {store.root})"):
            _convert(ref, folder)

    return store.ensure(entry_name(ref.fingerprint, "openvino", IR_RECIPE), build, meta).path


def _convert(ref: ModelRef, target: Path) -> None:
    import warnings

    ov = require("openvino")
    import torch

    module, names, example, tokenizer = traceable_transformer(ref)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            model = ov.convert_model(module, example_input=example)
    except Exception as exc:
        raise EmbedclfError(f"cannot convert {ref.name} to OpenVINO: {' '.join(str(exc).split())[:300]}") from None
    ov.save_model(model, str(target / MODEL_XML), compress_to_fp16=False)
    write_tokenizer_and_meta(target, ref, tokenizer, module, names, openvino=ov.__version__)


def int8_exports(ref: ModelRef, store: ExportStore | None = None) -> list[Entry]:
    """The int8 exports of ``ref`` under the current recipe (one per calibration sample), newest first."""
    found = [e for e in (store or ExportStore()).entries([ref.fingerprint])
             if e.meta.get("backend") == "openvino" and e.meta.get("recipe") == OV_INT8_RECIPE]
    return sorted(found, key=lambda e: (e.path / ENTRY_FILE).stat().st_mtime, reverse=True)


def ensure_int8(settings, sample=None, store: ExportStore | None = None) -> Path:
    """The int8 export of ``settings``' model: the newest this machine made (whatever texts calibrated
    it), or one calibrated now on ``sample`` (the texts about to be encoded); refused below the threshold."""
    store = store or ExportStore()
    ref = settings.ref
    existing = int8_exports(ref, store)
    if existing:
        entry = existing[0]
    else:
        require("nncf")  # before an export that takes a while
        calibration, held_out = calibration_split(sample or [])
        meta = {"model": ref.name, "fingerprint": ref.fingerprint, "backend": "openvino", "precision": "int8",
                "recipe": OV_INT8_RECIPE, "sample": sample_hash(calibration), "calibration_texts": len(calibration),
                "held_out_texts": len(held_out)}
        source = ensure_ir(ref, store)

        def build(folder):
            with status(f"quantising {ref.name} to int8 on {len(calibration)} of your texts (once per model, "
                        f"kept in {store.root})"):
                measured = _quantize(source, folder, settings, calibration, held_out)
            print(f"embedclf: openvino int8 of {ref.name}: cosine to fp32 on {len(held_out)} held-out texts: "
                  f"mean {measured['mean_cosine']:.5f}, min {measured['min_cosine']:.5f}", file=sys.stderr)
            return measured

        name = entry_name(ref.fingerprint, "openvino", OV_INT8_RECIPE, meta["sample"])
        entry = store.ensure(name, build, meta)
    least = float(entry.meta.get("min_cosine", 0))
    if least < INT8_MIN_COSINE:
        raise EmbedclfError(
            f"openvino int8 of {ref.name}: min cosine {least:.5f} to fp32 on {entry.meta.get('held_out_texts')} "
            f"held-out texts is below {INT8_MIN_COSINE}; use --precision bf16 (or 'embedclf cache clear --model "
            f"{ref.name}' and calibrate on other texts)")
    return entry.path


def calibration_split(sample) -> tuple[list[str], list[str]]:
    """Up to 300 distinct texts to calibrate on, and up to 100 others plus the fixed guard sample (short and
    long texts) to check on. Few texts of one's own are topped up with the fixed sample."""
    texts = list(dict.fromkeys(str(t) for t in sample if str(t).strip()))[:CALIBRATION_TEXTS + HELD_OUT_TEXTS]
    if len(texts) < 40:
        texts = list(dict.fromkeys(texts + list(GUARD_TEXTS)))
    count = min(CALIBRATION_TEXTS, max(1, len(texts) * 3 // 4))
    calibration = texts[:count]
    held_out = list(dict.fromkeys(texts[count:] + [t for t in GUARD_TEXTS if t not in set(calibration)]))
    return calibration, held_out


def _quantize(source: Path, target: Path, settings, calibration: list[str], held_out: list[str]) -> dict:
    """nncf static int8 of the IR in ``source``, written to ``target``; returns its fidelity on ``held_out``.

    Left unquantised: the first four layers' feed-forward down-projections (``_down_projections``); where
    the held-out minimum cosine is still below the threshold, every layer's; then the attention output
    projections (``_attention_outputs``) as well.

    Measured with all-MiniLM-L6-v2, calibrated on 300 GoEmotions training texts, cosine to fp32 mean / min
    on all 10,853 GoEmotions dev and test texts (the 200 long complaints beside them were never the harder
    set: min .9906 or more), with symmetric activations (6-17% faster here, over two runs, than the asymmetric
    ones of nncf's MIXED preset with the same layers unquantised) and the bf16 inference precision:
    nncf's defaults (SmoothQuant 0.95, per-text ranges averaged) with the first two down-projections and every
    attention output unquantised .9978 / .9814; every down-projection .9986 / .9700. SmoothQuant 0.7 with
    the global min and max of the calibration: the first two down-projections .9957 / .9682 (16 texts under
    .98), three .9973 / .9809, four .9981 / .9869, all six .9988 / .9916. With three, alpha 0.6 / 0.75 / 0.9
    gave a minimum of .9733 / .9866 / .9741; with four, 0.7-0.8 all hold (.9863-.9873). The texts that fail
    are short thanks ("okay thanks!"), whose post-GELU activations hold outliers.
    """
    ov = require("openvino")
    require("nncf").set_log_level(logging.ERROR)
    fp32 = OpenVinoEmbedder(source, replace(settings, precision="fp32", normalize=True))
    items = [[feed[n] for n in fp32.meta["inputs"]] for feed in fp32.feeds(calibration)]
    reference = fp32.encode(held_out)
    meta = json.loads((source / META_FILE).read_text()) | {"precision": "int8", "recipe": OV_INT8_RECIPE}
    graph = ov.Core().read_model(str(source / MODEL_XML))
    projections, attention = _down_projections(graph), _attention_outputs(graph)
    choices = (tuple(projections[:UNQUANTISED_FIRST]), tuple(projections), tuple(projections + attention))
    for attempt, ignored in enumerate(dict.fromkeys(choices)):
        folder = target / f"attempt-{attempt}"  # a folder each: the previous attempt's weights are still mapped
        folder.mkdir()
        quantized = _nncf_int8(ov.Core().read_model(str(source / MODEL_XML)), items, list(ignored), settings)
        ov.save_model(quantized, str(folder / MODEL_XML), compress_to_fp16=False)
        shutil.copyfile(source / TOKENIZER_FILE, folder / TOKENIZER_FILE)
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))
        int8 = OpenVinoEmbedder(folder, replace(settings, precision="int8", normalize=True))
        similarity = cosines(reference, int8.encode(held_out))
        if similarity.min() >= INT8_MIN_COSINE:
            break
    for file in folder.iterdir():
        os.replace(file, target / file.name)
    for leftover in target.glob("attempt-*"):
        shutil.rmtree(leftover)
    return {"mean_cosine": float(similarity.mean()), "min_cosine": float(similarity.min()),
            "threshold": INT8_MIN_COSINE, "unquantised": len(ignored)}


def _nncf_int8(model, items: list, ignored: list[str], settings):
    nncf = require("nncf")
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    advanced = nncf.AdvancedQuantizationParameters(
        smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=SMOOTH_QUANT_ALPHA),
        activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    try:  # nncf draws its own progress bars: the status line says what is going on
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return nncf.quantize(model, nncf.Dataset(items), subset_size=len(items),
                                 preset=nncf.QuantizationPreset.PERFORMANCE, model_type=nncf.ModelType.TRANSFORMER,
                                 ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
                                 advanced_parameters=advanced)
    except Exception as exc:
        raise EmbedclfError(f"cannot quantise {settings.ref.name} with nncf: {' '.join(str(exc).split())[:300]}") \
            from None


def _down_projections(model) -> list[str]:
    """Names of the MatMuls with a constant weight and fewer output than input features (in BERT the
    feed-forward output, 1536 -> 384), in layer order: their post-GELU inputs have outliers that a per-tensor
    int8 scale holds badly, most of all in the early layers (measured in ``_quantize``)."""
    return [op.get_friendly_name() for op in _weighted_matmuls(model)
            if max(_weight_shape(op)) > op.get_output_partial_shape(0)[-1].get_length()]


def _attention_outputs(model) -> list[str]:
    """Names of the MatMuls that project each layer's attention context back (BERT's ``attention.output.
    dense``): a constant weight on the output of the attention (reshaped), in layer order. The last resort of
    ``_quantize``: with every down-projection unquantised all-MiniLM-L6-v2 no longer needs them (it did with
    the asymmetric activations and nncf's default ranges of the previous recipe)."""
    names = []
    for op in _weighted_matmuls(model):
        source = op.input_value(0).get_node()
        while source.get_type_name() in ("Reshape", "Transpose", "Convert"):
            source = source.input_value(0).get_node()
        kind = source.get_type_name()
        if kind == "ScaledDotProductAttention" or kind == "MatMul" and not _is_constant(source.input_value(1)):
            names.append(op.get_friendly_name())
    return names


def _weighted_matmuls(model) -> list:
    """The MatMuls with a constant 2-D weight and a static output width (the linear layers), in order."""
    return [op for op in model.get_ordered_ops() if op.get_type_name() == "MatMul"
            and _is_constant(op.input_value(1)) and len(_weight_shape(op)) == 2
            and op.get_output_partial_shape(0)[-1].is_static]


def _is_constant(value) -> bool:
    node = value.get_node()
    while node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    return node.get_type_name() == "Constant"


def _weight_shape(op) -> list[int]:
    shape = op.input_value(1).get_partial_shape()
    return [d.get_length() for d in shape] if shape.is_static else []


# -- running -------------------------------------------------------------------------------------
class OpenVinoEmbedder(ExportedEmbedder):
    """Texts to pooled embeddings with an OpenVINO IR, on the CPU, one thread per core; in bf16 and int8 two
    compilations of it: a static one for batches at the length limit, and one without fused attention for
    every other width (see ``FUSED_ATTENTION_FROM``)."""

    def _start(self, directory: Path) -> None:
        require("openvino")  # the missing extra is named before anything else
        precision = self.settings.precision
        hint = "bf16" if precision == "bf16" or precision == "int8" and native_bf16() else "f32"
        cores = cpu_cores()
        # two streams (one batch each, the cores shared between them) and two requests in flight: while
        # one batch waits on a memory-bound step (attention, layer norm) the other computes. Measured on
        # 2 cores, 256-token texts: 1.2x the texts/s of one stream with both threads (LATENCY).
        self._config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": cores,
                        "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": min(STREAMS, cores)}
        # compiled once per machine, not once per process (into a complete entry, or one this user may write)
        self._keep_compiled = (directory / ENTRY_FILE).exists() and (
            (directory / COMPILED_DIR).is_dir() or os.access(directory, os.W_OK))
        self._compiled, self._requests, self._lock = {}, {}, threading.Lock()
        # fp32 keeps one (fused, dynamic) compilation: a second one costs ~200 MB more peak memory, which took
        # fp32 past plain sentence-transformers', for a smaller gain than bf16's and int8's (6% at 12-28 tokens)
        self._one_compilation = precision == "fp32"
        self.static_shape = None if self._one_compilation else self._static_shape()
        first = self.compiled_model(FUSED if self._one_compilation else UNFUSED)  # a damaged export fails here
        self.streams = int(first.get_property("NUM_STREAMS"))

    def compiled_model(self, kind: str):
        """The IR compiled as ``kind`` (``FUSED`` or ``UNFUSED`` attention with dynamic shapes, or ``STATIC``:
        fused, for batches of ``static_shape``), on first use."""
        with self._lock:
            if kind not in self._compiled:
                core = require("openvino").Core()
                if self._keep_compiled:  # OpenVINO's cache key covers the shapes, not SNIPPETS_MODE
                    core.set_property({"CACHE_DIR": str(self.directory / (UNFUSED_COMPILED_DIR if kind == UNFUSED
                                                                          else COMPILED_DIR))})
                config = {**self._config, "SNIPPETS_MODE": "DISABLE"} if kind == UNFUSED else self._config
                try:
                    model = str(self.directory / MODEL_XML)
                    if kind == STATIC:
                        model = core.read_model(model)
                        model.reshape({put.get_any_name(): list(self.static_shape) for put in model.inputs})
                    self._compiled[kind] = core.compile_model(model, "CPU", config)
                except Exception as exc:
                    raise self.damaged(exc) from None
                self._requests[kind] = self._compiled[kind].create_infer_request()
            return self._compiled[kind]

    def _static_shape(self) -> tuple[int, int] | None:
        """Rows x tokens of the static compilation: the most texts a batch padded to the length limit can have
        (``capped_batches``), at the limit; none where the limit is too narrow for fused attention."""
        width = self.max_length
        if width < FUSED_ATTENTION_FROM or width % FUSED_WIDTH_STEP:
            return None
        longest = width - FUSED_WIDTH_STEP + 1  # the shortest text of a batch padded to the limit
        return max(1, min(self.settings.batch_size, self.settings.batch_tokens // longest)), width

    def _width(self, longest: int) -> int:
        limit = max(longest, self.max_length)
        if self.static_shape and longest > self.static_shape[1] - FUSED_WIDTH_STEP:
            return self.static_shape[1]
        fused = -(-longest // FUSED_WIDTH_STEP) * FUSED_WIDTH_STEP
        if self._one_compilation and longest >= FUSED_ATTENTION_FROM and fused <= limit:
            return fused
        return min(-(-longest // WIDTH_STEP) * WIDTH_STEP, limit)

    def _compilation(self, rows: int, width: int) -> str:
        """Which compilation runs a batch of ``rows`` texts padded to ``width`` tokens."""
        if self._one_compilation:
            return FUSED
        static = self.static_shape
        return STATIC if static and width == static[1] and rows <= static[0] else UNFUSED

    def _prepared(self, feed: dict[str, np.ndarray]) -> tuple[str, list[np.ndarray]]:
        """The batch's compilation and its inputs in the export's order (a static one's rows filled up)."""
        inputs = [feed[n] for n in self.meta["inputs"]]
        kind = self._compilation(*inputs[0].shape)
        missing = self.static_shape[0] - len(inputs[0]) if kind == STATIC else 0
        if missing:
            inputs = [np.concatenate([a, np.repeat(a[-1:], missing, axis=0)]) for a in inputs]
        return kind, inputs

    def _forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        kind, inputs = self._prepared(feed)
        self.compiled_model(kind)
        return self._requests[kind].infer(inputs)[0][:len(feed[self.meta["inputs"][0]])]

    def _run(self, jobs, done) -> None:
        """Batches on an asynchronous queue of one request per stream; pooled as each finishes. Batches come
        longest first, so the queue changes compilation (static to unfused) at most once."""
        ov = require("openvino")
        if self.streams < 2:
            return super()._run(jobs, done)
        failed = []

        def finished(request, userdata):
            batch, mask = userdata
            try:
                done(batch, request.get_output_tensor(0).data[:len(mask)], mask)
            except Exception as exc:  # raised in the caller's thread below, not lost in OpenVINO's
                failed.append(exc)

        queue = kind = None
        for batch, feed, mask in jobs:
            wanted, inputs = self._prepared(feed)
            if queue is None or wanted != kind:
                if queue is not None:
                    queue.wait_all()
                kind = wanted
                queue = ov.AsyncInferQueue(self.compiled_model(kind), self.streams)
                queue.set_callback(finished)
            queue.start_async(inputs, (batch, mask))
        if queue is not None:
            queue.wait_all()
        if failed:
            raise failed[0]

    def feeds(self, texts: list[str]):
        """One unpadded feed per text (nncf's calibration items: no padding token in the ranges)."""
        for encoding in self.tokenizer.encode_batch_fast(list(texts)):
            yield self._inputs([encoding], np.array([len(encoding.ids)]), width=len(encoding.ids))[0]


def load_openvino_embedder(settings, sample=None) -> OpenVinoEmbedder:
    """The resolved ``settings``' export from the store (made on first use), ready to encode."""
    require("openvino")  # before an export that may take a while
    if settings.precision == "int8":
        return OpenVinoEmbedder(ensure_int8(settings, sample), settings)
    return OpenVinoEmbedder(ensure_ir(settings.ref), settings)
