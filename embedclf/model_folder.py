"""The model folder: how a fitted :class:`~embedclf.model.TextClassifier` is written and checked on reading.

``MODEL_DIR/model.json`` is a readable manifest (task, labels, head and parameters, thresholds, the
encoder's settings record, data options, validation metrics, versions, a sha256 per file);
``head.skops`` holds the fitted head in skops' format, which refuses to load any type it was not told
to trust, so a folder from a stranger cannot run code; optional ``rules.json`` holds co-occurrence
rules; a fine-tuned model also bundles its transformer. Nothing here knows how to predict.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from embedclf.errors import EmbedclfError

FORMAT = "embedclf-model/1"
MANIFEST, HEAD_FILE, RULES_FILE = "model.json", "head.skops", "rules.json"
TRUSTED_PREFIXES = ("embedclf.heads.",)
# scikit-learn internals that skops does not trust by default but our heads hold (plain data, no code)
TRUSTED_TYPES = {"sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration"}


def versions() -> dict:
    found = {}
    for package in ("embedclf", "scikit-learn", "numpy", "torch", "sentence-transformers", "transformers", "skops"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_folder(directory: str | Path, manifest: dict, files: dict[str, bytes],
                 bundle: dict[str, Path] | None = None) -> Path:
    """Write ``manifest`` and ``files`` (name -> bytes) as a model folder; an existing one is replaced only
    once the new one is complete. ``bundle`` copies folders in (a fine-tuned transformer)."""
    directory = Path(directory)
    if directory.exists() and not (directory / MANIFEST).exists() and any(directory.iterdir()):
        raise EmbedclfError(f"{directory}: exists and is not an embedclf model folder; not overwriting it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        for name, source in (bundle or {}).items():
            shutil.copytree(source, staging / name)
            manifest["encoder"] |= {"model": name, "bundled": True}
        for name, data in files.items():
            (staging / name).write_bytes(data)
        manifest["files"] = {name: sha256(data) for name, data in files.items()}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        os.chmod(staging, 0o755 & ~_umask())  # mkdtemp makes it private; a model folder is for sharing
        _replace_directory(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    if not Path(directory).is_dir():
        raise EmbedclfError(f"{directory}: no such model folder")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise EmbedclfError(f"{directory}: not an embedclf model folder (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise EmbedclfError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise EmbedclfError(f"{path}: not an embedclf model manifest (format {manifest.get('format')!r})"
                            if isinstance(manifest, dict) else f"{path}: not an embedclf model manifest")
    for key in ("targets", "encoder", "thresholds", "files"):
        if key not in manifest:
            raise EmbedclfError(f"{path}: manifest lacks {key!r}")
    return manifest


def read_files(directory: str | Path, manifest: dict) -> dict[str, bytes]:
    """The files the manifest lists, each checked against its checksum."""
    directory = Path(directory)
    blobs = {}
    for name, digest in manifest.get("files", {}).items():
        if Path(name).name != name:
            raise EmbedclfError(f"{directory}: {MANIFEST} names a file outside the folder ({name!r})")
        try:
            blobs[name] = (directory / name).read_bytes()
        except OSError:
            raise EmbedclfError(f"{directory}: {name} is missing; the model folder is incomplete") from None
        if sha256(blobs[name]) != digest:
            raise EmbedclfError(f"{directory}: {name} does not match its checksum in {MANIFEST}; "
                                "the folder was modified after it was saved")
    if HEAD_FILE not in blobs:
        raise EmbedclfError(f"{directory}: {MANIFEST} lists no {HEAD_FILE}")
    return blobs


def load_head(directory: str | Path, data: bytes):
    """The head from skops bytes, refusing any type outside embedclf's heads and a few sklearn internals."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise EmbedclfError(f"{directory}: {HEAD_FILE} is not a skops file ({' '.join(str(exc).split())[:120]})") from None
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES) and t not in TRUSTED_TYPES]
    if refused:
        raise EmbedclfError(f"{directory}: {HEAD_FILE} holds types embedclf does not trust "
                            f"({', '.join(refused[:5])}); refusing to load it")
    try:
        return sio.loads(data, trusted=untrusted)
    except Exception as exc:
        raise EmbedclfError(f"{directory}: cannot load {HEAD_FILE} ({' '.join(str(exc).split())[:200]})") from None


def bundled_encoder(directory: str | Path, manifest: dict) -> str | None:
    """The path of a bundled (fine-tuned) transformer, which must lie inside the folder."""
    encoder = manifest["encoder"]
    if not encoder.get("bundled"):
        return None
    directory = Path(directory).resolve()
    path = (directory / str(encoder["model"])).resolve()
    if directory not in path.parents:
        raise EmbedclfError(f"{directory}: {MANIFEST} points its bundled encoder outside the folder")
    return str(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace_directory(staging: Path, directory: Path) -> None:
    """Swap ``staging`` in for ``directory`` with renames, so a reader never sees half a model."""
    if not directory.exists():
        os.replace(staging, directory)
        return
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    os.replace(directory, old)
    os.replace(staging, directory)
    shutil.rmtree(old, ignore_errors=True)


def jsonable(value):
    """Estimator parameters as JSON: numbers and strings as they are, anything else as its repr."""
    import numpy as np

    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
