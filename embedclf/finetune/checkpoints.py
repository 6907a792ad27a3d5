"""Checkpoints of a fine-tune run, so that an interrupted run resumes where it stopped.

A run's folder (``<out>.checkpoint``) holds ``checkpoint.pt`` (network, optimiser, schedule, torch's
RNG and the run's progress, rewritten atomically) and ``best.pt`` (the weights of the best epoch
so far). Torch's RNG is saved so that dropout masks continue as if the run had never stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from embedclf.errors import EmbedclfError

CHECKPOINT, BEST = "checkpoint.pt", "best.pt"


def new_state() -> dict:
    """The progress of a run that has not started: what a checkpoint records and ``train`` returns."""
    return {"step": 0, "epoch": 0, "history": [], "best_score": -1.0, "best_epoch": None}


def start(directory: Path, resume: bool, net, optimizer, scheduler, device) -> dict:
    """The run's state: restored from ``directory`` with ``resume``, else new (refusing to overwrite one)."""
    directory.mkdir(parents=True, exist_ok=True)
    if resume:
        return restore(directory, net, optimizer, scheduler, device)
    if (directory / CHECKPOINT).exists():
        raise EmbedclfError(f"{directory} holds a checkpoint of an earlier run: pass --resume to continue it, "
                            "or delete the folder to start over")
    return new_state()


def save(directory: Path, net, optimizer, scheduler, state: dict) -> None:
    import torch

    tmp = directory / f".{CHECKPOINT}.tmp"
    torch.save({"net": net.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "state": json.dumps(state), "rng": torch.get_rng_state()}, tmp)
    os.replace(tmp, directory / CHECKPOINT)


def restore(directory: Path, net, optimizer, scheduler, device) -> dict:
    import torch

    path = directory / CHECKPOINT
    if not path.exists():
        raise EmbedclfError(f"--resume: no checkpoint in {directory}")
    saved = torch.load(path, weights_only=True, map_location=device)
    net.load_state_dict(saved["net"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    return json.loads(saved["state"])


def save_best(directory: Path, net) -> None:
    import torch

    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, directory / BEST)


def load_best(directory: Path, net) -> None:
    import torch

    net.load_state_dict(torch.load(directory / BEST, weights_only=True))
