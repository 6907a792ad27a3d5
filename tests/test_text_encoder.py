"""TextEncoder: raw texts through the cache as a scikit-learn transformer, in Pipeline and GridSearchCV."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline

from embedclf import TextEncoder
from embedclf.encode import backends
from embedclf.encode.cache import EmbeddingCache
from embedclf.errors import EmbedclfError
from embedclf.heads.linear import LogRegHead
from tests.conftest import sample_texts, shared_file


def _no_model_loads(monkeypatch):
    """From here on, loading a model fails the test: everything must come from the cache."""
    backends.forget_loaded()

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded, but every text should have been cached")

    monkeypatch.setattr(backends, "_load", refuse)


def _entries(cache) -> int:
    return sum(space.entries for space in EmbeddingCache(cache).spaces())


def test_clone_and_params_round_trip(tiny_model, cache_dir):
    encoder = TextEncoder(tiny_model, pooling="cls", batch_size=8, cache=cache_dir)
    twin = clone(encoder)
    assert twin.get_params() == encoder.get_params() and twin is not encoder
    assert encoder.set_params(max_length=32).max_length == 32
    settings = encoder.settings()
    assert (settings.model, settings.pooling, settings.max_length, settings.batch_size) == (tiny_model, "cls", 32, 8)


def test_transform_matches_encoder_and_caches(tiny_model, cache_dir, monkeypatch):
    from embedclf.encode.encoder import Encoder

    texts = sample_texts(40)
    X = TextEncoder(tiny_model, device="cpu", precision="fp32", cache=cache_dir).fit_transform(texts)
    expected = Encoder(tiny_model, device="cpu", precision="fp32", cache=False).encode(texts)
    np.testing.assert_allclose(X, expected, atol=1e-6)
    _no_model_loads(monkeypatch)
    again = TextEncoder(tiny_model, device="cpu", precision="fp32", cache=cache_dir)
    np.testing.assert_array_equal(again.fit(texts).transform(texts), X)
    assert again.encoder_.last_report.encoded == 0
    assert list(again.get_feature_names_out()[:2]) == ["embedding0", "embedding1"]


@pytest.mark.parametrize("bad, message", [("one text", "not a single string"), ([["a", "b"]], "1-D sequence"),
                                          (["fine", None], "got 1 of type NoneType")])
def test_bad_input_is_refused(tiny_model, cache_dir, bad, message):
    with pytest.raises(ValueError, match=message):
        TextEncoder(tiny_model, cache=cache_dir).fit_transform(bad)


def test_bad_settings_fail_at_fit_with_one_line(tiny_model, cache_dir):
    with pytest.raises(EmbedclfError, match="--batch-size must be an integer of at least 1"):
        TextEncoder(tiny_model, batch_size=0, cache=cache_dir).fit(["a"])
    with pytest.raises(EmbedclfError, match="--max-length 4096 is above the 128 tokens"):
        TextEncoder(tiny_model, max_length=4096, cache=cache_dir).fit(["a"])


def test_grid_search_on_raw_text_encodes_each_text_once(tiny_model, cache_dir, monkeypatch):
    texts = sample_texts(120, seed=1)
    y = np.array(["happy" if "happy" in t or "love" in t else "other" for t in texts])
    assert 20 < (y == "happy").sum() < 100

    def search(head):
        pipeline = Pipeline([("encode", TextEncoder(tiny_model, device="cpu", precision="fp32", cache=cache_dir)),
                             ("head", head)])
        return GridSearchCV(pipeline, {"head__C": [0.1, 10.0]}, cv=3).fit(texts, y)

    first = search(LogisticRegression(max_iter=500))
    assert _entries(cache_dir) == len(set(texts))
    assert first.best_params_["head__C"] in (0.1, 10.0) and first.predict(texts[:3]).shape == (3,)
    _no_model_loads(monkeypatch)
    second = search(LogRegHead())  # the project's own head, on the same cached vectors
    assert _entries(cache_dir) == len(set(texts))
    assert isinstance(second.best_estimator_.named_steps["head"], LogRegHead)
    assert set(second.predict(texts[:10])) <= {"happy", "other"}
    scores = cross_val_score(second.best_estimator_, texts, y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


@pytest.mark.real_model
def test_grid_search_over_C_on_goemotions_with_the_real_model(tmp_path, monkeypatch):
    """The README's example: raw GoEmotions texts, the default model, a search over C; run twice."""
    from embedclf.data import load_dataset

    data = load_dataset(shared_file("goemotions", "dev.tsv"), ["text"], ["labels"], columns=["text", "labels", "id"],
                        label_sep=",")
    first_label = np.array([labels[0] for labels in data.targets[0].labels])  # a multi-class task
    common = [label for label, _ in Counter(first_label).most_common(5)]
    keep = np.flatnonzero(np.isin(first_label, common))[:300]
    texts, y = [data.texts[i] for i in keep], first_label[keep]
    cache = tmp_path / "cache"

    def search():
        pipeline = Pipeline([("encode", TextEncoder(cache=cache)), ("head", LogisticRegression(max_iter=1000))])
        return GridSearchCV(pipeline, {"head__C": [0.1, 1.0, 10.0]}, cv=3, scoring="f1_macro").fit(texts, y)

    first = search()
    assert _entries(cache) == len(set(texts))
    assert first.best_score_ > 0.3  # the 5 most frequent emotions: chance is about 0.2 macro-F1
    _no_model_loads(monkeypatch)
    second = search()
    np.testing.assert_allclose(second.cv_results_["mean_test_score"], first.cv_results_["mean_test_score"])
    assert _entries(cache) == len(set(texts))
