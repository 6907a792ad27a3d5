"""Is bf16 safe here? The CPU's native bf16 support, and a once-per-model-and-machine fidelity verdict.

``--precision auto`` on a CPU with native bf16 (AVX512_BF16 or AMX) encodes in bf16: about twice as
fast as fp32 at a cosine of .9999 to it for BERT-family encoders. Some models may not survive bf16, so
before the first bf16 run of a model on a machine, :func:`bf16_verdict` encodes a small fixed sample
in both precisions and keeps the result in the export store; ``auto`` falls back to fp32 (saying so,
once) when the minimum cosine is below :data:`BF16_MIN_COSINE`. Later runs read the verdict: free.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from embedclf.encode.exports import ExportStore, entry_name

BF16_MIN_COSINE = 0.999
INT8_MIN_COSINE = 0.98  # an int8 export's least cosine to fp32 on its check sample (onnx and openvino)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
GUARD_RECIPE = "bf16-guard-v3"  # v2: both precisions with prepacked Linear layers; v3: and unpadded BERT
_SENTENCES = (
    "I am so happy for you, this is great news!", "Why would anyone do that?", "ok", "Thanks.",
    "The market fell sharply after the bank reported a loss on its loan book.",
    "My credit card was charged twice for the same purchase and the company refuses to refund it.",
    "Wheat and corn prices rose on fears of a poor harvest.", "lol what a terrible movie",
    "I don't know how to feel about this, honestly.", "Not bad at all, really enjoyed the film.",
    "Grain exports were lower than expected this quarter, traders said on Tuesday.",
    "This is the worst customer service I have ever experienced.",
)
# a fixed sample: short texts, and long ones (about 250 tokens), where bf16's rounding adds up most
GUARD_TEXTS = _SENTENCES + tuple(" ".join(_SENTENCES[i:] + _SENTENCES[:i]) * 2 for i in range(0, 12, 3))


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags the kernel reports (empty where there is no /proc/cpuinfo)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")) and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16() -> bool:
    """True on CPUs that compute in bf16 natively (AVX512_BF16 or AMX): there bf16 is faster than fp32."""
    return bool(set(BF16_FLAGS) & cpu_flags())


def bf16_verdict(settings, store: ExportStore | None = None) -> dict:
    """``{"ok", "mean_cosine", "min_cosine", ...}`` of bf16 against fp32 for ``settings``' model on this
    machine: computed once (torch, CPU, the fixed sample) and kept in the export store."""
    store = store or ExportStore()
    ref = settings.ref
    meta = {"model": ref.name, "fingerprint": ref.fingerprint, "backend": "torch", "precision": "bf16 guard",
            "recipe": GUARD_RECIPE, "threshold": BF16_MIN_COSINE}

    def measure(folder):
        from embedclf.console import status

        with status(f"checking bf16 against fp32 for {ref.name} (once per model on this machine)"):
            mean, least = _compare(settings)
        return {"mean_cosine": mean, "min_cosine": least, "ok": least >= BF16_MIN_COSINE}

    return store.ensure(entry_name(ref.fingerprint, "torch", GUARD_RECIPE), measure, meta).meta


def _compare(settings) -> tuple[float, float]:
    from embedclf.encode.backends.torch import TorchEmbedder
    from embedclf.encode.similarity import cosines

    fp32 = replace(settings, precision="fp32", device="cpu", normalize=True)
    embedder = TorchEmbedder(fp32)
    texts = list(GUARD_TEXTS)
    tokens = embedder.token_counts(texts)
    order = np.argsort(-tokens, kind="stable")
    sorted_texts, sorted_tokens = [texts[i] for i in order], tokens[order]
    reference = embedder.encode(sorted_texts, sorted_tokens)
    del embedder  # its weights are prepacked for fp32: bf16 is a second load, measured as it will run
    candidate = TorchEmbedder(replace(fp32, precision="bf16")).encode(sorted_texts, sorted_tokens)
    similarity = cosines(reference, candidate)
    return float(similarity.mean()), float(similarity.min())


def guarded_bf16(settings) -> str:
    """bf16 if this machine's verdict for ``settings``' model allows it, else fp32 (with one line on stderr
    saying why): what ``auto`` resolves to on a CPU with native bf16."""
    verdict = bf16_verdict(settings)
    if verdict.get("ok"):
        return "bf16"
    print(f"embedclf: {settings.ref.name}: bf16 min cosine {verdict.get('min_cosine', 0):.5f} to fp32 is below "
          f"{BF16_MIN_COSINE}; --precision auto uses fp32", file=sys.stderr)
    return "fp32"
