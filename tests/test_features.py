"""Feature sets (embedding, tfidf, hybrid): fitted, saved, loaded and applied through the API and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import sparse

from embedclf.errors import EmbedclfError
from embedclf.features.hybrid import HybridFeatures
from embedclf.features.tfidf import tfidf_vectorizer
from embedclf.fit import FitSettings, fit_classifier
from embedclf.heads import make_head
from embedclf.heads.linear import LogRegHead
from embedclf.model import TextClassifier
from tests.conftest import sample_texts
from tests.test_model import GO, encoder, goemotions_slice, run

GO_CLI = ["--columns", "text,labels,id", "--text-col", "text", "--label-col", "labels", "--label-sep", ","]


def tiny_cli(tiny_model, tmp_path) -> list:
    return ["--model", tiny_model, "--cache", tmp_path / "cache", "--device", "cpu"]


@pytest.mark.parametrize("features,head", [("tfidf", "svm"), ("hybrid", "logreg"), ("hybrid", "knn")])
def test_sparse_features_round_trip_through_the_model_folder(tiny_model, tmp_path, monkeypatch, features, head):
    seen = []
    original = LogRegHead._fit_blocks

    def spy(self, X, Y, **kwargs):
        seen.append(X)
        return original(self, X, Y, **kwargs)

    monkeypatch.setattr(LogRegHead, "_fit_blocks", spy)
    train = GO.load(goemotions_slice(tmp_path, n=300), require_labels=True)
    classifier = fit_classifier(train, make_head(head), encoder(tiny_model, tmp_path), data_options=GO,
                                valid_split=0.2, tune_thresholds=True, features=features)
    X = classifier.embed(train.texts[:50])
    assert sparse.issparse(X) and X.dtype == np.float32
    terms = len(classifier.tfidf.vocabulary_)
    assert X.shape[1] == terms + (32 if features == "hybrid" else 0)  # the tiny BERT has 32 dimensions
    if head == "logreg":
        assert seen and all(sparse.issparse(x) for x in seen), "the head must get the sparse matrix as it is"
    classifier.save(tmp_path / "model")
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    assert manifest["features"]["kind"] == features and manifest["features"]["terms"] == terms
    assert "features.skops" in manifest["files"]
    loaded = TextClassifier.load(tmp_path / "model", cache=tmp_path / "cache")
    assert loaded.features == features
    np.testing.assert_array_equal(loaded.predict_proba(train.texts[:50]), classifier.predict_proba(train.texts[:50]))
    assert loaded.predict(train.texts[:20]) == classifier.predict(train.texts[:20])


def test_embedding_models_record_no_feature_file(tiny_model, tmp_path):
    train = GO.load(goemotions_slice(tmp_path, n=120), require_labels=True)
    classifier = fit_classifier(train, make_head("logreg"), encoder(tiny_model, tmp_path), data_options=GO,
                                features="embedding")
    classifier.save(tmp_path / "model")
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    assert "features" not in manifest and list(manifest["files"]) == ["head.skops"]
    assert TextClassifier.load(tmp_path / "model", cache=tmp_path / "cache").features == "embedding"


def test_hybrid_joins_a_unit_embedding_and_the_weighted_tfidf_block(tiny_model, tmp_path):
    from embedclf.encode.text_encoder import TextEncoder

    texts = sample_texts(40)
    step = TextEncoder(tiny_model, cache=tmp_path / "cache", device="cpu", normalize=False)
    hybrid = HybridFeatures(step, tfidf_vectorizer(), sparse_weight=0.5)
    X = hybrid.fit_transform(texts)
    assert isinstance(X, sparse.csr_matrix)
    dense, terms = X[:, :32].toarray(), X[:, 32:]
    np.testing.assert_allclose(np.linalg.norm(dense, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(terms.toarray(), 0.5 * hybrid.tfidf.transform(texts).toarray(), rtol=1e-6)
    np.testing.assert_allclose(hybrid.transform(texts[:5]).toarray(), X[:5].toarray(), rtol=1e-6)


@pytest.mark.parametrize("head", ["mlp", "chain"])
def test_dense_only_heads_refuse_sparse_features_before_any_work(tmp_path, head):
    (tmp_path / "d.csv").write_text("text,label\nhello there,a\nhow are you,b\n")
    result = run("fit", tmp_path / "d.csv", "--label-col", "label", "--head", head, "--features", "tfidf",
                 "--model", tmp_path / "no-such-model", "--out", tmp_path / "m", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"embedclf: error: --features tfidf is sparse and the {head} head takes dense input only; "
        "use --head logreg / svm / knn or --features embedding"]
    assert not (tmp_path / "m").exists()


def test_feature_settings_are_checked_once():
    with pytest.raises(EmbedclfError, match="--tfidf-weight must be a number above 0"):
        FitSettings(features="hybrid", tfidf_weight=0)
    with pytest.raises(EmbedclfError, match="--features must be one of auto, embedding, tfidf, hybrid"):
        FitSettings(features="bm25")


def test_cli_hybrid_fit_predict_evaluate_and_tampering(tiny_model, tmp_path):
    train, test = goemotions_slice(tmp_path, "train", 300), goemotions_slice(tmp_path, "test", 60)
    data, common = GO_CLI, tiny_cli(tiny_model, tmp_path)
    fitted = run("fit", train, "--head", "svm", "--features", "hybrid", "--tfidf-weight", "2", *data,
                 "--out", tmp_path / "model", *common)
    assert fitted.returncode == 0, fitted.stderr
    assert "hybrid features with" in fitted.stderr
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    assert manifest["features"]["kind"] == "hybrid" and manifest["features"]["tfidf_weight"] == 2.0
    predicted = run("predict", tmp_path / "model", test, "--out", tmp_path / "p.csv", "--cache", tmp_path / "cache")
    assert predicted.returncode == 0 and "hybrid features with" in predicted.stderr, predicted.stderr
    evaluated = run("evaluate", tmp_path / "model", test, "--cache", tmp_path / "cache")
    assert evaluated.returncode == 0 and "micro_f1" in evaluated.stdout, evaluated.stderr
    features = tmp_path / "model" / "features.skops"
    features.write_bytes(features.read_bytes()[:-10])
    refused = run("predict", tmp_path / "model", test, "--out", tmp_path / "q.csv", "--cache", tmp_path / "cache")
    assert refused.returncode == 2 and "features.skops does not match its checksum" in refused.stderr


@pytest.mark.parametrize("head, expected", [("logreg", "hybrid"), ("svm", "hybrid"), ("knn", "embedding"),
                                            ("mlp", "embedding")])
def test_auto_features_are_hybrid_for_the_linear_heads_and_the_embedding_for_the_others(tiny_model, tmp_path, head,
                                                                                         expected):
    train = GO.load(goemotions_slice(tmp_path, n=120), require_labels=True)
    params = {"epochs": 2} if head == "mlp" else {}
    classifier = fit_classifier(train, make_head(head, **params), encoder(tiny_model, tmp_path), data_options=GO)
    assert classifier.features == expected
    classifier.save(tmp_path / "model")
    recorded = json.loads((tmp_path / "model" / "model.json").read_text()).get("features", {"kind": "embedding"})
    assert recorded["kind"] == expected  # the folder records what auto resolved to, never "auto"


def test_hybrid_on_a_handful_of_texts_sharing_no_word_keeps_every_word():
    from embedclf.features.tfidf import fit_terms, tfidf_vectorizer

    terms = fit_terms(tfidf_vectorizer(), ["good movie", "bad film", "great love"])
    assert terms.shape == (3, 9)  # min_df=2 would prune all: 6 words and 3 bigrams kept instead
    with pytest.raises(ValueError, match="no terms remain"):
        tfidf_vectorizer().fit(["good movie", "bad film"])


def test_tfidf_features_on_a_handful_of_texts_sharing_no_word_keep_every_word(tiny_model, tmp_path):
    data = tmp_path / "tiny.csv"
    data.write_text("text,label\nhello world,a\nbad thing,b\ngood day,a\nawful,b\n")
    fitted = run("fit", data, "--label-col", "label", "--features", "tfidf", "--out", tmp_path / "model",
                 "--model", tiny_model, "--cache", tmp_path / "cache", "--device", "cpu")
    assert fitted.returncode == 0, fitted.stderr  # min_df=2 would prune every term: fit refits with min_df=1
    classifier = TextClassifier.load(tmp_path / "model")
    assert len(classifier.pipeline.steps[0][1].vocabulary_) == 10  # 7 words and 3 bigrams
    assert classifier.predict(["bad thing", "good day"]) == [[["b"], ["a"]]]  # per target, per text


def test_word_and_char_ngrams_see_a_misspelling_whole_words_miss():
    from embedclf.features.tfidf import ngrams_of, term_count

    texts = ["I love this so much", "love it, really love it", "this is awful", "awful, just awful"]
    word, both = tfidf_vectorizer("word").fit(texts), tfidf_vectorizer("word+char").fit(texts)
    assert ngrams_of(word) == "word" and ngrams_of(both) == "word+char"
    assert term_count(both) > term_count(word) == len(word.vocabulary_)
    assert word.transform(["loove"]).nnz == 0  # an unseen word is invisible to the word block
    char_block = both.transform(["loove"])[:, len(word.vocabulary_):]
    assert char_block.nnz > 0  # "lo", "ov", "ve " ... are shared with "love"
    rows = both.transform(texts)
    np.testing.assert_allclose(sparse.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)  # two unit blocks at 1/sqrt(2)
    with pytest.raises(EmbedclfError, match="--tfidf-ngrams must be one of word, word\\+char, not 'char'"):
        tfidf_vectorizer("char")


def test_word_and_char_hybrid_round_trips_through_the_model_folder(tiny_model, tmp_path):
    from sklearn.pipeline import FeatureUnion

    from embedclf.features.tfidf import term_count

    train = GO.load(goemotions_slice(tmp_path, n=300), require_labels=True)
    classifier = fit_classifier(train, make_head("logreg"), encoder(tiny_model, tmp_path), data_options=GO,
                                valid_split=0.2, tune_thresholds=True, features="hybrid", tfidf_ngrams="word+char")
    assert isinstance(classifier.tfidf, FeatureUnion)
    X = classifier.embed(train.texts[:50])
    assert X.shape[1] == 32 + term_count(classifier.tfidf)
    classifier.save(tmp_path / "model")
    record = json.loads((tmp_path / "model" / "model.json").read_text())["features"]
    assert record["ngrams"] == "word+char" and record["terms"] == term_count(classifier.tfidf)
    loaded = TextClassifier.load(tmp_path / "model", cache=tmp_path / "cache")
    assert isinstance(loaded.tfidf, FeatureUnion)
    np.testing.assert_array_equal(loaded.predict_proba(train.texts[:50]), classifier.predict_proba(train.texts[:50]))


def test_a_vectoriser_file_that_is_not_embedclfs_union_is_refused(tmp_path):
    import skops.io as sio
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    from embedclf.features.tfidf import load_tfidf

    texts = ["good movie", "bad movie", "good film", "bad film"]
    for union in (FeatureUnion([("word", TfidfVectorizer()), ("char", CountVectorizer())]),
                  FeatureUnion([("char", TfidfVectorizer()), ("word", TfidfVectorizer())]),
                  FeatureUnion([("word", TfidfVectorizer()), ("char", TfidfVectorizer()), ("more", TfidfVectorizer())])):
        with pytest.raises(EmbedclfError, match="holds a FeatureUnion, not a fitted TfidfVectorizer"):
            load_tfidf(tmp_path / "features.skops", sio.dumps(union.fit(texts)))
    unfitted = tfidf_vectorizer("word+char")
    with pytest.raises(EmbedclfError, match="not a fitted TfidfVectorizer"):
        load_tfidf(tmp_path / "features.skops", sio.dumps(unfitted))
    assert load_tfidf(tmp_path / "f", sio.dumps(tfidf_vectorizer("word+char").fit(texts))).transform(texts).shape[0] == 4


def test_cli_fit_takes_word_and_char_ngrams_and_refuses_unknown_ones(tiny_model, tmp_path):
    train = goemotions_slice(tmp_path, "train", 200)
    data, common = GO_CLI, tiny_cli(tiny_model, tmp_path)
    fitted = run("fit", train, "--head", "svm", "--features", "hybrid", "--tfidf-ngrams", "word+char", *data,
                 "--out", tmp_path / "model", *common)
    assert fitted.returncode == 0, fitted.stderr
    assert "TF-IDF terms, word and character n-grams" in fitted.stderr
    assert json.loads((tmp_path / "model" / "model.json").read_text())["features"]["ngrams"] == "word+char"
    predicted = run("predict", tmp_path / "model", train, "--out", tmp_path / "p.csv", "--cache", tmp_path / "cache")
    assert predicted.returncode == 0 and "word and character n-grams" in predicted.stderr, predicted.stderr
    refused = run("fit", train, "--tfidf-ngrams", "char", *data, "--out", tmp_path / "other", *common)
    assert refused.returncode == 2 and "'char' is not one of 'word', 'word+char'" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "other").exists()
