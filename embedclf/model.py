"""A fitted text classifier: a scikit-learn ``Pipeline`` (features → head) plus its label space and
how to decide (thresholds, at-least-one, co-occurrence rules). Saved as a model folder (``model_folder``).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from embedclf.data import DataOptions
from embedclf.encode.encoder import Encoder
from embedclf.encode.long_text import LongTextSettings
from embedclf.encode.settings import EncoderSettings
from embedclf.encode.text_encoder import TextEncoder
from embedclf.labels import LabelSpace, block_decisions
from embedclf.errors import EmbedclfError
from embedclf.features import DEFAULT_TFIDF_WEIGHT, FEATURES_FILE, feature_step
from embedclf.features.tfidf import load_tfidf, ngrams_of, term_count
from embedclf.model_folder import (FORMAT, HEAD_FILE, MANIFEST, RULES_FILE, bundled_encoder, check_feature_width,
                                   check_head, jsonable, load_head, read_files, read_manifest, versions, write_folder)

__all__ = ["TextClassifier", "read_manifest"]


class TextClassifier:
    """Texts in, labels out: ``pipeline`` (a features step and a fitted head), ``space`` and decisions.

    ``encoder`` may be a fitted :class:`TextEncoder` or an :class:`Encoder` (it becomes the pipeline's
    encoding step, keeping its cache and its ``last_report``). ``features`` (see :mod:`embedclf.features`)
    makes the step the encoder itself, a TF-IDF vectoriser (``tfidf``, fitted or not) or both (``hybrid``);
    ``long_text`` says how the encoder treats texts beyond its window.
    """

    def __init__(self, encoder: Encoder | TextEncoder, head, space: LabelSpace, *,
                 data_options: DataOptions | None = None, thresholds=None, at_least_one: bool = False, rules=None,
                 info: dict | None = None, features: str = "embedding", tfidf=None,
                 tfidf_weight: float = DEFAULT_TFIDF_WEIGHT, long_text: LongTextSettings | None = None):
        from sklearn.pipeline import Pipeline

        if isinstance(encoder, Encoder):
            long_text = long_text or LongTextSettings()
            step = TextEncoder.from_settings(encoder.requested, cache=encoder.cache or False,
                                             progress=encoder.progress, long_text=long_text.mode,
                                             chunk_pooling=long_text.pooling)
            step.encoder_ = encoder
            encoder = step
        self.text_encoder = encoder  # also kept for tfidf, whose manifest still records the encoder
        self.features = features
        self.tfidf_weight = tfidf_weight
        self.pipeline = Pipeline([("encode", feature_step(features, encoder, tfidf=tfidf, tfidf_weight=tfidf_weight)),
                                  ("head", head)])
        self.space = space
        self.data_options = data_options or DataOptions()
        self.thresholds = np.broadcast_to(np.asarray(0.5 if thresholds is None else thresholds, dtype=float),
                                          (space.n_columns,)).copy()
        self.at_least_one = at_least_one
        self.rules = rules
        self.info = info or {}

    @property
    def encoder(self) -> Encoder:
        return self.text_encoder.encoder_

    @property
    def tfidf(self):
        """The TF-IDF vectoriser of a ``tfidf`` or ``hybrid`` model, else None."""
        step = self.pipeline.named_steps["encode"]
        return None if self.features == "embedding" else step if self.features == "tfidf" else step.tfidf

    def encoding_line(self) -> str:
        """What the last call encoded, or what it did instead (a ``tfidf`` model encodes nothing)."""
        if self.features == "tfidf":
            return f"none needed (tfidf features with {self.tfidf_terms_line()})"
        encoded = self.encoder.last_report.summary(self.encoder.max_length)
        if self.features == "embedding":
            return encoded
        return f"{encoded}; hybrid features with {self.tfidf_terms_line()}"

    def tfidf_terms_line(self) -> str:
        terms, ngrams = term_count(self.tfidf), ngrams_of(self.tfidf)
        return f"{terms:,} TF-IDF terms" + (", word and character n-grams" if ngrams != "word" else "")

    @property
    def head(self):
        return self.pipeline.named_steps["head"]

    # -- inference -------------------------------------------------------------------------------
    def embed(self, texts):
        """The head's input for ``texts``: embeddings, or a sparse matrix for ``tfidf`` and ``hybrid``."""
        return self.pipeline.named_steps["encode"].transform(list(texts))

    def head_input(self, texts, vectors: np.ndarray):
        """What :meth:`embed` gives, from ``texts`` whose embeddings ``vectors`` a caller already has (the
        service encodes in batches of its own): the vectors, or the TF-IDF block instead of or beside them."""
        if self.features == "embedding":
            return vectors
        terms = self.tfidf.transform(list(texts))
        if self.features == "tfidf":
            return terms
        from embedclf.features.hybrid import join_blocks

        step = self.pipeline.named_steps["encode"]
        return join_blocks(vectors, terms, step.dense_weight, step.sparse_weight)

    def scores(self, X) -> np.ndarray:
        """Per label-column probabilities (or scores) for features ``X`` (see :meth:`embed`)."""
        return np.asarray(self.head.predict_proba(X), dtype=np.float32)

    def predict_proba(self, texts) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(list(texts)), dtype=np.float32)

    def decide(self, scores: np.ndarray, *, rules=True, threshold: float | None = None,
               top_k: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """0/1 decisions from scores; with co-occurrence rules also the matrix of labels they added.

        ``threshold`` replaces the saved multi-label thresholds, ``top_k`` keeps at most the k most
        probable labels of each multi-label target (before the rules, which may add implied ones).
        """
        thresholds = self.thresholds if threshold is None else threshold
        Y = block_decisions(scores, self.space.layout, thresholds, self.at_least_one, top_k)
        if rules and self.rules is not None:
            from embedclf.postprocess.model_rules import apply_rules

            return apply_rules(self.rules, Y, self.space)
        return Y, None

    def predict(self, texts) -> list[list[list[str]]]:
        """Per target, per text, the predicted labels."""
        Y, _ = self.decide(self.predict_proba(texts))
        return self.space.decode(Y)

    # -- persistence -----------------------------------------------------------------------------
    def manifest(self) -> dict:
        from embedclf.heads import head_name

        return {
            "format": FORMAT,
            "task": self.space.task,
            "targets": self.space.to_dict(),
            "head": {"name": head_name(self.head), "class": type(self.head).__qualname__,
                     "params": jsonable(self.head.get_params())},
            "thresholds": [round(float(t), 4) for t in self.thresholds],
            "at_least_one": self.at_least_one,
            "encoder": self.encoder.settings.to_record() | self._long_text_record(),
            **({} if self.features == "embedding" else {"features": self.features_record()}),
            "data": asdict(self.data_options),
            "info": self.info,
            "versions": versions(),
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def _long_text_record(self) -> dict:
        """``{"long_text": {...}}`` for a model whose long texts are chunked; nothing for truncation (as before)."""
        settings = self.text_encoder.long_text_settings()
        return {"long_text": settings.record()} if settings.mode != "truncate" else {}

    def features_record(self) -> dict:
        record = {"kind": self.features, "file": FEATURES_FILE, "terms": term_count(self.tfidf),
                  "ngrams": ngrams_of(self.tfidf)}
        return record | ({"tfidf_weight": self.tfidf_weight} if self.features == "hybrid" else {})

    def save(self, directory: str | Path, bundle: dict[str, Path] | None = None) -> Path:
        """Write the model folder (see :mod:`embedclf.model_folder`); ``bundle={"encoder": path}`` copies a
        fine-tuned transformer into it, and the manifest points at it relative to the folder."""
        import skops.io as sio

        files = {HEAD_FILE: sio.dumps(self.head)}
        if self.tfidf is not None:
            files[FEATURES_FILE] = sio.dumps(self.tfidf)
        if self.rules is not None:
            files[RULES_FILE] = self.rules.to_json().encode()
        return write_folder(directory, self.manifest(), files, bundle)

    @classmethod
    def load(cls, directory: str | Path, *, model: str | None = None, cache=None, device: str = "auto",
             batch_size: int | None = None, backend: str | None = None,
             precision: str | None = None) -> "TextClassifier":
        """Load and verify a model folder; ``model`` points at the encoder's files if they moved.

        The head was fitted on vectors of one backend and precision (an int8 model on int8 vectors),
        so the encoder uses the manifest's unless ``backend`` or ``precision`` say otherwise (another
        backend than the recorded one starts from its own ``auto`` precision).

        Everything in the folder is checked before the encoder is built (see :mod:`embedclf.model_folder`):
        the manifest and its fields, the files against their checksums, the head's types and layout. No
        code from the folder runs; a bad folder is one :class:`EmbedclfError` line naming the file.
        """
        manifest = read_manifest(directory)
        where = Path(directory) / MANIFEST
        space = LabelSpace.from_dict(manifest["targets"])
        record = manifest["encoder"]
        try:
            data_options = DataOptions(**manifest.get("data", {}))
        except (EmbedclfError, TypeError, ValueError) as exc:
            raise EmbedclfError(" ".join(f"{where}: field 'data': {exc}".splitlines())) from None
        try:
            EncoderSettings.from_record(record)  # the record alone, so that its own mistakes name the manifest
            long_text = LongTextSettings.from_record(record.get("long_text"))
        except (EmbedclfError, TypeError, ValueError) as exc:
            raise EmbedclfError(" ".join(f"{where}: field 'encoder': {exc}".splitlines())) from None
        blobs = read_files(directory, manifest)
        head = load_head(directory, blobs[HEAD_FILE])
        check_head(directory, head, space.layout)
        features = manifest.get("features", {"kind": "embedding"})  # folders before feature sets: embeddings
        tfidf = None
        if features["kind"] != "embedding":
            tfidf = load_tfidf(Path(directory) / FEATURES_FILE, blobs[FEATURES_FILE])
            check_feature_width(directory, head, features["kind"], term_count(tfidf))
            if ngrams_of(tfidf) != features.get("ngrams", "word"):  # folders before word+char hold words
                raise EmbedclfError(f"{where}: field 'features.ngrams' says {features.get('ngrams', 'word')}, but "
                                    f"{FEATURES_FILE} holds {ngrams_of(tfidf)} n-grams")
        rules = None
        if RULES_FILE in blobs:
            from embedclf.postprocess.model_rules import check_rules_fit
            from embedclf.postprocess.rules import CooccurrenceRules

            source = str(Path(directory) / RULES_FILE)
            try:
                text = blobs[RULES_FILE].decode()
            except UnicodeDecodeError:
                raise EmbedclfError(f"{source}: not UTF-8 text") from None
            rules = CooccurrenceRules.from_json(text, source)
            check_rules_fit(rules, space, source)
        if backend is not None and backend != record.get("backend", "torch") and precision is None:
            precision = "auto"
        settings = EncoderSettings.from_record(record, model=model or bundled_encoder(directory, manifest),
                                               device=device, batch_size=batch_size, backend=backend,
                                               precision=precision)
        encoder = Encoder(settings, cache=cache)  # the model's files are read from here on
        encoder.settings.check_matches(record, str(directory))
        return cls(encoder, head, space, data_options=data_options, thresholds=manifest["thresholds"],
                   at_least_one=manifest.get("at_least_one", False), rules=rules, info=manifest.get("info", {}),
                   features=features["kind"], tfidf=tfidf,
                   tfidf_weight=features.get("tfidf_weight", DEFAULT_TFIDF_WEIGHT), long_text=long_text)
