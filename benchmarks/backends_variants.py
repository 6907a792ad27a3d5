"""What runs inside one variant's process for ``backends.py``: the texts, an encoder per variant (embedclf's
backends and the peers), the timing, the exports made once before the rounds, and fastembed's child.

Peers: plain ``SentenceTransformer`` (the baseline); OpenVINO static int8 the way its documentation sets up
a transformer (nncf's defaults with ``model_type=TRANSFORMER``, as optimum-intel does; without it the int8
model's cosine to fp32 fell to .29), calibrated on 400 local texts, compiled with OpenVINO's defaults;
fastembed on embedclf's int8 ONNX export, in a Python of its own. sentence-transformers' own
``backend="onnx"``/``"openvino"`` need optimum, which does not install beside this venv's transformers:
``backends_st_peer`` runs them in a Python of their own.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

THREADS, BATCH_SIZE, MAX_LENGTH, WARMUP, CALIBRATION = 2, 32, 256, 48, 400
ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
PEER_FOLDER = "ov-nncf-default"  # the peer's int8 IR, in the benchmark's temporary export store


def texts(kind: str, n: int, skip: int = 0) -> tuple[list[str], list[str]]:
    """``n`` measured texts (after ``skip``) and ``WARMUP`` others of one kind (short: GoEmotions; long:
    CFPB narratives)."""
    import pandas as pd

    if kind == "short":
        frame = pd.read_csv(SHARED / "goemotions" / "train.tsv", sep="\t", header=None, quoting=3)
        pool = frame[0].astype(str).tolist()
    else:
        frame = pd.read_csv(SHARED / "cfpb-complaints" / "complaints.csv")
        pool = frame["Consumer complaint narrative"].dropna().astype(str).tolist()
    pool = pool[skip:]
    return pool[:n], pool[n:n + WARMUP]


def measure_refused_int8() -> None:
    """embedclf refuses onnx int8 of the default model (min cosine .971 < .98 on its check sample); the
    benchmark measures it anyway, as a row to compare with. openvino int8 keeps its guard."""
    import embedclf.encode.backends.openvino  # noqa: F401  (imported first, it keeps its .98: openvino int8 is guarded)
    from embedclf.encode import guard

    guard.INT8_MIN_COSINE = 0.0


def encoder_for(variant: str):
    """In the child: a function texts -> normalised vectors for ``variant``, and what embedclf resolved to."""
    name, precision = variant.split()
    if name == "st":
        from sentence_transformers import SentenceTransformer

        from benchmarks.encode import model_path

        model = SentenceTransformer(str(model_path()), device="cpu")
        model.max_seq_length = MAX_LENGTH
        return (lambda batch: model.encode(batch, batch_size=BATCH_SIZE, normalize_embeddings=True)), None
    if name == "fastembed":
        raise RuntimeError("fastembed runs in its own Python (--fastembed-python)")
    if name == "ov-nncf-default":
        return peer_encoder(), None
    from embedclf.encode.encoder import Encoder

    measure_refused_int8()
    options = {} if name == "embedclf" else {"backend": name, "precision": precision}
    encoder = Encoder(**options, batch_size=BATCH_SIZE, max_length=MAX_LENGTH, device="cpu", cache=False,
                      progress=False)
    return encoder.encode, f"{encoder.backend} {encoder.precision}"


def peer_encoder():
    """The nncf-default int8 IR, compiled with OpenVINO's defaults, one request; embedclf's tokenising,
    length-sorted batches and pooling around it (so the row compares the quantisation and compilation)."""
    import openvino as ov

    from embedclf.encode.backends.exported import ExportedEmbedder
    from embedclf.encode.settings import EncoderSettings

    class Peer(ExportedEmbedder):
        def _start(self, directory):
            self.request = ov.Core().compile_model(str(directory / "model.xml"), "CPU").create_infer_request()

        def _forward(self, feed):
            return self.request.infer([feed[n] for n in self.meta["inputs"]])[0]

    settings = EncoderSettings(backend="openvino", precision="fp32", max_length=MAX_LENGTH,
                               batch_size=BATCH_SIZE).resolve()
    return Peer(Path(os.environ["EMBEDCLF_EXPORTS"]) / PEER_FOLDER, settings).encode


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


def prepare(store: str) -> dict:
    """Make every export once (timed; the int8 ones calibrated on the first 400 short texts, as a user's
    first run would), the peer's nncf-default int8 IR, and a folder fastembed can read."""
    import shutil

    import nncf
    import openvino as ov

    from embedclf.encode.backends.openvino import OpenVinoEmbedder, ensure_ir
    from embedclf.encode.encoder import Encoder

    measure_refused_int8()
    sample, _ = texts("short", CALIBRATION)
    times = {}
    for backend, precision in (("torch", "auto"), ("onnx", "int8"), ("openvino", "bf16"), ("openvino", "int8")):
        start = time.perf_counter()
        encoder = Encoder(backend=backend, precision=precision, cache=False, progress=False)
        encoder._load_embedder(sample)
        times[f"{backend} {precision}"] = time.perf_counter() - start
    start = time.perf_counter()
    source = ensure_ir(encoder.ref)
    fp32 = OpenVinoEmbedder(source, Encoder(backend="openvino", precision="fp32").settings)
    items = [[feed[n] for n in fp32.meta["inputs"]] for feed in fp32.feeds(sample)]
    quantized = nncf.quantize(ov.Core().read_model(str(source / "model.xml")), nncf.Dataset(items),
                              subset_size=len(items), model_type=nncf.ModelType.TRANSFORMER)
    peer = Path(store) / PEER_FOLDER
    peer.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(peer / "model.xml"), compress_to_fp16=False)
    for name in ("tokenizer.json", "embedclf-onnx.json"):
        shutil.copyfile(source / name, peer / name)
    times["ov-nncf-default int8"] = time.perf_counter() - start
    return {"prepare_seconds": times}


FASTEMBED_CHILD = """
import json, sys, time, numpy as np
from fastembed import TextEmbedding
from fastembed.common.model_description import ModelSource, PoolingType
folder, texts, out, sizes = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
TextEmbedding.add_custom_model("embedclf/int8", pooling=PoolingType.MEAN, normalization=True,
                               sources=ModelSource(hf="embedclf/int8"), dim=384, model_file="model.onnx")
model = TextEmbedding("embedclf/int8", specific_model_path=folder, threads=2)
result = {}
for kind, n in sizes.items():
    measured, warmup = json.load(open(f"{texts}-{kind}.json"))
    list(model.embed(warmup, batch_size=32))
    start = time.perf_counter()
    X = np.array(list(model.embed(measured, batch_size=32)), dtype=np.float32)
    seconds = time.perf_counter() - start
    np.save(f"{out}-{kind}.npy", X)
    result[kind] = {"seconds": seconds, "texts_per_second": n / seconds}
result["peak_rss_mb"] = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(json.dumps(result))
"""


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


if __name__ == "__main__":
    sys.exit("run benchmarks/backends.py")
