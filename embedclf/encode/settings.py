"""What an encoder computes and how it batches: one frozen, validated settings object.

:class:`EncoderSettings` is built once (by the command line, the Python API or a model folder's
manifest), checked in ``__post_init__``, and then handed around unchanged: the :class:`Encoder`
runs it, the cache keys its vectors by :meth:`EncoderSettings.cache_key`, a model folder records it
with :meth:`EncoderSettings.to_record`, and Ray actors receive it as it is.

Settings are *requested* (``pooling=None`` means "the model's own", ``precision="auto"`` the
best for the device) until :meth:`EncoderSettings.resolve` fills every choice in from the model's
files and the hardware. Only resolved settings have a cache key: it names the model by the
fingerprint of its files, never by the spelling the user typed, so ``all-MiniLM-L6-v2``, its hub id
and a local copy of the same files share one cache space.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import Enum

from embedclf.encode import guard
from embedclf.encode.batching import BATCH_TOKENS_PER_TEXT
from embedclf.encode.models import DEFAULT_MODEL, ModelRef, resolve_device, resolve_model
from embedclf.errors import EmbedclfError


class Backend(str, Enum):
    """What runs the transformer."""

    torch = "torch"  # sentence-transformers on torch, CPU or CUDA
    onnx = "onnx"  # onnxruntime on the CPU, from an export made on first use (embedclf[onnx])
    openvino = "openvino"  # OpenVINO on the CPU, from an export made on first use (embedclf[openvino])


class Precision(str, Enum):
    auto = "auto"  # torch: fp16 on CUDA, bf16 on a CPU with native bf16 (guarded), else fp32; onnx: fp32
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"
    int8 = "int8"


class Pooling(str, Enum):
    mean = "mean"
    cls = "cls"
    max = "max"


# The int8 recipe's name (see backends/onnx.py): it names the export folder and is part of the int8 cache
# space's key, so vectors of an older recipe are never mixed with the current one's. Change it with the recipe.
INT8_RECIPE = "int8-v2"
OV_INT8_RECIPE = "ov-int8-v5"  # the openvino backend's (backends/openvino.py): static, calibrated on local texts
# torch's int8 is no torch path: it resolves to the fastest int8 backend installed (see int8_backend)
PRECISIONS = {"torch": ("auto", "fp32", "fp16", "bf16", "int8"), "onnx": ("auto", "fp32", "int8"),
              "openvino": ("auto", "fp32", "bf16", "int8")}
CPU_BACKENDS = ("onnx", "openvino")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    import importlib.util
    import sys

    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def int8_backend() -> str:
    """The fastest int8 path installed: OpenVINO's static int8 (measured 1.3-2x onnxruntime's dynamic int8
    on a Zen 4 CPU), else onnxruntime's."""
    if installed("openvino") and installed("nncf"):
        return "openvino"
    if installed("onnxruntime"):
        return "onnx"
    raise EmbedclfError("--precision int8 needs an int8 backend; run: pip install 'embedclf[openvino]' "
                        "(or 'embedclf[onnx]')")


def _value(choice):
    return choice.value if isinstance(choice, Enum) else choice


def auto_precision(backend: str, device: str, native_bf16: bool = False) -> str:
    """The one rule for ``precision='auto'``: fp16 for torch on CUDA; bf16 for torch on a CPU that
    computes bf16 natively (``native_bf16``: AVX512_BF16 or AMX), where it is about twice as fast as
    fp32; fp32 everywhere else. A bf16 choice is then checked once per model and machine (``guard``)."""
    if backend == "torch" and device.startswith("cuda"):
        return "fp16"
    return "bf16" if backend in ("torch", "openvino") and device == "cpu" and native_bf16 else "fp32"


@dataclass(frozen=True)
class EncoderSettings:
    """Model, pooling, length, normalisation, backend, precision, device and batch policy of an encoder.

    ``model`` is a Hugging Face id or a local directory (default: all-MiniLM-L6-v2, installed with
    embedclf). ``pooling`` and ``max_length`` default to the model's own. Texts are encoded longest
    first, ``batch_size`` per forward pass, fewer where a batch would exceed ``max_batch_tokens``
    padded tokens (default 64 per text of a full batch), and committed to the cache every
    ``chunk_size`` texts.
    """

    model: str = DEFAULT_MODEL
    pooling: str | None = None
    max_length: int | None = None
    normalize: bool = True
    backend: str = "torch"
    precision: str = "auto"
    device: str = "auto"
    batch_size: int = 32
    max_batch_tokens: int | None = None
    chunk_size: int = 1024
    # filled in by resolve(): the model's files and what they are
    ref: ModelRef | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        for name in ("pooling", "backend", "precision"):
            object.__setattr__(self, name, _value(getattr(self, name)))
        object.__setattr__(self, "model", str(self.model))
        if self.pooling is not None and self.pooling not in Pooling.__members__:
            raise EmbedclfError(f"--pooling {self.pooling!r} is not one of: {', '.join(Pooling.__members__)}")
        if self.backend not in PRECISIONS:
            raise EmbedclfError(f"--backend {self.backend!r} is not one of: {', '.join(PRECISIONS)}")
        allowed = PRECISIONS[self.backend]
        if self.precision not in allowed:
            known = self.precision in Precision.__members__
            what = (f"--precision {self.precision} is not available with the {self.backend} backend" if known
                    else f"--precision {self.precision!r} is unknown")
            raise EmbedclfError(f"{what}; expected one of: {', '.join(allowed)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise EmbedclfError(f"--device {self.device!r} is not one of: auto, cpu, cuda, cuda:N")
        if self.backend in CPU_BACKENDS and self.device not in ("auto", "cpu"):
            raise EmbedclfError(f"the {self.backend} backend runs on the CPU, not on {self.device}; "
                                "use --device cpu, or --backend torch")
        if self.precision == "int8" and self.device not in ("auto", "cpu"):
            raise EmbedclfError(f"--precision int8 runs on the CPU, not on {self.device}; use --device cpu")
        _positive("--batch-size", self.batch_size)
        _positive("--chunk-size", self.chunk_size)
        _positive("--max-batch-tokens", self.max_batch_tokens, optional=True)
        _positive("--max-length", self.max_length, optional=True, least=2)
        if self.ref is not None and self.max_length is not None and self.max_length > self.ref.position_limit:
            raise EmbedclfError(f"--max-length {self.max_length} is above the {self.ref.position_limit} tokens "
                                f"model {self.model} can take")

    # -- resolving -----------------------------------------------------------------------------
    @property
    def resolved(self) -> bool:
        return self.ref is not None

    def resolve(self, memo_file=None, *, device: str | None = None) -> "EncoderSettings":
        """Every choice made: the model's files found and fingerprinted, its own pooling and length
        where none was asked for, the device, and the precision ``auto`` stands for there.

        ``device`` resolves for other hardware than this process's (a Ray actor's GPU). Only the
        device needs torch, and only for ``auto`` or ``cuda``; and ``auto`` precision on a CPU with
        native bf16, the first time a model meets this machine (see ``guard``).
        """
        if self.resolved and device is None:
            return self
        ref = self.ref or resolve_model(self.model, memo_file)
        elsewhere = device not in (None, "auto")  # another machine's device: taken as given, not probed here
        device = device or self.device
        backend = int8_backend() if self.backend == "torch" and self.precision == "int8" else self.backend
        if backend in CPU_BACKENDS or device == "cpu":
            device = "cpu"
        elif not elsewhere:
            device = resolve_device(device)
        resolved = replace(self, ref=ref, pooling=self.pooling or ref.pooling,
                           max_length=self.max_length or ref.max_length, device=device, backend=backend)
        if self.precision != "auto":
            return resolved
        # another machine's CPU (a Ray actor's) cannot be probed from here: fp32 there
        native = device == "cpu" and not elsewhere and guard.native_bf16()
        precision = auto_precision(backend, device, native)
        if precision == "bf16":  # the fidelity verdict: computed once per model and machine, then read
            precision = guard.guarded_bf16(replace(resolved, precision="bf16"))
        return replace(resolved, precision=precision)

    def _require_resolved(self) -> ModelRef:
        if self.ref is None:
            raise ValueError("resolve() the settings first")
        return self.ref

    @property
    def fingerprint(self) -> str:
        return self._require_resolved().fingerprint

    @property
    def batch_tokens(self) -> int:
        """The padded-token cap per forward pass (see ``encode.batching.capped_batches``)."""
        return self.max_batch_tokens or BATCH_TOKENS_PER_TEXT * self.batch_size

    # -- the three uses ------------------------------------------------------------------------
    def cache_key(self) -> dict:
        """Everything that changes a vector, and nothing else: the id of this encoder's cache space."""
        ref = self._require_resolved()
        key = {"fingerprint": ref.fingerprint, "pooling": self.pooling, "max_length": self.max_length,
               "normalize": self.normalize, "precision": self.precision, "backend": self.backend}
        if self.precision == "int8":  # a new recipe makes new vectors: a space of their own
            key["quantization"] = OV_INT8_RECIPE if self.backend == "openvino" else INT8_RECIPE
        return key

    def to_record(self) -> dict:
        """What a model folder's manifest keeps: the cache key, the model's name and the batch policy.

        The device is left out (a model fitted on a GPU predicts on a CPU); so is the precision
        ``auto`` resolved to, when it was a device's choice: see :meth:`from_record`.
        """
        self._require_resolved()
        return {"model": self.model, **self.cache_key(), "batch_size": self.batch_size,
                "max_batch_tokens": self.max_batch_tokens, "chunk_size": self.chunk_size}

    @classmethod
    def from_record(cls, record: dict, **overrides) -> "EncoderSettings":
        """Requested settings that re-create a recorded encoder (check with :meth:`check_matches`)."""
        known = {f.name for f in fields(cls)} - {"ref"}
        values = {k: v for k, v in record.items() if k in known}
        values.setdefault("backend", "torch")  # records older than the onnx backend
        return cls(**(values | {k: v for k, v in overrides.items() if v is not None}))

    def check_matches(self, record: dict, where: str) -> None:
        """Refuse to use these (resolved) settings for vectors recorded with another model."""
        if self.fingerprint != record.get("fingerprint"):
            raise EmbedclfError(
                f"{where}: fitted on embeddings of model {record.get('model')} [{str(record.get('fingerprint'))[:12]}], "
                f"but {self.model} is [{self.fingerprint[:12]}] here; pass --model with the original model")

    def describe(self) -> str:
        """The setting in a few words, for summary lines."""
        if not self.resolved:
            return f"{self.model}, {self.backend} {self.precision}"
        return (f"{self.model} ({self.fingerprint[:12]}), {self.pooling} pooling, max {self.max_length} tokens, "
                f"{self.backend} {self.precision}")



def _positive(option: str, value, *, optional: bool = False, least: int = 1) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise EmbedclfError(f"{option} must be an integer of at least {least}, got {value!r}")
