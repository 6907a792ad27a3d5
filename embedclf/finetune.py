"""Full fine-tuning of the encoder with a classification layer, for comparison with the cheap heads.

The network is the encoder's transformer → mean pooling → dropout → one linear layer over every
label column (one block per target, as the heads). The loss is the MLP head's,
:class:`embedclf.heads.losses.BlockLoss`: per row, softmax cross-entropy per multi-class block plus
BCE with logits summed over a multi-label block's columns (``pos_weight='balanced'`` weighs rare
labels' positives up), averaged over rows. AdamW, linear warm-up and decay, gradient clipping at
1.0, mixed precision on CUDA.

The result is an ordinary model folder: the fine-tuned transformer is saved inside it (safetensors,
loadable as a SentenceTransformer) and the classification layer becomes a linear
:class:`~embedclf.heads.mlp.MLPHead`, so ``predict``, ``evaluate`` and ``--cooccur`` work unchanged
and ``embedclf encode --model MODEL_DIR`` encodes with the fine-tuned transformer.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from embedclf.data import DataOptions, Dataset
from embedclf.encode.models import DEFAULT_MODEL, resolve_device, resolve_model
from embedclf.errors import EmbedclfError
from embedclf.heads.losses import BlockLoss, balanced_weights
from embedclf.labels import MULTICLASS, LabelSpace, block_decisions, block_probabilities

CHECKPOINT = "checkpoint.pt"


@dataclass
class FineTuneSettings:
    model: str = DEFAULT_MODEL
    epochs: int = 3
    lr: float = 2e-5
    head_lr: float = 1e-3  # the classification layer starts from random weights: it may learn faster
    batch_size: int = 16
    max_length: int = 128
    warmup: float = 0.1
    weight_decay: float = 0.01
    dropout: float = 0.1
    pos_weight: str | None = None  # None or "balanced"
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints (0: at the end of each epoch only)
    max_steps: int | None = None  # stop after this many optimiser steps in total (for smoke runs)


def _network(path: Path, n_outputs: int, dropout: float):
    import torch
    from transformers import AutoModel

    class FineTuneNet(torch.nn.Module):
        """Transformer → masked mean pooling → dropout → linear over all label columns."""

        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(path))
            self.dropout = torch.nn.Dropout(dropout)
            self.classifier = torch.nn.Linear(self.encoder.config.hidden_size, n_outputs)

        def pooled(self, input_ids, attention_mask, **extra):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

        def forward(self, batch):
            return self.classifier(self.dropout(self.pooled(**batch)))

    return FineTuneNet()


def block_loss(layout, Y: np.ndarray, pos_weight: str | None, device) -> BlockLoss:
    """The training loss; ``pos_weight='balanced'`` gives multi-label columns ``n_neg / n_pos`` (in [1, 100])."""
    if pos_weight not in (None, "balanced"):
        raise EmbedclfError(f"--pos-weight must be 'balanced' or omitted, got {pos_weight!r}")
    weights = balanced_weights(layout, Y, classes=False) if pos_weight == "balanced" else None
    return BlockLoss(layout, weights, device=device)


def _selection_score(report: dict) -> float:
    """One number per epoch to keep the best: micro-F1 (multi-label) or accuracy, averaged over targets."""
    values = [t.get("micro_f1") if t.get("kind") != MULTICLASS else t.get("accuracy")
              for t in report["targets"].values()]
    return float(np.mean([v for v in values if v is not None] or [0.0]))


class FineTuner:
    """Trains :func:`_network` on a data set; resumable from the checkpoint folder ``<out>.checkpoint``."""

    def __init__(self, settings: FineTuneSettings, space: LabelSpace, say: Callable[[str], None]):
        import torch
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        self.settings, self.space, self.say = settings, space, say
        self.ref = resolve_model(settings.model)
        self.device = resolve_device(settings.device)
        torch.manual_seed(settings.seed)
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(self.ref.path))
        self.net = _network(self.ref.path, space.n_columns, settings.dropout).to(self.device)
        self.autocast_dtype = None
        if self.device.startswith("cuda"):
            self.autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _batches(self, texts: list[str], order: np.ndarray):
        for start in range(0, len(order), self.settings.batch_size):
            rows = order[start:start + self.settings.batch_size]
            encoded = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                     max_length=self.settings.max_length, return_tensors="pt")
            yield rows, {k: v.to(self.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask",
                                                                                    "token_type_ids")}

    def logits(self, texts: list[str]) -> np.ndarray:
        import torch

        self.net.eval()
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths batch together
        out = np.empty((len(texts), self.space.n_columns), dtype=np.float32)
        with torch.inference_mode(), self._autocast():
            for rows, batch in self._batches(texts, order):
                out[rows] = self.net(batch).float().cpu().numpy()
        return out

    def _autocast(self):
        import contextlib

        import torch

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.autocast_dtype)

    def train(self, texts, Y, valid_texts, Y_valid, checkpoint_dir: Path, resume: bool) -> dict:
        import torch
        from tqdm.auto import tqdm
        from transformers import get_linear_schedule_with_warmup

        from embedclf.evaluate import evaluate

        s = self.settings
        steps_per_epoch = math.ceil(len(texts) / s.batch_size)
        total_steps = steps_per_epoch * s.epochs if s.max_steps is None else min(s.max_steps,
                                                                                  steps_per_epoch * s.epochs)
        body = [(n, p) for n, p in self.net.named_parameters() if not n.startswith("classifier.")]
        decay = [p for n, p in body if not n.endswith("bias") and "LayerNorm" not in n]
        no_decay = [p for n, p in body if n.endswith("bias") or "LayerNorm" in n]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0},
                                       {"params": list(self.net.classifier.parameters()), "lr": s.head_lr,
                                        "weight_decay": 0.0}], lr=s.lr)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(s.warmup * total_steps), total_steps)
        scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        loss_fn = block_loss(self.space.layout, Y, s.pos_weight, self.device)
        Y_tensor = torch.as_tensor(Y, dtype=torch.float32)
        state = {"step": 0, "epoch": 0, "history": [], "best_score": -1.0, "best_epoch": None}
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            state = self._restore(checkpoint_dir, optimizer, scheduler, state)
            self.say(f"resuming at epoch {state['epoch'] + 1}, step {state['step']} of {total_steps}")
        elif (checkpoint_dir / CHECKPOINT).exists():
            raise EmbedclfError(f"{checkpoint_dir} holds a checkpoint of an earlier run: pass --resume to continue "
                                "it, or delete the folder to start over")

        started = time.perf_counter()
        while state["step"] < total_steps and state["epoch"] < s.epochs:
            epoch = state["epoch"]
            order = np.random.RandomState(s.seed + epoch).permutation(len(texts))
            done_in_epoch = state["step"] - epoch * steps_per_epoch
            self.net.train()
            running, seen = 0.0, 0
            bar = tqdm(total=steps_per_epoch, initial=done_in_epoch, desc=f"epoch {epoch + 1}/{s.epochs}",
                       unit="step", disable=None)
            for index, (rows, batch) in enumerate(self._batches(texts, order)):
                if index < done_in_epoch:
                    continue  # consumed before the checkpoint we resumed from
                with self._autocast():
                    loss = loss_fn(self.net(batch), Y_tensor[rows].to(self.device))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                state["step"] += 1
                running, seen = running + loss.item(), seen + 1
                bar.update(1)
                bar.set_postfix(loss=f"{running / seen:.4f}")
                if seen == 5 and epoch == state["epoch"] and not self.device.startswith("cuda"):
                    per_step = (time.perf_counter() - started) / seen
                    self.say(f"about {per_step * steps_per_epoch / 60:.1f} min per epoch on {self.device} "
                             f"({per_step:.2f}s per step of {s.batch_size})")
                if s.checkpoint_every and state["step"] % s.checkpoint_every == 0:
                    self._save(checkpoint_dir, optimizer, scheduler, state)
                if state["step"] >= total_steps:
                    break
            bar.close()
            finished_epoch = state["step"] >= (epoch + 1) * steps_per_epoch
            entry = {"epoch": epoch + 1, "steps": state["step"], "train_loss": running / max(seen, 1)}
            if valid_texts is not None:
                scores = block_probabilities(self.logits(valid_texts), self.space.layout)
                report = evaluate(self.space, Y_valid, block_decisions(scores, self.space.layout), scores)
                entry["validation_score"] = _selection_score(report)
                self.say(f"epoch {epoch + 1}: train loss {entry['train_loss']:.4f}, validation "
                         f"micro-F1/accuracy {entry['validation_score']:.4f}")
            score = entry.get("validation_score", epoch)  # without validation the last epoch is kept
            if score > state["best_score"]:
                state["best_score"], state["best_epoch"] = score, epoch + 1
                torch.save({k: v.detach().cpu() for k, v in self.net.state_dict().items()}, checkpoint_dir / "best.pt")
            state["history"].append(entry)
            if finished_epoch:
                state["epoch"] = epoch + 1
            self._save(checkpoint_dir, optimizer, scheduler, state)
            if not finished_epoch:
                break
        self.net.load_state_dict(torch.load(checkpoint_dir / "best.pt", weights_only=True))
        return state

    def _save(self, directory: Path, optimizer, scheduler, state: dict) -> None:
        import os

        import torch

        tmp = directory / f".{CHECKPOINT}.tmp"
        torch.save({"net": self.net.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "state": json.dumps(state),
                    "rng": torch.get_rng_state()}, tmp)  # dropout masks continue as if never stopped
        os.replace(tmp, directory / CHECKPOINT)

    def _restore(self, directory: Path, optimizer, scheduler, state: dict) -> dict:
        import torch

        path = directory / CHECKPOINT
        if not path.exists():
            raise EmbedclfError(f"--resume: no checkpoint in {directory}")
        saved = torch.load(path, weights_only=True, map_location=self.device)
        self.net.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        return json.loads(saved["state"])

    def save_encoder(self, directory: Path) -> None:
        """The fine-tuned transformer as a SentenceTransformer folder: Transformer → mean Pooling."""
        self.net.encoder.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)
        (directory / "1_Pooling").mkdir(exist_ok=True)
        (directory / "1_Pooling" / "config.json").write_text(json.dumps(
            {"embedding_dimension": self.net.encoder.config.hidden_size, "pooling_mode": "mean"}))
        (directory / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
        (directory / "sentence_bert_config.json").write_text(json.dumps(
            {"max_seq_length": self.settings.max_length, "do_lower_case": False}))

    def linear_head(self, n_features: int):
        """The classification layer as a fitted linear MLPHead (dropout is off at inference)."""
        from embedclf.heads.mlp import MLPHead

        head = MLPHead(hidden=())
        layer = self.net.classifier
        head.weights_ = [layer.weight.detach().cpu().numpy().T.astype(np.float32)]
        head.biases_ = [layer.bias.detach().cpu().numpy().astype(np.float32)]
        head.layout_, head.classes_, head.n_features_in_ = self.space.layout, None, n_features
        head.loss_curve_, head.validation_loss_curve_, head.best_epoch_, head.n_epochs_ = [], [], None, 0
        return head


def finetune(train: Dataset, settings: FineTuneSettings, out: str | Path, *, data_options: DataOptions | None = None,
             valid: Dataset | None = None, valid_split: float | None = None, tune_thresholds: bool = False,
             tune_for: str = "macro", threshold: float = 0.5, resume: bool = False, cache=None,
             say: Callable[[str], None] | None = None):
    """Fine-tune ``settings.model`` on ``train`` and save a model folder at ``out``; returns the classifier."""
    from embedclf.encode.encoder import Encoder
    from embedclf.fit import score_validation, training_splits
    from embedclf.model import TextClassifier

    say = say or (lambda message: None)
    space, texts, Y, valid_texts, Y_valid = training_splits(train, valid, valid_split, tune_thresholds,
                                                            settings.seed, say, tune_for)

    out = Path(out)
    tuner = FineTuner(settings, space, say)
    say(f"fine-tuning {tuner.ref.describe()} on {len(texts):,} texts, {tuner.device}"
        + (f" with {str(tuner.autocast_dtype).split('.')[-1]} autocast" if tuner.autocast_dtype else ""))
    started = time.perf_counter()
    state = tuner.train(texts, Y, valid_texts, Y_valid, out.with_name(out.name + ".checkpoint"), resume)
    seconds = time.perf_counter() - started

    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.encoder-", dir=out.parent if out.parent.exists() else None))
    try:
        tuner.save_encoder(staging)
        encoder = Encoder(str(staging), pooling="mean", max_length=settings.max_length, normalize=False,
                          precision="fp32", device=settings.device, batch_size=settings.batch_size * 2, cache=cache)
        head = tuner.linear_head(tuner.net.encoder.config.hidden_size)
        info = {"finetune": {"epochs_run": state["epoch"], "steps": state["step"], "best_epoch": state["best_epoch"],
                             "history": state["history"], "seconds": round(seconds, 1),
                             "settings": {k: v for k, v in vars(settings).items()}},
                "train_rows": len(texts), "train_file": train.path, "fit_seconds": round(seconds, 1)}
        classifier = TextClassifier(encoder, head, space, data_options=data_options, thresholds=threshold, info=info)
        if valid_texts is not None:
            scores = block_probabilities(tuner.logits(valid_texts), space.layout)
            score_validation(classifier, Y_valid, scores, tune_thresholds, threshold, tune_for)
        classifier.save(out, bundle={"encoder": staging})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(out.with_name(out.name + ".checkpoint"), ignore_errors=True)
    return TextClassifier.load(out, cache=cache, device=settings.device)  # encoder now read from inside ``out``
