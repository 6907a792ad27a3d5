"""The local engine: read the data, encode through the cache in this process, label, write.

What ``embedclf encode`` and ``embedclf predict`` did before there were engines, unchanged: the
same reader, the same :class:`~embedclf.encode.encoder.Encoder`, the same summary lines.
"""

from __future__ import annotations

import time
from pathlib import Path

from embedclf.data import DataOptions
from embedclf.encode.settings import EncoderSettings
from embedclf.engines.inputs import read_inputs
from embedclf.engines.results import EncodeResult, PredictResult


def encode(path, options: DataOptions, settings: EncoderSettings, *, cache=None, progress: bool | None = None,
           check_fidelity: int | None = None, long_text=None) -> EncodeResult:
    """Encode the texts of ``path`` through the cache; see :func:`embedclf.engines.encode_data`."""
    from embedclf.encode.encoder import Encoder
    from embedclf.encode.long_text import LongTextEncoder, LongTextSettings

    start = time.perf_counter()
    encoder = Encoder(settings, cache=cache, progress=progress)
    dataset = read_inputs(path, options).require_texts()
    matrix = LongTextEncoder(encoder, long_text or LongTextSettings()).encode(dataset.texts)
    fidelity = None
    if check_fidelity:
        from embedclf.encode.fidelity import check_fidelity as fidelity_of

        fidelity = fidelity_of(encoder, dataset.texts[:check_fidelity], matrix[:check_fidelity]).summary()
    return EncodeResult.read_from(dataset, engine="local", source=str(path), settings=encoder.settings,
                                  encoding=encoder.last_report, dimension=matrix.shape[1], fidelity=fidelity,
                                  vectors=matrix, seconds=time.perf_counter() - start)


def predict(model_dir, path, out, *, data_overrides: dict, encoder_overrides: dict, cache=None,
            cooccur=None) -> PredictResult:
    """Label the texts of ``path`` and write the table ``out``; see :func:`embedclf.engines.predict_data`."""
    from embedclf.inference import data_options_for, load_classifier, predict_dataset, predictions_frame
    from embedclf.io import check_table_path, write_table

    start = time.perf_counter()
    check_table_path(out)
    classifier = load_classifier(model_dir, encoder_overrides=encoder_overrides, cache=cache, cooccur=cooccur)
    dataset = read_inputs(path, data_options_for(classifier, data_overrides), labels=False).require_texts()
    scores, Y, added = predict_dataset(classifier, dataset)
    write_table(predictions_frame(classifier, dataset, Y, scores, added), out)
    return PredictResult.read_from(dataset, engine="local", source=str(path), settings=classifier.encoder.settings,
                                   encoding=classifier.encoder.last_report, out=str(Path(out)),
                                   added=int(added.sum()) if added is not None else None,
                                   features_line=classifier.encoding_line() if classifier.features != "embedding" else "",
                                   seconds=time.perf_counter() - start)
