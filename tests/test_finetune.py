"""Fine-tuning the tiny model: each task kind learns, an interrupted run resumes at the right step,
and the saved folder predicts what the trained network predicted."""

from __future__ import annotations

import re

import numpy as np
import pytest

from embedclf.data import DataOptions
from embedclf.errors import EmbedclfError
from embedclf.finetune import BlockLoss, FineTuner, FineTuneSettings, block_loss, finetune
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


@pytest.mark.parametrize("change, message", [
    (dict(epochs=0), "--epochs must be at least 1, got 0"),
    (dict(batch_size=0), "--batch-size must be at least 1, got 0"),
    (dict(lr=0.0), "--lr must be positive, got 0.0"),
    (dict(head_lr=-1e-3), "--head-lr must be positive"),
    (dict(warmup=1.0), r"--warmup must be in \[0, 1\), got 1.0"),
    (dict(max_length=0), "--max-length must be at least 1"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
    (dict(pos_weight="auto"), "--pos-weight 'auto' is not one of: balanced"),
    (dict(checkpoint_every=-1), "--checkpoint-every must be at least 0"),
    (dict(max_steps=0), "--max-steps must be at least 1"),
    (dict(epochs=1.5), "--epochs must be a whole number at least 1"),
])
def test_bad_settings_are_one_line_errors_when_made(change, message):
    with pytest.raises(EmbedclfError, match=message):
        FineTuneSettings(**change)


def test_settings_are_frozen_and_max_length_is_checked_against_the_model(tiny_model):
    from dataclasses import FrozenInstanceError

    from embedclf.labels import LabelSpace, TargetSpace

    with pytest.raises(FrozenInstanceError):
        FineTuneSettings().epochs = 5
    space = LabelSpace([TargetSpace("sentiment", "multiclass", ["neg", "pos"])])
    with pytest.raises(EmbedclfError, match="--max-length 512 is above the 128 tokens"):
        FineTuner(settings(tiny_model, max_length=512), space, say=print)


def test_eta_message_does_not_break_the_progress_bar(monkeypatch):
    """The bar is cleared while the message is said and redrawn after, instead of the message landing on its line."""
    import io
    import sys

    from tqdm.auto import tqdm

    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    tuner = FineTuner.__new__(FineTuner)  # only what _say_eta uses: no model
    tuner.settings, tuner.device, tuner.say = FineTuneSettings(batch_size=8), "cpu", lambda m: print(m, file=sys.stderr)
    bar = tqdm(total=10, desc="epoch 1/2", file=sys.stderr, disable=False)
    bar.update(5)
    tuner._say_eta(0.5, 120, bar)
    bar.close()
    said = [part for part in re.split(r"[\r\n]", stream.getvalue()) if "per epoch" in part]
    assert said == ["about 1.0 min per epoch on cpu (0.50s per step of 8)"]
