"""The model folder: how a fitted :class:`~embedclf.model.TextClassifier` is written and checked on reading.

``MODEL_DIR/model.json`` is a readable manifest (task, labels, head and parameters, thresholds, the
encoder's settings record, data options, validation metrics, versions, a sha256 per file);
``head.skops`` holds the fitted head in skops' format, which refuses to load any type it was not told
to trust, so a folder from a stranger cannot run code; ``features.skops`` the TF-IDF vectoriser of a
``tfidf`` or ``hybrid`` model (plain scikit-learn, loaded the same way); optional ``rules.json`` holds
co-occurrence rules; a fine-tuned model also bundles its transformer. Nothing here knows how to predict.

A folder is data from a stranger until it is checked: ``model.json`` is read and checked field by field in
:mod:`embedclf.manifest`; here every other file is checked against its sha256, file names and the bundled
encoder's path may not leave the folder, and the head must be one of embedclf's, fitted on the blocks the
manifest describes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path, PurePosixPath, PureWindowsPath

from embedclf.errors import EmbedclfError
from embedclf.manifest import (FORMAT, HEAD_FILE, MANIFEST, MANIFEST_CHECKSUM, RULES_FILE, field_error, plain_name,
                               refuse, shown, check_manifest, manifest_digest, read_manifest, sha256)

TRUSTED_PREFIXES = ("embedclf.heads.",)
# scikit-learn internals that skops does not trust by default but our heads hold (plain data, no code)
TRUSTED_TYPES = {"sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration",
                 "scipy.sparse._csr.csr_matrix"}  # a knn head's training rows on tfidf/hybrid features


# what model.py and the tests take from here, though it lives in manifest.py
__all__ = ["FORMAT", "HEAD_FILE", "MANIFEST", "MANIFEST_CHECKSUM", "RULES_FILE", "bundled_encoder",
           "check_feature_width", "check_head",
           "check_manifest", "jsonable", "load_head", "manifest_digest", "read_files", "read_manifest", "sha256",
           "versions", "write_folder"]


def versions() -> dict:
    found = {}
    for package in ("embedclf", "scikit-learn", "numpy", "torch", "sentence-transformers", "transformers", "skops"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


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
        manifest = json.loads(json.dumps(manifest))  # the digest is of what a reader will parse
        manifest.pop(MANIFEST_CHECKSUM, None)
        manifest[MANIFEST_CHECKSUM] = manifest_digest(manifest)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _share(staging)  # mkdtemp (and a bundle copied from one) is private; a model folder is for sharing
        _replace_directory(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def read_files(directory: str | Path, manifest: dict) -> dict[str, bytes]:
    """The files the manifest lists, each a plain file in the folder and checked against its checksum."""
    directory = Path(directory)
    blobs = {}
    for name, digest in manifest.get("files", {}).items():
        if not plain_name(name):
            raise refuse(directory, f"{MANIFEST} names a file outside the folder ({shown.repr(name)})")
        path = directory / name
        if path.is_symlink():
            raise refuse(directory, f"{name} is a symbolic link; a model folder holds plain files")
        if not path.is_file():
            raise refuse(directory, f"{name} is missing; the model folder is incomplete")
        try:
            blobs[name] = path.read_bytes()
        except OSError as exc:
            raise refuse(directory, f"{name} is unreadable ({exc.strerror or exc})") from None
        if sha256(blobs[name]) != digest:
            raise refuse(directory, f"{name} does not match its checksum in {MANIFEST}; "
                                     "the folder was modified after it was saved")
    if HEAD_FILE not in blobs:
        raise refuse(directory, f"{MANIFEST} lists no {HEAD_FILE}")
    return blobs


def check_head(directory: str | Path, head, layout) -> None:
    """The head is an embedclf head fitted on the blocks ``targets`` describe."""
    from embedclf.heads.base import BlockHead

    path = Path(directory) / MANIFEST
    if not isinstance(head, BlockHead):
        raise refuse(Path(directory) / HEAD_FILE, f"holds a {type(head).__name__}, not an embedclf head")
    try:
        fitted = tuple((str(kind), int(size)) for kind, size in head.layout_)
    except (AttributeError, TypeError, ValueError, OverflowError):
        raise refuse(Path(directory) / HEAD_FILE, "holds a head with no valid layout_; it is not a fitted "
                                                   "embedclf head") from None
    if fitted != tuple(layout):
        raise field_error(path, "targets", f"describe blocks {list(layout)} but {HEAD_FILE} was fitted on "
                                            f"{shown.repr(list(fitted))}")
    features = getattr(head, "n_features_in_", None)
    if features is not None and (not isinstance(features, int) or isinstance(features, bool) or features < 1):
        raise refuse(Path(directory) / HEAD_FILE, f"holds a head with n_features_in_ {shown.repr(features)}")


def check_feature_width(directory: str | Path, head, features: str, terms: int) -> None:
    """The head was fitted on as many columns as the vectoriser gives (hybrid: more, the embedding too)."""
    width = getattr(head, "n_features_in_", None)
    if width is not None and (width != terms if features == "tfidf" else width <= terms):
        raise refuse(Path(directory) / HEAD_FILE, f"was fitted on {width} columns, which the {features} features "
                                                   f"of {terms} TF-IDF terms do not give")


def load_head(directory: str | Path, data: bytes):
    """The head from skops bytes, refusing any type outside embedclf's heads and a few sklearn internals."""
    import skops.io as sio

    if not data:
        raise EmbedclfError(f"{directory}: {HEAD_FILE} is empty, not a skops file")
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
    """The path of a bundled (fine-tuned) transformer: a relative path to a folder inside the model
    folder, with no ``..``, and no symbolic link in it leading out of the folder."""
    encoder = manifest["encoder"]
    if not encoder.get("bundled"):
        return None
    where = Path(directory) / MANIFEST
    name = encoder.get("model")
    if not isinstance(name, str) or not name or "\0" in name or not name.isprintable():
        raise field_error(where, "encoder.model", f"is no path of a bundled encoder ({shown.repr(name)})")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if (PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive
            or name.startswith(("~", "/", "\\")) or ".." in parts):
        raise field_error(where, "encoder.model", f"points the bundled encoder outside the folder ({shown.repr(name)})")
    root = Path(directory).resolve()
    try:
        path = (root / name).resolve()
    except (OSError, RuntimeError):
        raise field_error(where, "encoder.model", f"is no usable path ({shown.repr(name)})") from None
    if root not in path.parents:
        raise field_error(where, "encoder.model", f"points the bundled encoder outside the folder ({shown.repr(name)})")
    if not path.is_dir():
        raise refuse(Path(directory), f"the bundled encoder {name} is missing; the model folder is incomplete")
    if (path / MANIFEST).exists() or (path / MANIFEST).is_symlink():  # the encoder would follow it unchecked
        raise refuse(Path(directory), f"the bundled encoder {name} holds a {MANIFEST} of its own; refusing it")
    for folder, dirs, files in os.walk(path):
        for entry in dirs + files:
            link = Path(folder) / entry
            if link.is_symlink() and root not in link.resolve().parents:
                raise refuse(Path(directory), f"{link.relative_to(root)} links outside the model folder")
    return str(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _share(root: Path) -> None:
    """The usual permissions (0755 folders, 0644 files under umask 022) for everything under ``root``."""
    mask = _umask()
    os.chmod(root, 0o777 & ~mask)
    for folder, dirs, names in os.walk(root):
        for name in dirs:
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), 0o777 & ~mask)
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, (0o777 if os.stat(path).st_mode & 0o100 else 0o666) & ~mask)


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
