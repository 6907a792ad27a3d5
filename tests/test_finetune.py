"""Fine-tuning the tiny model: each task kind learns, an interrupted run resumes at the right step,
and the saved folder predicts what the trained network predicted."""

from __future__ import annotations

import numpy as np
import pytest

from embedclf.data import DataOptions
from embedclf.finetune import BlockLoss, FineTuneSettings, block_loss, finetune
from embedclf.model import TextClassifier

ROWS = [("i love this great movie", "pos", "film|good"), ("what a terrible bad film", "neg", "film|bad"),
        ("the market fell and stocks fell", "neg", "market|bad"), ("grain and wheat price rose", "pos", "market|good"),
        ("so happy with the card thanks", "pos", "money|good"), ("the bank loan report was bad", "neg", "money|bad")]


def dataset(tmp_path, n=48):
    lines = ["text,sentiment,topics"] + [",".join(ROWS[i % len(ROWS)]) for i in range(n)]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def settings(tiny_model, **changes):
    base = dict(model=tiny_model, epochs=6, lr=3e-3, head_lr=1e-2, batch_size=8, max_length=32, device="cpu",
                warmup=0.0)
    return FineTuneSettings(**(base | changes))


@pytest.mark.parametrize("labels, sep", [(["sentiment"], None), (["topics"], "|"), (["sentiment", "topics"], "|")])
def test_each_task_kind_trains_and_loss_falls(tiny_model, tmp_path, labels, sep):
    options = DataOptions(["text"], labels, label_sep=sep)
    train = options.load(dataset(tmp_path), require_labels=True)
    classifier = finetune(train, settings(tiny_model), tmp_path / "model", data_options=options,
                          cache=tmp_path / "cache")
    history = classifier.info["finetune"]["history"]
    assert len(history) == 6 and history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    assert classifier.space.task == {1: train.task}.get(len(labels), "multioutput")


def test_saved_folder_predicts_like_the_trained_network(tiny_model, tmp_path):
    options = DataOptions(["text"], ["sentiment", "topics"], label_sep="|")
    train = options.load(dataset(tmp_path), require_labels=True)
    trained = finetune(train, settings(tiny_model, epochs=2), tmp_path / "model", data_options=options,
                       valid=train, cache=tmp_path / "cache")
    loaded = TextClassifier.load(tmp_path / "model", cache=tmp_path / "cache")
    assert (tmp_path / "model" / "encoder" / "model.safetensors").exists()
    assert loaded.predict(train.texts) == trained.predict(train.texts)
    np.testing.assert_allclose(loaded.scores(loaded.embed(train.texts)), trained.scores(trained.embed(train.texts)),
                               atol=1e-6)
    assert "validation" in loaded.info and loaded.info["finetune"]["best_epoch"] in (1, 2)


def test_interrupted_run_resumes_at_the_right_step(tiny_model, tmp_path, monkeypatch):
    options = DataOptions(["text"], ["topics"], label_sep="|")
    train = options.load(dataset(tmp_path), require_labels=True)   # 48 rows / 8 = 6 steps per epoch
    reference = finetune(train, settings(tiny_model, epochs=2), tmp_path / "reference", data_options=options,
                         cache=tmp_path / "cache")

    calls = {"n": 0}
    original = BlockLoss.__call__

    def interrupt_at_step_9(self, logits, Y):
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt
        return original(self, logits, Y)

    monkeypatch.setattr(BlockLoss, "__call__", interrupt_at_step_9)
    with pytest.raises(KeyboardInterrupt):
        finetune(train, settings(tiny_model, epochs=2, checkpoint_every=1), tmp_path / "model",
                 data_options=options, cache=tmp_path / "cache")
    assert (tmp_path / "model.checkpoint" / "checkpoint.pt").exists() and not (tmp_path / "model").exists()
    monkeypatch.setattr(BlockLoss, "__call__", original)
    messages = []
    resumed = finetune(train, settings(tiny_model, epochs=2, checkpoint_every=1), tmp_path / "model",
                       data_options=options, resume=True, cache=tmp_path / "cache", say=messages.append)
    assert any("resuming at epoch 2, step 8 of 12" in m for m in messages), messages
    assert resumed.info["finetune"]["steps"] == 12
    np.testing.assert_allclose(resumed.scores(resumed.embed(train.texts)),
                               reference.scores(reference.embed(train.texts)), atol=1e-5)
    assert not (tmp_path / "model.checkpoint").exists()


def test_the_loss_is_the_mlp_heads_per_row_nll_with_balanced_positive_weights():
    """One reduction for the fine-tune and the MLP head: per row, the sum over blocks, then the mean over rows."""
    import torch

    layout = (("multiclass", 3), ("multilabel", 2))
    Y = np.array([[1, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=np.float32)
    logits = np.random.default_rng(0).normal(size=Y.shape).astype(np.float32)
    loss = block_loss(layout, Y, "balanced", "cpu")(torch.from_numpy(logits), torch.from_numpy(Y))

    z, y = logits[:, :3], Y[:, :3]
    cross_entropy = (np.log(np.exp(z).sum(axis=1)) - (z * y).sum(axis=1)) * y.sum(axis=1)  # row 4: class unseen
    pos_weight = np.clip((4 - Y[:, 3:].sum(axis=0)) / Y[:, 3:].sum(axis=0), 1, 100)  # [1, 3]: multi-class untouched
    p = 1 / (1 + np.exp(-logits[:, 3:]))
    bce = -(pos_weight * Y[:, 3:] * np.log(p) + (1 - Y[:, 3:]) * np.log(1 - p)).sum(axis=1)
    assert float(loss) == pytest.approx((cross_entropy + bce).mean(), rel=1e-5)
