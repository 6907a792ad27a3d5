"""The per-user export store: exported and quantised models, and fidelity verdicts, made once per machine.

An export (ONNX, OpenVINO, int8) depends on the model's files and the recipe, not on which vector cache
a run uses, so it lives apart from the cache, shared by every ``--cache`` directory::

    $EMBEDCLF_EXPORTS (default ~/.cache/embedclf/exports)
        <fingerprint[:16]>-<backend>-<recipe>[-<sample hash>]/entry.json   what it is (+ the export's files)
        .locks/<entry>.lock                                                 held while an entry is made

An entry is built in a temporary folder and renamed into place (``os.replace``), under a file lock: a
folder with its ``entry.json`` is complete, and two processes never build the same entry twice (the
second waits, then finds it). A verdict (bf16 close enough to fp32 for this model on this CPU?) is an
entry with ``entry.json`` only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from embedclf.errors import EmbedclfError

EXPORTS_ENV = "EMBEDCLF_EXPORTS"
ENTRY_FILE = "entry.json"


def store_root() -> Path:
    """``$EMBEDCLF_EXPORTS``, or ``~/.cache/embedclf/exports`` (``$XDG_CACHE_HOME`` respected)."""
    if os.environ.get(EXPORTS_ENV):
        return Path(os.environ[EXPORTS_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "embedclf" / "exports"


def fingerprint_memo() -> Path:
    """Where model fingerprints are memoised: once per machine, in the store (a new ``--cache`` directory
    must not hash the weights again)."""
    return store_root() / "fingerprints.json"


def entry_name(fingerprint: str, backend: str, recipe: str, sample: str | None = None) -> str:
    """The key of an entry: model fingerprint + backend + recipe (+ the calibration sample's hash)."""
    parts = [fingerprint[:16], backend, recipe] + ([sample[:12]] if sample else [])
    return "-".join(parts)


def sample_hash(texts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class Entry:
    path: Path
    meta: dict
    size_bytes: int

    @property
    def fingerprint(self) -> str:
        return str(self.meta.get("fingerprint", ""))


class ExportStore:
    """The folder of exports; ``root=None`` is :func:`store_root` at the time of the call."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else store_root()

    def path(self, name: str) -> Path:
        return self.root / name

    def find(self, name: str) -> Entry | None:
        """The complete entry ``name``, or None."""
        meta = _read(self.root / name / ENTRY_FILE)
        return None if meta is None else Entry(self.root / name, meta, 0)

    def ensure(self, name: str, build: Callable[[Path], dict], meta: dict | None = None) -> Entry:
        """The entry ``name``, built on first use: ``build(folder)`` writes its files into a fresh
        temporary folder and returns what ``entry.json`` should add to ``meta``."""
        found = self.find(name)
        if found is not None:
            return found
        from filelock import FileLock

        locks = self.root / ".locks"
        try:
            locks.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbedclfError(f"{self.root}: cannot write the export store ({exc.strerror}); "
                                f"set {EXPORTS_ENV} to a writable folder") from None
        with FileLock(str(locks / f"{name}.lock")):
            found = self.find(name)  # another process finished it while we waited
            if found is not None:
                return found
            for orphan in self.root.glob(f".tmp-{name}-*"):  # left by a build that was killed
                shutil.rmtree(orphan, ignore_errors=True)
            tmp = self.root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                start = time.perf_counter()
                record = dict(meta or {}) | (build(tmp) or {})
                record["build_seconds"] = round(time.perf_counter() - start, 2)  # what a cold start costs
                (tmp / ENTRY_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
                target = self.root / name
                if target.exists():  # an incomplete folder (no entry.json), e.g. of an older version
                    shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        return self.find(name)

    def entries(self, fingerprints: Iterable[str] | None = None) -> list[Entry]:
        """Complete entries (all, or those of models whose fingerprint is in ``fingerprints``), with sizes."""
        if not self.root.is_dir():
            return []
        wanted = None if fingerprints is None else {f for f in fingerprints if f}
        found = []
        for folder in sorted(self.root.iterdir()):
            meta = _read(folder / ENTRY_FILE) if folder.is_dir() and not folder.name.startswith(".") else None
            if meta is None or wanted is not None and meta.get("fingerprint") not in wanted:
                continue
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
            found.append(Entry(folder, meta, size))
        return found

    def select(self, model: str | None = None, fingerprints: Iterable[str] = ()) -> list[Entry]:
        """Every entry, or those of ``model`` (its name or a fingerprint prefix of 6+ characters) and of
        ``fingerprints`` (models whose cache spaces are being cleared)."""
        if model is None:
            return self.entries()
        known = set(fingerprints)
        return [e for e in self.entries() if e.fingerprint in known or matches_model(e.meta, model)]

    def clear(self, model: str | None = None, fingerprints: Iterable[str] = ()) -> list[Entry]:
        """Delete the entries :meth:`select` picks, each under its lock."""
        from filelock import FileLock

        removed = self.select(model, fingerprints)
        for entry in removed:
            with FileLock(str(self.root / ".locks" / f"{entry.path.name}.lock")):
                shutil.rmtree(entry.path, ignore_errors=True)
        if model is None:
            for leftover in self.root.glob(".tmp-*") if self.root.is_dir() else []:
                shutil.rmtree(leftover, ignore_errors=True)
        return removed


def format_entries(entries: list[Entry]) -> str:
    """``embedclf cache info``'s export table: a line per entry, its size and what it is."""
    lines = [f"{'export':<44}  {'size':>9}  what"]
    for entry in entries:
        m = entry.meta
        what = f"{m.get('model', '?')}: {m.get('backend', '?')} {m.get('precision', '')}".rstrip()
        if "min_cosine" in m:
            what += f", cosine to fp32 mean {m.get('mean_cosine', 0):.5f} min {m['min_cosine']:.5f}"
        if "build_seconds" in m:
            what += f", made in {m['build_seconds']:.0f}s"
        lines.append(f"{entry.path.name:<44}  {entry.size_bytes / 2**20:>7.1f}MB  {what}")
    return "\n".join(lines)


def matches_model(meta: dict, model: str) -> bool:
    name = str(meta.get("model", ""))
    return model in (name, Path(name).name) or len(model) >= 6 and str(meta.get("fingerprint", "")).startswith(model)


def _read(path: Path) -> dict | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None
