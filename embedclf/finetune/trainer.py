"""Training the fine-tune network: batches, optimiser and schedule, epochs, validation, checkpoints."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from embedclf.encode.models import resolve_device, resolve_model
from embedclf.errors import EmbedclfError
from embedclf.finetune import checkpoints
from embedclf.finetune.network import build_network, linear_head, save_encoder
from embedclf.finetune.settings import FineTuneSettings
from embedclf.heads.losses import BlockLoss, balanced_weights
from embedclf.labels import MULTICLASS, LabelSpace, block_decisions, block_probabilities

TOKENIZER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def block_loss(layout, Y: np.ndarray, pos_weight: str | None, device) -> BlockLoss:
    """The training loss; ``pos_weight='balanced'`` gives multi-label columns ``n_neg / n_pos`` (in [1, 100])."""
    if pos_weight not in (None, "balanced"):
        raise EmbedclfError(f"--pos-weight must be 'balanced' or omitted, got {pos_weight!r}")
    weights = balanced_weights(layout, Y, classes=False) if pos_weight == "balanced" else None
    return BlockLoss(layout, weights, device=device)


def selection_score(report: dict) -> float:
    """One number per epoch to keep the best: micro-F1 (multi-label) or accuracy, averaged over targets."""
    values = [t.get("micro_f1") if t.get("kind") != MULTICLASS else t.get("accuracy")
              for t in report["targets"].values()]
    return float(np.mean([v for v in values if v is not None] or [0.0]))


@dataclass
class _Run:
    """What one call of :meth:`FineTuner.train` works with."""

    optimizer: object
    scheduler: object
    scaler: object
    loss_fn: BlockLoss
    Y: object  # the training labels, a float32 tensor on the CPU
    directory: Path
    steps_per_epoch: int
    total_steps: int


class FineTuner:
    """Trains the network of :mod:`embedclf.finetune.network`; resumable from its checkpoint folder."""

    def __init__(self, settings: FineTuneSettings, space: LabelSpace, say: Callable[[str], None]):
        import torch
        import transformers
        from transformers import AutoTokenizer

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        self.settings, self.space, self.say = settings, space, say
        self.ref = resolve_model(settings.model)
        settings.check_model(self.ref)
        self.device = resolve_device(settings.device)
        torch.manual_seed(settings.seed)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.ref.path))
        self.net = build_network(self.ref.path, space.n_columns, settings.dropout).to(self.device)
        self.autocast_dtype = None
        if self.device.startswith("cuda"):
            self.autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    # -- running the network ---------------------------------------------------------------------
    def _batches(self, texts: list[str], order: np.ndarray):
        for start in range(0, len(order), self.settings.batch_size):
            rows = order[start:start + self.settings.batch_size]
            encoded = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                     max_length=self.settings.max_length, return_tensors="pt")
            yield rows, {k: v.to(self.device) for k, v in encoded.items() if k in TOKENIZER_INPUTS}

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
        import torch

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.autocast_dtype)

    # -- training --------------------------------------------------------------------------------
    def train(self, texts, Y, valid_texts, Y_valid, checkpoint_dir: Path, resume: bool) -> dict:
        """Train on ``texts``/``Y``, keep the best epoch (by validation, else the last) and return the
        run's state (steps, epochs, history, best epoch)."""
        run = self._start_run(len(texts), Y, checkpoint_dir)
        state = checkpoints.start(checkpoint_dir, resume, self.net, run.optimizer, run.scheduler, self.device)
        if resume:
            self.say(f"resuming at epoch {state['epoch'] + 1}, step {state['step']} of {run.total_steps}")
        first_epoch = state["epoch"]
        while state["step"] < run.total_steps and state["epoch"] < self.settings.epochs:
            entry, finished = self._epoch(run, state, texts, say_eta=state["epoch"] == first_epoch)
            self._end_epoch(run, state, entry, finished, valid_texts, Y_valid)
            if not finished:
                break
        checkpoints.load_best(checkpoint_dir, self.net)
        return state

    def _start_run(self, n_texts: int, Y: np.ndarray, directory: Path) -> _Run:
        """The optimiser (AdamW; no decay on biases and LayerNorm; ``head_lr`` for the classifier),
        the linear warm-up and decay schedule, the gradient scaler and the loss."""
        import torch
        from transformers import get_linear_schedule_with_warmup

        s = self.settings
        steps_per_epoch = math.ceil(n_texts / s.batch_size)
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
        return _Run(optimizer, scheduler, scaler, block_loss(self.space.layout, Y, s.pos_weight, self.device),
                    torch.as_tensor(Y, dtype=torch.float32), directory, steps_per_epoch, total_steps)

    def _epoch(self, run: _Run, state: dict, texts, say_eta: bool) -> tuple[dict, bool]:
        """Train one epoch (its rest, when resumed mid-epoch); its history entry, and whether it finished."""
        from tqdm.auto import tqdm

        s, epoch = self.settings, state["epoch"]
        order = np.random.RandomState(s.seed + epoch).permutation(len(texts))
        done_in_epoch = state["step"] - epoch * run.steps_per_epoch
        self.net.train()
        running, seen, started = 0.0, 0, time.perf_counter()
        bar = tqdm(total=run.steps_per_epoch, initial=done_in_epoch, desc=f"epoch {epoch + 1}/{s.epochs}",
                   unit="step", disable=None)
        for index, (rows, batch) in enumerate(self._batches(texts, order)):
            if index < done_in_epoch:
                continue  # consumed before the checkpoint we resumed from
            running, seen = running + self._step(run, rows, batch), seen + 1
            state["step"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{running / seen:.4f}")
            if say_eta and seen == 5 and not self.device.startswith("cuda"):
                self._say_eta((time.perf_counter() - started) / seen, run.steps_per_epoch, bar)
            if s.checkpoint_every and state["step"] % s.checkpoint_every == 0:
                checkpoints.save(run.directory, self.net, run.optimizer, run.scheduler, state)
            if state["step"] >= run.total_steps:
                break
        bar.close()
        entry = {"epoch": epoch + 1, "steps": state["step"], "train_loss": running / max(seen, 1)}
        return entry, state["step"] >= (epoch + 1) * run.steps_per_epoch

    def _step(self, run: _Run, rows, batch) -> float:
        """One optimiser step on a batch (mixed precision on CUDA, gradients clipped at norm 1); its loss."""
        import torch

        with self._autocast():
            loss = run.loss_fn(self.net(batch), run.Y[rows].to(self.device))
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        return loss.item()

    def _say_eta(self, per_step: float, steps_per_epoch: int, bar) -> None:
        """How long an epoch will take, said between redraws of the progress bar rather than through it."""
        with bar.external_write_mode():
            self.say(f"about {per_step * steps_per_epoch / 60:.1f} min per epoch on {self.device} "
                     f"({per_step:.2f}s per step of {self.settings.batch_size})")

    def _end_epoch(self, run: _Run, state: dict, entry: dict, finished: bool, valid_texts, Y_valid) -> None:
        """Score the epoch on validation, keep its weights if it is the best so far, record and checkpoint it."""
        epoch = state["epoch"]
        if valid_texts is not None:
            entry["validation_score"] = self.validation_score(valid_texts, Y_valid)
            self.say(f"epoch {epoch + 1}: train loss {entry['train_loss']:.4f}, validation "
                     f"micro-F1/accuracy {entry['validation_score']:.4f}")
        score = entry.get("validation_score", epoch)  # without validation the last epoch is kept
        if score > state["best_score"]:
            state["best_score"], state["best_epoch"] = score, epoch + 1
            checkpoints.save_best(run.directory, self.net)
        state["history"].append(entry)
        if finished:
            state["epoch"] = epoch + 1
        checkpoints.save(run.directory, self.net, run.optimizer, run.scheduler, state)

    def validation_score(self, texts, Y) -> float:
        from embedclf.evaluate import evaluate

        scores = block_probabilities(self.logits(texts), self.space.layout)
        report = evaluate(self.space, Y, block_decisions(scores, self.space.layout), scores)
        return selection_score(report)

    # -- what a model folder keeps ----------------------------------------------------------------
    def save_encoder(self, directory: Path) -> None:
        save_encoder(self.net, self.tokenizer, directory, self.settings.max_length)

    def linear_head(self):
        return linear_head(self.net, self.space.layout)
