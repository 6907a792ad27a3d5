"""The model folder: how a fitted :class:`~embedclf.model.TextClassifier` is written and checked on reading.

``MODEL_DIR/model.json`` is a readable manifest (task, labels, head and parameters, thresholds, the
encoder's settings record, data options, validation metrics, versions, a sha256 per file);
``head.skops`` holds the fitted head in skops' format, which refuses to load any type it was not told
to trust, so a folder from a stranger cannot run code; optional ``rules.json`` holds co-occurrence
rules; a fine-tuned model also bundles its transformer. Nothing here knows how to predict.

A folder is data from a stranger until it is checked: ``manifest_sha256`` in ``model.json`` is the sha256
of the manifest's canonical JSON without that field (sorted keys, no spaces, ASCII), so an edited,
truncated or replaced ``model.json`` is refused, as is any file whose sha256 differs from ``files``.
Folders of 0.1.0 have no ``manifest_sha256``; they still load (their files are still checked). Every
manifest field is checked for its type and consistency before any other file is read, file names and
the bundled encoder's path may not leave the folder, and each refusal is one :class:`EmbedclfError`
line naming the file (and the field). A checksum finds corruption and careless edits; it is no signature.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import reprlib
import shutil
import tempfile
from importlib import metadata
from pathlib import Path, PurePosixPath, PureWindowsPath

from embedclf.errors import EmbedclfError
from embedclf.labels import MULTICLASS, MULTILABEL, MULTIOUTPUT, TASK_KINDS

FORMAT = "embedclf-model/1"
MANIFEST, HEAD_FILE, RULES_FILE = "model.json", "head.skops", "rules.json"
TRUSTED_PREFIXES = ("embedclf.heads.",)
# scikit-learn internals that skops does not trust by default but our heads hold (plain data, no code)
TRUSTED_TYPES = {"sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration"}
MANIFEST_CHECKSUM = "manifest_sha256"
MAX_MANIFEST_BYTES = 64 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_show = reprlib.Repr()
_show.maxstring, _show.maxother, _show.maxlist, _show.maxdict, _show.maxlevel = 40, 40, 4, 4, 2


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


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON, leaving out its own ``manifest_sha256``."""
    body = {key: value for key, value in manifest.items() if key != MANIFEST_CHECKSUM}
    return sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())


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


def _refuse(where, message: str) -> EmbedclfError:
    """One line: ``where: message``, whatever the message holds."""
    return EmbedclfError(re.sub(r"\s*[\r\n]+\s*", " ", f"{where}: {message}"))


def read_manifest(directory: str | Path) -> dict:
    """``model.json``, parsed, checked against its ``manifest_sha256`` and checked field by field."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise EmbedclfError(f"{directory}: no such model folder")
    if path.is_symlink():
        raise _refuse(path, "is a symbolic link; a model folder holds plain files")
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise EmbedclfError(f"{directory}: not an embedclf model folder (no {MANIFEST})") from None
    except OSError as exc:
        raise _refuse(path, f"unreadable manifest ({exc.strerror or exc})") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise _refuse(path, f"unreadable manifest (larger than {MAX_MANIFEST_BYTES >> 20} MiB)")
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _refuse(path, f"unreadable manifest ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _refuse(path, f"not an embedclf model manifest (format {_show.repr(manifest.get('format'))})"
                      if isinstance(manifest, dict) else "not an embedclf model manifest")
    if MANIFEST_CHECKSUM in manifest:  # absent: a folder of 0.1.0, whose files are still checksummed
        try:
            digest = manifest_digest(manifest)
        except (ValueError, TypeError, RecursionError):
            digest = None
        if manifest[MANIFEST_CHECKSUM] != digest:
            raise _refuse(path, f"does not match its checksum ({MANIFEST_CHECKSUM}); "
                                "the manifest was modified after it was saved")
    check_manifest(path, manifest)
    return manifest


def _field_error(path, field: str, message: str) -> EmbedclfError:
    return _refuse(path, f"field {field!r} {message}")


def _expect(path, field: str, value, kind, what: str):
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise _field_error(path, field, f"must be {what}, got {_show.repr(value)}")
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_manifest(path, manifest: dict) -> None:
    """Types, ranges and consistency of every field ``load`` uses; one line naming the field otherwise."""
    for key in ("targets", "encoder", "thresholds", "files"):
        if key not in manifest:
            raise _refuse(path, f"manifest lacks {key!r}")
    targets = _expect(path, "targets", manifest["targets"], list, "a list of targets")
    if not targets:
        raise _field_error(path, "targets", "is empty")
    names = set()
    for i, target in enumerate(targets):
        field = f"targets[{i}]"
        _expect(path, field, target, dict, "an object with name, kind and classes")
        for key in ("name", "kind", "classes"):
            if key not in target:
                raise _field_error(path, field, f"lacks {key!r}")
        name = _expect(path, f"{field}.name", target["name"], str, "a string")
        if name in names:
            raise _field_error(path, f"{field}.name", f"repeats target {_show.repr(name)}")
        names.add(name)
        if target["kind"] not in (MULTICLASS, MULTILABEL):
            raise _field_error(path, f"{field}.kind", f"is {_show.repr(target['kind'])}, not one of: "
                                                       f"{MULTICLASS}, {MULTILABEL}")
        classes = _expect(path, f"{field}.classes", target["classes"], list, "a list of class names")
        if not classes or not all(isinstance(c, str) for c in classes):
            raise _field_error(path, f"{field}.classes", f"must be a non-empty list of strings, got "
                                                          f"{_show.repr(classes)}")
        if len(set(classes)) != len(classes):
            raise _field_error(path, f"{field}.classes", "names a class twice")
    kinds = [target["kind"] for target in targets]
    expected_task = MULTIOUTPUT if len(targets) > 1 else kinds[0]
    if "task" in manifest:
        task = manifest["task"]
        if task not in TASK_KINDS:
            raise _field_error(path, "task", f"is {_show.repr(task)}, not one of: {', '.join(TASK_KINDS)}")
        if task != expected_task:
            raise _field_error(path, "task", f"is {task} but 'targets' describe a {expected_task} task")
    n_columns = sum(len(target["classes"]) for target in targets)
    thresholds = _expect(path, "thresholds", manifest["thresholds"], list, "a list of numbers")
    if len(thresholds) != n_columns:
        raise _field_error(path, "thresholds", f"has {len(thresholds)} values for the {n_columns} label columns "
                                               "of 'targets'")
    for value in thresholds:
        if not _is_number(value) or not math.isfinite(value) or not 0 <= value <= 1:
            raise _field_error(path, "thresholds", f"must hold numbers from 0 to 1, got {_show.repr(value)}")
    if "at_least_one" in manifest:
        _expect(path, "at_least_one", manifest["at_least_one"], bool, "true or false")
    encoder = _expect(path, "encoder", manifest["encoder"], dict, "an object")
    _expect(path, "encoder.model", encoder.get("model"), str, "a string")
    if not encoder["model"]:
        raise _field_error(path, "encoder.model", "is empty")
    _expect(path, "encoder.fingerprint", encoder.get("fingerprint"), str, "a string")
    if "bundled" in encoder:
        _expect(path, "encoder.bundled", encoder["bundled"], bool, "true or false")
    for key in ("data", "info", "versions", "head"):
        if key in manifest:
            _expect(path, key, manifest[key], dict, "an object")
    files = _expect(path, "files", manifest["files"], dict, "an object of file name: sha256")
    for name, digest in files.items():
        if not _plain_name(name):
            raise _field_error(path, "files", f"names a file outside the folder ({_show.repr(name)})")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise _field_error(path, "files", f"holds no sha256 for {name} ({_show.repr(digest)})")
    if HEAD_FILE not in files:
        raise _field_error(path, "files", f"lists no {HEAD_FILE}")


def _plain_name(name) -> bool:
    """A file name in the folder itself: no separators, no ``..``, nothing absolute, no odd characters."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and ":" not in name and name.isprintable())


def read_files(directory: str | Path, manifest: dict) -> dict[str, bytes]:
    """The files the manifest lists, each a plain file in the folder and checked against its checksum."""
    directory = Path(directory)
    blobs = {}
    for name, digest in manifest.get("files", {}).items():
        if not _plain_name(name):
            raise _refuse(directory, f"{MANIFEST} names a file outside the folder ({_show.repr(name)})")
        path = directory / name
        if path.is_symlink():
            raise _refuse(directory, f"{name} is a symbolic link; a model folder holds plain files")
        if not path.is_file():
            raise _refuse(directory, f"{name} is missing; the model folder is incomplete")
        try:
            blobs[name] = path.read_bytes()
        except OSError as exc:
            raise _refuse(directory, f"{name} is unreadable ({exc.strerror or exc})") from None
        if sha256(blobs[name]) != digest:
            raise _refuse(directory, f"{name} does not match its checksum in {MANIFEST}; "
                                     "the folder was modified after it was saved")
    if HEAD_FILE not in blobs:
        raise _refuse(directory, f"{MANIFEST} lists no {HEAD_FILE}")
    return blobs


def check_head(directory: str | Path, head, layout) -> None:
    """The head is an embedclf head fitted on the blocks ``targets`` describe."""
    from embedclf.heads.base import BlockHead

    path = Path(directory) / MANIFEST
    if not isinstance(head, BlockHead):
        raise _refuse(Path(directory) / HEAD_FILE, f"holds a {type(head).__name__}, not an embedclf head")
    try:
        fitted = tuple((str(kind), int(size)) for kind, size in head.layout_)
    except (AttributeError, TypeError, ValueError, OverflowError):
        raise _refuse(Path(directory) / HEAD_FILE, "holds a head with no valid layout_; it is not a fitted "
                                                   "embedclf head") from None
    if fitted != tuple(layout):
        raise _field_error(path, "targets", f"describe blocks {list(layout)} but {HEAD_FILE} was fitted on "
                                            f"{_show.repr(list(fitted))}")
    features = getattr(head, "n_features_in_", None)
    if features is not None and (not isinstance(features, int) or isinstance(features, bool) or features < 1):
        raise _refuse(Path(directory) / HEAD_FILE, f"holds a head with n_features_in_ {_show.repr(features)}")


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
        raise _field_error(where, "encoder.model", f"is no path of a bundled encoder ({_show.repr(name)})")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if (PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive
            or name.startswith(("~", "/", "\\")) or ".." in parts):
        raise _field_error(where, "encoder.model", f"points the bundled encoder outside the folder ({_show.repr(name)})")
    root = Path(directory).resolve()
    try:
        path = (root / name).resolve()
    except (OSError, RuntimeError):
        raise _field_error(where, "encoder.model", f"is no usable path ({_show.repr(name)})") from None
    if root not in path.parents:
        raise _field_error(where, "encoder.model", f"points the bundled encoder outside the folder ({_show.repr(name)})")
    if not path.is_dir():
        raise _refuse(Path(directory), f"the bundled encoder {name} is missing; the model folder is incomplete")
    if (path / MANIFEST).exists() or (path / MANIFEST).is_symlink():  # the encoder would follow it unchecked
        raise _refuse(Path(directory), f"the bundled encoder {name} holds a {MANIFEST} of its own; refusing it")
    for folder, dirs, files in os.walk(path):
        for entry in dirs + files:
            link = Path(folder) / entry
            if link.is_symlink() and root not in link.resolve().parents:
                raise _refuse(Path(directory), f"{link.relative_to(root)} links outside the model folder")
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
