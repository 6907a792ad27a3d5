"""Options shared by several commands, named the same way everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

DATA = "Data options"
ENCODER = "Encoder options"
DECIDE = "Decision options"

Columns = Annotated[Optional[str], typer.Option(
    help="Comma-separated names for the columns of a headerless CSV/TSV file.", rich_help_panel=DATA)]
TextCol = Annotated[Optional[list[str]], typer.Option(
    "--text-col", help="Text column; repeat to join several (title + body). [default: text]", rich_help_panel=DATA)]
LabelCol = Annotated[Optional[list[str]], typer.Option(
    "--label-col", help="Label column; repeat for multi-output (one target per column).", rich_help_panel=DATA)]
LabelSep = Annotated[Optional[str], typer.Option(
    help="Separator inside a label cell holding several labels (makes the target multi-label).", rich_help_panel=DATA)]
LabelNames = Annotated[Optional[list[Path]], typer.Option(
    "--label-names", help="File with one label name per line, mapping integer ids to names; one per --label-col.",
    rich_help_panel=DATA)]
Task = Annotated[Optional[str], typer.Option(
    help="Force the task kind: multiclass, multilabel or multioutput (inferred from the labels otherwise).",
    rich_help_panel=DATA)]
Strict = Annotated[bool, typer.Option(
    "--strict", help="Fail on an empty text or a missing label instead of skipping and counting it.", rich_help_panel=DATA)]

Model = Annotated[Optional[str], typer.Option(
    help="Model: a local directory or a Hugging Face id. [default: sentence-transformers/all-MiniLM-L6-v2, "
         "the copy installed with embedclf]", rich_help_panel=ENCODER)]
BatchSize = Annotated[int, typer.Option(help="Texts per forward pass.", rich_help_panel=ENCODER)]
MaxLength = Annotated[Optional[int], typer.Option(
    help="Tokens per text; longer texts are truncated. [default: the model's own]", rich_help_panel=ENCODER)]
Pooling = Annotated[Optional[str], typer.Option(
    help="mean, cls or max. [default: the model's own]", rich_help_panel=ENCODER)]
Normalize = Annotated[bool, typer.Option("--normalize/--no-normalize", help="Scale embeddings to unit length.",
                                         rich_help_panel=ENCODER)]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda (auto: CUDA when present).", rich_help_panel=ENCODER)]
Backend = Annotated[str, typer.Option(
    help="torch, or onnx: onnxruntime on the CPU, exported on first use (needs embedclf[onnx]).",
    rich_help_panel=ENCODER)]
Precision = Annotated[str, typer.Option(
    help="torch: auto, fp32, fp16 or bf16 (auto: fp16 on CUDA, fp32 on CPU); onnx: auto (fp32), fp32 or int8.",
    rich_help_panel=ENCODER)]
ModelBackend = Annotated[Optional[str], typer.Option(
    help="torch or onnx. [default: the one the model was fitted with]", rich_help_panel=ENCODER)]
ModelPrecision = Annotated[Optional[str], typer.Option(
    help="Encoding precision (see fit --help). [default: the one the model was fitted with]",
    rich_help_panel=ENCODER)]
Cache = Annotated[Optional[Path], typer.Option(
    help="Embedding cache directory. [default: $EMBEDCLF_CACHE or ./cache]", rich_help_panel=ENCODER)]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Encode without reading or writing the cache.",
                                       rich_help_panel=ENCODER)]


SCALE = "Scale-out options (Ray)"
Engine = Annotated[str, typer.Option(
    help="local: this process; ray: a pool of Ray actors, on this machine or a cluster (needs embedclf[ray]).",
    rich_help_panel=SCALE)]
Address = Annotated[Optional[str], typer.Option(
    help="The Ray cluster for --engine ray: 'auto' (a cluster this machine is part of) or ray://HEAD:10001. "
         "[default: start Ray on this machine]", rich_help_panel=SCALE)]
Actors = Annotated[int, typer.Option(help="Ray actors, each holding one copy of the model.", rich_help_panel=SCALE)]
GpusPerActor = Annotated[float, typer.Option(
    help="GPUs per Ray actor (0.5: two actors share one GPU); 0 encodes on CPUs.", rich_help_panel=SCALE)]


def check_engine(engine: str, address, actors: int, gpus_per_actor: float) -> bool:
    """True for --engine ray; refuses scale-out options given to the local engine."""
    from embedclf.errors import EmbedclfError

    if engine not in ("local", "ray"):
        raise EmbedclfError(f"unknown engine {engine!r}; expected local or ray")
    if engine == "local" and (address is not None or actors != 2 or gpus_per_actor):
        raise EmbedclfError("--address, --actors and --gpus-per-actor are for --engine ray")
    return engine == "ray"


def data_options(columns, text_col, label_col, label_sep, label_names, task, strict):
    from embedclf.data import DataOptions

    return DataOptions(text_cols=list(text_col or ["text"]), label_cols=list(label_col or []),
                       columns=[c.strip() for c in columns.split(",")] if columns else None,
                       label_sep=label_sep, label_names=[str(p) for p in label_names or []], task=task,
                       strict=strict)


def encoder_options(model, batch_size, max_length, pooling, normalize, device, precision, backend, cache,
                    no_cache) -> dict:
    from embedclf.encode.models import DEFAULT_MODEL

    return dict(model=model or DEFAULT_MODEL, batch_size=batch_size, max_length=max_length, pooling=pooling,
                normalize=normalize, device=device, precision=precision, backend=backend,
                cache=False if no_cache else (str(cache) if cache else None))


def say(message: str) -> None:
    """A line of the human summary: always on stderr, so stdout stays machine-readable."""
    typer.echo(message, err=True)
TuneFor = Annotated[str, typer.Option(
    help="What --tune-thresholds maximises: macro (a threshold per label, each the best for that label's F1) "
         "or micro (one threshold per multi-label target, the best for its micro-F1; steadier on small "
         "validation sets).", rich_help_panel=DECIDE)]
