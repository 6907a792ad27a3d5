"""Prepacked Linear layers (``encode/backends/prepack``): the same vectors, GELU fused only where it is exact."""

from __future__ import annotations

import numpy as np
import pytest

from embedclf.encode.settings import EncoderSettings
from tests.conftest import sample_texts

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


def _bert(hidden_act: str):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, hidden_act=hidden_act)).eval()


@pytest.mark.parametrize("hidden_act, fused", [("gelu", True), ("relu", False), ("gelu_new", False)])
def test_prepacked_bert_computes_what_it_did(hidden_act, fused):
    from embedclf.encode.backends.prepack import prepack_linears

    model = _bert(hidden_act)
    ids = torch.randint(5, 50, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.inference_mode():
        before = model(input_ids=ids, attention_mask=mask).last_hidden_state
    linears = sum(type(m) is torch.nn.Linear for m in model.modules())
    assert prepack_linears(model) == linears == 2 * 6 + 1  # six per layer, and BERT's pooler
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    intermediate = model.encoder.layer[0].intermediate
    assert isinstance(intermediate.intermediate_act_fn, torch.nn.Identity) is fused
    assert intermediate.dense.activation == ("gelu" if fused else "none")
    with torch.inference_mode():
        after = model(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_a_model_with_weights_it_cannot_pack_is_left_alone():
    from embedclf.encode.backends.prepack import prepack_linears

    model = _bert("gelu").half()
    assert prepack_linears(model) == 0
    assert type(model.encoder.layer[0].intermediate.dense) is torch.nn.Linear


def test_torch_backend_packs_on_cpu_and_encodes_as_sentence_transformers_does(tiny_model):
    from sentence_transformers import SentenceTransformer

    from embedclf.encode.backends.torch import TorchEmbedder

    settings = EncoderSettings(model=tiny_model, backend="torch", precision="fp32", device="cpu",
                               max_length=64).resolve()
    embedder = TorchEmbedder(settings)
    assert embedder.packed_layers > 0
    texts = sorted(sample_texts(40, seed=3), key=len, reverse=True)
    vectors = embedder.encode(texts, embedder.token_counts(texts))
    reference = SentenceTransformer(tiny_model, device="cpu")
    reference.max_seq_length = 64
    expected = reference.encode(texts, normalize_embeddings=True, batch_size=16)
    np.testing.assert_allclose(vectors, expected, atol=2e-5)


def test_other_machines_keep_plain_linear_layers(monkeypatch):
    import platform

    from embedclf.encode.backends.prepack import prepack_linears

    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    model = _bert("gelu")
    assert prepack_linears(model) == 0 and type(model.encoder.layer[0].output.dense) is torch.nn.Linear
