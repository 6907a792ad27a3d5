"""Shared fixtures: a tiny random BERT model built on the fly, and the shared real data sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
WORDS = ("i am so happy sad angry this is great terrible love hate the a movie film good bad news market "
         "stocks grain wheat corn oil price rose fell bank loan money card credit report thanks you not "
         "very really what why how it was and but").split()


def shared_file(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A random 2-layer BERT (hidden 32) with a word-level vocabulary, saved like a Hugging Face model."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-bert")
    letters = "abcdefghijklmnopqrstuvwxyz"
    # whole words for the common ones; any other word splits into letter pieces, so no text is all [UNK]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(WORDS)) + list(letters + "0123456789") + \
        [f"##{c}" for c in letters + "0123456789"] + list(".,!?'-#")
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(dict.fromkeys(vocab))},
                                  do_lower_case=True, model_max_length=128)
    assert "[UNK]" not in tokenizer.tokenize("Zebras, 42 apples!")
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=128))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="session", autouse=True)
def session_exports(tmp_path_factory) -> Path:
    """Set before any fixture of a wider scope encodes (a module's fixture may encode with the default model)."""
    folder = tmp_path_factory.mktemp("exports")
    before = os.environ.get("EMBEDCLF_EXPORTS")
    os.environ["EMBEDCLF_EXPORTS"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("EMBEDCLF_EXPORTS", None)
    else:
        os.environ["EMBEDCLF_EXPORTS"] = before


@pytest.fixture(autouse=True)
def exports_in_tmp(session_exports, monkeypatch) -> Path:
    """No test writes to the real per-user export store: one store for the session (so that a model's
    exports and bf16 verdict are made once), in a temporary folder."""
    monkeypatch.setenv("EMBEDCLF_EXPORTS", str(session_exports))
    return session_exports


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


def sample_texts(n: int, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 40))) for _ in range(n)]
