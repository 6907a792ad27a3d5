"""``model.json``, the model folder's manifest: reading it, its own checksum, and every field checked.

``manifest_sha256`` in ``model.json`` is the sha256 of the manifest's canonical JSON without that field
(sorted keys, no spaces, ASCII), so an edited, truncated or replaced ``model.json`` is refused. Folders
of 0.1.0 have no ``manifest_sha256``; they still load (their files are still checked). Every field
``TextClassifier.load`` uses is checked for its type and consistency before any other file is read,
and each refusal is one :class:`EmbedclfError` line naming ``model.json`` and the field. A checksum
finds corruption and careless edits; it is no signature.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import reprlib
from pathlib import Path

from embedclf.errors import EmbedclfError
from embedclf.labels import MULTICLASS, MULTILABEL, MULTIOUTPUT, TASK_KINDS

FORMAT = "embedclf-model/1"
MANIFEST, HEAD_FILE, RULES_FILE = "model.json", "head.skops", "rules.json"
MANIFEST_CHECKSUM = "manifest_sha256"
MAX_MANIFEST_BYTES = 64 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
shown = reprlib.Repr()
shown.maxstring, shown.maxother, shown.maxlist, shown.maxdict, shown.maxlevel = 40, 40, 4, 4, 2


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON, leaving out its own ``manifest_sha256``."""
    body = {key: value for key, value in manifest.items() if key != MANIFEST_CHECKSUM}
    return sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())


def refuse(where, message: str) -> EmbedclfError:
    """One line: ``where: message``, whatever the message holds."""
    return EmbedclfError(re.sub(r"\s*[\r\n]+\s*", " ", f"{where}: {message}"))


def read_manifest(directory: str | Path) -> dict:
    """``model.json``, parsed, checked against its ``manifest_sha256`` and checked field by field."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise EmbedclfError(f"{directory}: no such model folder")
    if path.is_symlink():
        raise refuse(path, "is a symbolic link; a model folder holds plain files")
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise EmbedclfError(f"{directory}: not an embedclf model folder (no {MANIFEST})") from None
    except OSError as exc:
        raise refuse(path, f"unreadable manifest ({exc.strerror or exc})") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise refuse(path, f"unreadable manifest (larger than {MAX_MANIFEST_BYTES >> 20} MiB)")
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise refuse(path, f"unreadable manifest ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise refuse(path, f"not an embedclf model manifest (format {shown.repr(manifest.get('format'))})"
                      if isinstance(manifest, dict) else "not an embedclf model manifest")
    if MANIFEST_CHECKSUM in manifest:  # absent: a folder of 0.1.0, whose files are still checksummed
        try:
            digest = manifest_digest(manifest)
        except (ValueError, TypeError, RecursionError):
            digest = None
        if manifest[MANIFEST_CHECKSUM] != digest:
            raise refuse(path, f"does not match its checksum ({MANIFEST_CHECKSUM}); "
                                "the manifest was modified after it was saved")
    check_manifest(path, manifest)
    return manifest


def field_error(path, field: str, message: str) -> EmbedclfError:
    return refuse(path, f"field {field!r} {message}")


def _expect(path, field: str, value, kind, what: str):
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise field_error(path, field, f"must be {what}, got {shown.repr(value)}")
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_manifest(path, manifest: dict) -> None:
    """Types, ranges and consistency of every field ``load`` uses; one line naming the field otherwise."""
    for key in ("targets", "encoder", "thresholds", "files"):
        if key not in manifest:
            raise refuse(path, f"manifest lacks {key!r}")
    targets = _expect(path, "targets", manifest["targets"], list, "a list of targets")
    if not targets:
        raise field_error(path, "targets", "is empty")
    names = set()
    for i, target in enumerate(targets):
        field = f"targets[{i}]"
        _expect(path, field, target, dict, "an object with name, kind and classes")
        for key in ("name", "kind", "classes"):
            if key not in target:
                raise field_error(path, field, f"lacks {key!r}")
        name = _expect(path, f"{field}.name", target["name"], str, "a string")
        if name in names:
            raise field_error(path, f"{field}.name", f"repeats target {shown.repr(name)}")
        names.add(name)
        if target["kind"] not in (MULTICLASS, MULTILABEL):
            raise field_error(path, f"{field}.kind", f"is {shown.repr(target['kind'])}, not one of: "
                                                       f"{MULTICLASS}, {MULTILABEL}")
        classes = _expect(path, f"{field}.classes", target["classes"], list, "a list of class names")
        if not classes or not all(isinstance(c, str) for c in classes):
            raise field_error(path, f"{field}.classes", f"must be a non-empty list of strings, got "
                                                          f"{shown.repr(classes)}")
        if len(set(classes)) != len(classes):
            raise field_error(path, f"{field}.classes", "names a class twice")
    kinds = [target["kind"] for target in targets]
    expected_task = MULTIOUTPUT if len(targets) > 1 else kinds[0]
    if "task" in manifest:
        task = manifest["task"]
        if task not in TASK_KINDS:
            raise field_error(path, "task", f"is {shown.repr(task)}, not one of: {', '.join(TASK_KINDS)}")
        if task != expected_task:
            raise field_error(path, "task", f"is {task} but 'targets' describe a {expected_task} task")
    n_columns = sum(len(target["classes"]) for target in targets)
    thresholds = _expect(path, "thresholds", manifest["thresholds"], list, "a list of numbers")
    if len(thresholds) != n_columns:
        raise field_error(path, "thresholds", f"has {len(thresholds)} values for the {n_columns} label columns "
                                               "of 'targets'")
    for value in thresholds:
        if not _is_number(value) or not math.isfinite(value) or not 0 <= value <= 1:
            raise field_error(path, "thresholds", f"must hold numbers from 0 to 1, got {shown.repr(value)}")
    if "at_least_one" in manifest:
        _expect(path, "at_least_one", manifest["at_least_one"], bool, "true or false")
    encoder = _expect(path, "encoder", manifest["encoder"], dict, "an object")
    _expect(path, "encoder.model", encoder.get("model"), str, "a string")
    if not encoder["model"]:
        raise field_error(path, "encoder.model", "is empty")
    _expect(path, "encoder.fingerprint", encoder.get("fingerprint"), str, "a string")
    if "bundled" in encoder:
        _expect(path, "encoder.bundled", encoder["bundled"], bool, "true or false")
    for key in ("data", "info", "versions", "head"):
        if key in manifest:
            _expect(path, key, manifest[key], dict, "an object")
    files = _expect(path, "files", manifest["files"], dict, "an object of file name: sha256")
    for name, digest in files.items():
        if not plain_name(name):
            raise field_error(path, "files", f"names a file outside the folder ({shown.repr(name)})")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise field_error(path, "files", f"holds no sha256 for {name} ({shown.repr(digest)})")
    if HEAD_FILE not in files:
        raise field_error(path, "files", f"lists no {HEAD_FILE}")
    if "features" in manifest:
        _check_features(path, manifest["features"], files)


def _check_features(path, features, files: dict) -> None:
    """``features``: absent in folders before feature sets (they are ``embedding``); else its kind, and
    for ``tfidf``/``hybrid`` the vectoriser's file, listed with its checksum, its n-grams and the TF-IDF weight."""
    from embedclf.features import FEATURE_SETS, FEATURES_FILE

    _expect(path, "features", features, dict, "an object")
    if features.get("kind") not in FEATURE_SETS:
        raise field_error(path, "features.kind", f"is {shown.repr(features.get('kind'))}, not one of: "
                                                  f"{', '.join(FEATURE_SETS)}")
    if features["kind"] == "embedding":
        return
    if features.get("file") != FEATURES_FILE or FEATURES_FILE not in files:
        raise field_error(path, "features.file", f"must be {FEATURES_FILE}, listed in 'files' "
                                                  f"(got {shown.repr(features.get('file'))})")
    from embedclf.features.tfidf import NGRAMS

    if features.get("ngrams", "word") not in NGRAMS:
        raise field_error(path, "features.ngrams", f"is {shown.repr(features.get('ngrams'))}, not one of: "
                                                    f"{', '.join(NGRAMS)}")
    weight = features.get("tfidf_weight", 1.0)
    if not _is_number(weight) or not math.isfinite(weight) or not 0 < weight <= 100:
        raise field_error(path, "features.tfidf_weight", f"must be a number above 0 and at most 100, got "
                                                          f"{shown.repr(weight)}")


def plain_name(name) -> bool:
    """A file name in the folder itself: no separators, no ``..``, nothing absolute, no odd characters."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and ":" not in name and name.isprintable())
