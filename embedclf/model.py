"""A fitted text classifier: encoder settings + label space + head + decision rules, saved as a folder.

``MODEL_DIR/model.json`` is a readable manifest (task, labels, head and parameters, thresholds,
encoder fingerprint, data options, validation metrics, versions, checksums); ``head.skops`` holds
the fitted head in skops' format, which refuses to load any type it was not told to trust, so a
model folder from a stranger cannot run code. Optional ``rules.json`` holds co-occurrence rules.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import numpy as np

from embedclf.data import DataOptions, Dataset
from embedclf.encode.encoder import Encoder
from embedclf.errors import EmbedclfError
from embedclf.labels import LabelSpace, block_decisions

FORMAT = "embedclf-model/1"
MANIFEST, HEAD_FILE, RULES_FILE = "model.json", "head.skops", "rules.json"
TRUSTED_PREFIXES = ("embedclf.heads.",)
# scikit-learn internals that skops does not trust by default but our heads hold (plain data, no code)
TRUSTED_TYPES = {"sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration"}


def _versions() -> dict:
    versions = {}
    for package in ("embedclf", "scikit-learn", "numpy", "torch", "sentence-transformers", "transformers", "skops"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class TextClassifier:
    """Texts in, labels out: an :class:`Encoder` configuration, a fitted head and how to decide."""

    def __init__(self, encoder: Encoder, head, space: LabelSpace, *, data_options: DataOptions | None = None,
                 thresholds=None, at_least_one: bool = False, rules=None, info: dict | None = None):
        self.encoder = encoder
        self.head = head
        self.space = space
        self.data_options = data_options or DataOptions()
        self.thresholds = np.broadcast_to(np.asarray(0.5 if thresholds is None else thresholds, dtype=float),
                                          (space.n_columns,)).copy()
        self.at_least_one = at_least_one
        self.rules = rules
        self.info = info or {}

    # -- inference -------------------------------------------------------------------------------
    def embed(self, texts) -> np.ndarray:
        return self.encoder.encode(list(texts))

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Per label-column probabilities (or scores) for embeddings ``X``."""
        return np.asarray(self.head.predict_proba(X), dtype=np.float32)

    def decide(self, scores: np.ndarray, *, rules=True) -> tuple[np.ndarray, np.ndarray | None]:
        """0/1 decisions from scores; with co-occurrence rules also the matrix of labels they added."""
        Y = block_decisions(scores, self.space.layout, self.thresholds, self.at_least_one)
        if rules and self.rules is not None:
            from embedclf.postprocess.cooccur import apply_rules

            return apply_rules(self.rules, Y, self.space)
        return Y, None

    def predict(self, texts) -> list[list[list[str]]]:
        """Per target, per text, the predicted labels."""
        Y, _ = self.decide(self.scores(self.embed(texts)))
        return self.space.decode(Y)

    # -- persistence -----------------------------------------------------------------------------
    def manifest(self) -> dict:
        from embedclf.heads import head_name

        return {
            "format": FORMAT,
            "task": self.space.task,
            "targets": self.space.to_dict(),
            "head": {"name": head_name(self.head), "class": type(self.head).__qualname__,
                     "params": _jsonable(self.head.get_params())},
            "thresholds": [round(float(t), 4) for t in self.thresholds],
            "at_least_one": self.at_least_one,
            "encoder": self.encoder.config | {"batch_size": self.encoder.batch_size},
            "data": asdict(self.data_options),
            "info": self.info,
            "versions": _versions(),
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def save(self, directory: str | Path, bundle: dict[str, Path] | None = None) -> Path:
        """Write the model folder; an existing one is replaced only once the new one is complete.

        ``bundle={"encoder": path}`` copies an encoder (a fine-tuned transformer) into the folder;
        the manifest then points at it relative to the folder, so the folder can be moved.
        """
        import skops.io as sio

        directory = Path(directory)
        if directory.exists() and not (directory / MANIFEST).exists() and any(directory.iterdir()):
            raise EmbedclfError(f"{directory}: exists and is not an embedclf model folder; not overwriting it")
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
        try:
            manifest = self.manifest()
            for name, source in (bundle or {}).items():
                shutil.copytree(source, staging / name)
                manifest["encoder"] |= {"model": name, "bundled": True}
            files = {HEAD_FILE: sio.dumps(self.head)}
            if self.rules is not None:
                files[RULES_FILE] = self.rules.to_json().encode()
            for name, data in files.items():
                (staging / name).write_bytes(data)
            manifest["files"] = {name: _sha256(data) for name, data in files.items()}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
            _replace_directory(staging, directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, model: str | None = None, cache=None, device: str = "auto",
             batch_size: int | None = None, backend: str | None = None,
             precision: str | None = None) -> "TextClassifier":
        """Load and verify a model folder; ``model`` points at the encoder's files if they moved.

        The head was fitted on vectors of one backend and precision (an int8 model on int8 vectors),
        so the encoder uses the manifest's unless ``backend`` or ``precision`` say otherwise; manifests
        older than the onnx backend are torch.
        """
        import skops.io as sio

        directory = Path(directory)
        manifest = read_manifest(directory)
        files = manifest.get("files", {})
        blobs = {}
        for name, digest in files.items():
            try:
                blobs[name] = (directory / name).read_bytes()
            except OSError:
                raise EmbedclfError(f"{directory}: {name} is missing; the model folder is incomplete") from None
            if _sha256(blobs[name]) != digest:
                raise EmbedclfError(f"{directory}: {name} does not match its checksum in {MANIFEST}; "
                                    "the folder was modified after it was saved")
        if HEAD_FILE not in blobs:
            raise EmbedclfError(f"{directory}: {MANIFEST} lists no {HEAD_FILE}")
        untrusted = sio.get_untrusted_types(data=blobs[HEAD_FILE])
        refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES) and t not in TRUSTED_TYPES]
        if refused:
            raise EmbedclfError(f"{directory}: {HEAD_FILE} holds types embedclf does not trust "
                                f"({', '.join(refused[:5])}); refusing to load it")
        try:
            head = sio.loads(blobs[HEAD_FILE], trusted=untrusted)
        except Exception as exc:
            raise EmbedclfError(f"{directory}: cannot load {HEAD_FILE} ({' '.join(str(exc).split())[:200]})") from None

        enc = manifest["encoder"]
        if model is None and enc.get("bundled"):
            model = str(directory / enc["model"])
        backend = backend or enc.get("backend", "torch")
        if precision is None:
            # a torch precision does not carry over to onnx, where auto means fp32
            precision = enc["precision"] if backend == enc.get("backend", "torch") else "auto"
        encoder = Encoder(model or enc["model"], pooling=enc["pooling"], max_length=enc["max_length"],
                          normalize=enc["normalize"], precision=precision, backend=backend, device=device,
                          batch_size=batch_size or enc.get("batch_size", 32), cache=cache)
        if encoder.ref.fingerprint != enc["fingerprint"]:
            raise EmbedclfError(
                f"{directory}: fitted on embeddings of model {enc['model']} [{enc['fingerprint'][:12]}], but "
                f"{encoder.ref.name} is [{encoder.ref.fingerprint[:12]}] here; pass --model with the original model")
        rules = None
        if RULES_FILE in blobs:
            from embedclf.postprocess.cooccur import CooccurrenceRules

            rules = CooccurrenceRules.from_json(blobs[RULES_FILE].decode())
        data = DataOptions(**manifest.get("data", {}))
        return cls(encoder, head, LabelSpace.from_dict(manifest["targets"]), data_options=data,
                   thresholds=manifest["thresholds"], at_least_one=manifest.get("at_least_one", False),
                   rules=rules, info=manifest.get("info", {}))


def read_manifest(directory: Path) -> dict:
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


def _replace_directory(staging: Path, directory: Path) -> None:
    """Swap ``staging`` in for ``directory`` with renames, so a reader never sees half a model."""
    if not directory.exists():
        os.replace(staging, directory)
        return
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    os.replace(directory, old)
    os.replace(staging, directory)
    shutil.rmtree(old, ignore_errors=True)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
