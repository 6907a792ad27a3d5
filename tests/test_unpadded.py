"""The padding-free BERT pass (``encode/backends/unpadded``): the model's own vectors, or the model's own pass."""

from __future__ import annotations

import numpy as np
import pytest

from embedclf.encode.settings import EncoderSettings
from tests.conftest import sample_texts

torch = pytest.importorskip("torch")


def _model(tiny_model, pooling="mean", precision="fp32"):
    from embedclf.encode.backends.torch import load_sentence_transformer

    settings = EncoderSettings(model=tiny_model, backend="torch", precision=precision, device="cpu", max_length=64,
                               pooling=pooling).resolve()
    return load_sentence_transformer(settings)


def _padded_and_unpadded(model, unpadded, texts):
    with torch.inference_mode():
        features = model.preprocess(texts)
        return model(features)["sentence_embedding"].float(), unpadded(features).float()


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_unpadded_pass_gives_the_models_vectors_for_mixed_and_equal_lengths(tiny_model, pooling):
    from embedclf.encode.backends.unpadded import UnpaddedBert, rows_for

    model = _model(tiny_model, pooling)
    unpadded = UnpaddedBert.build(model)
    assert unpadded is not None and unpadded.reproduces_model()
    mixed = ["a", "zebras eat forty two apples on a sunny day", "two words"] + sample_texts(13, seed=4)
    padded, got = _padded_and_unpadded(model, unpadded, mixed)
    assert model.preprocess(mixed)["attention_mask"].float().mean() < 0.9  # this batch pads
    torch.testing.assert_close(got, padded, rtol=1e-4, atol=1e-5)
    same = ["i am happy", "the film fell", "oil price rose"]  # no padding at all: no mask, no regrouping
    assert bool(model.preprocess(same)["attention_mask"].all())
    padded, got = _padded_and_unpadded(model, unpadded, same)
    torch.testing.assert_close(got, padded, rtol=1e-4, atol=1e-5)
    spare = ["i am so happy sad", "this is great love hate", "the movie film good bad"]  # 3 x 7 tokens, run as 22
    assert bool(model.preprocess(spare)["attention_mask"].all()) and rows_for(21) == 22
    padded, got = _padded_and_unpadded(model, unpadded, spare)
    torch.testing.assert_close(got, padded, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("order", ["longest first", "shortest first", "unsorted"])
def test_attention_in_runs_of_similar_lengths_gives_the_models_vectors(tiny_model, monkeypatch, order):
    from embedclf.encode.backends import unpadded as module

    model = _model(tiny_model)
    unpadded = module.UnpaddedBert.build(model)
    texts = ["a", "zebras eat forty two apples on a sunny day", "two words", "two words"] + sample_texts(12, seed=5)
    lengths = model.preprocess(texts)["attention_mask"].sum(dim=1).tolist()
    if order != "unsorted":
        texts = [t for _, t in sorted(zip(lengths, texts), reverse=order == "longest first")]
    monkeypatch.setattr(module, "ATTENTION_RUN_OVERHEAD", 0)  # a run per distinct length
    counts = model.preprocess(texts)["attention_mask"].sum(dim=1)
    runs = module.attention_runs(counts, torch.cumsum(counts, 0) - counts)
    distinct = len(set(lengths))
    assert len(runs) == (1 if order == "unsorted" else distinct) and distinct > 4
    assert [(run.rows.start, run.rows.stop) for run in runs] == \
        [(a, b) for a, b in zip([0] + [run.rows.stop for run in runs[:-1]], [run.rows.stop for run in runs])]
    assert runs[-1].rows.stop == int(counts.sum())  # every row once, in order
    padded, got = _padded_and_unpadded(model, unpadded, texts)
    torch.testing.assert_close(got, padded, rtol=1e-4, atol=1e-5)


def test_rows_are_rounded_up_by_at_most_an_eighth_to_few_shapes():
    from embedclf.encode.backends.unpadded import rows_for

    rows = [rows_for(tokens) for tokens in range(1, 8193)]
    assert all(tokens <= r <= tokens * 1.125 for tokens, r in zip(range(1, 8193), rows))
    assert rows[:16] == list(range(1, 17)) and len(set(rows)) < 100  # against 8,192 exact counts


def test_unpadded_pass_after_prepacking_still_matches(tiny_model):
    from embedclf.encode.backends.prepack import prepack_linears
    from embedclf.encode.backends.unpadded import UnpaddedBert

    model = _model(tiny_model)
    unpadded = UnpaddedBert.build(model)
    prepack_linears(model)
    qkv = model[0].auto_model.encoder.layer[0].attention.self.fused_qkv
    assert type(qkv) is not torch.nn.Linear or not torch.backends.mkldnn.is_available()  # packed with the rest
    texts = sample_texts(20, seed=5)
    padded, got = _padded_and_unpadded(model, unpadded, texts)
    torch.testing.assert_close(got, padded, rtol=1e-4, atol=1e-4)


def test_max_pooling_and_other_shapes_keep_the_models_own_pass(tiny_model):
    from sentence_transformers.sentence_transformer.modules import Dense

    from embedclf.encode.backends.unpadded import UnpaddedBert

    assert UnpaddedBert.build(_model(tiny_model, "max")) is None
    model = _model(tiny_model)
    model.append(Dense(32, 8))
    assert UnpaddedBert.build(model) is None  # a module after pooling that it does not compute


def test_torch_backend_runs_unpadded_and_removes_it_when_the_probe_refuses(tiny_model, monkeypatch):
    from embedclf.encode.backends.torch import TorchEmbedder
    from embedclf.encode.backends.unpadded import UnpaddedBert

    settings = EncoderSettings(model=tiny_model, backend="torch", precision="fp32", device="cpu",
                               max_length=64).resolve()
    embedder = TorchEmbedder(settings)
    assert embedder.unpadded is not None
    texts = sorted(sample_texts(30, seed=6), key=len, reverse=True)
    vectors = embedder.encode(texts, embedder.token_counts(texts))
    monkeypatch.setattr(UnpaddedBert, "reproduces_model", lambda self: False)
    refused = TorchEmbedder(settings)
    assert refused.unpadded is None
    assert not any(hasattr(layer.attention.self, "fused_qkv")
                   for layer in refused.model[0].auto_model.encoder.layer)
    np.testing.assert_allclose(vectors, refused.encode(texts, refused.token_counts(texts)), atol=2e-5)


def test_encoding_from_two_threads_at_once_gives_each_its_own_vectors(tiny_model):
    """The server's two workers share one embedder: tokenising takes turns, passes run together."""
    from concurrent.futures import ThreadPoolExecutor

    from embedclf.encode.backends.torch import TorchEmbedder

    settings = EncoderSettings(model=tiny_model, backend="torch", precision="fp32", device="cpu",
                               max_length=64).resolve()
    embedder = TorchEmbedder(settings)
    groups = [sample_texts(12, seed=seed) for seed in range(8)]

    def encode(texts):
        return embedder.encode(texts, embedder.token_counts(texts))

    alone = [encode(group) for group in groups]
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(encode, groups))
    for mine, expected in zip(together, alone):
        np.testing.assert_allclose(mine, expected, atol=1e-6)
