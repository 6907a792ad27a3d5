"""Options shared by several commands, named the same way everywhere, and the settings they build.

Choices are Enums, so ``--help`` lists them and a wrong one is a usage error (exit 2) before any
work. Ranges are checked where the settings are built (``DataOptions``, ``EncoderSettings``,
``FitSettings``, ``EngineSettings``): the command line only collects values.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from embedclf.encode.settings import Backend, Pooling, Precision
from embedclf.engines import EngineKind
from embedclf.labels import TASK_KINDS

DATA = "Data options"
ENCODER = "Encoder options"
DECIDE = "Decision options"
SCALE = "Scale-out options (Ray)"
TRACK = "Tracking options (MLflow)"

TaskKind = Enum("TaskKind", {kind: kind for kind in TASK_KINDS}, type=str)


class TuneObjective(str, Enum):
    macro = "macro"
    micro = "micro"


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
Task = Annotated[Optional[TaskKind], typer.Option(
    help="Force the task kind (inferred from the labels otherwise).", rich_help_panel=DATA)]
Strict = Annotated[bool, typer.Option(
    "--strict", help="Fail on an empty text or a missing label instead of skipping and counting it.", rich_help_panel=DATA)]
IdCol = Annotated[Optional[str], typer.Option(
    "--id-col", help="Column that identifies rows, carried into encode's .parquet and predict's output. "
                     "[default: a column named id, if there is one]", rich_help_panel=DATA)]
KeepNaLabels = Annotated[bool, typer.Option(
    "--keep-na-labels", help="Keep label cells such as 'NaN', 'None', 'null', 'NA', 'N/A' as classes (by default "
                             "they mean no label, and are counted).", rich_help_panel=DATA)]

Model = Annotated[Optional[str], typer.Option(
    help="Model: a local directory or a Hugging Face id. [default: sentence-transformers/all-MiniLM-L6-v2, "
         "the copy installed with embedclf]", rich_help_panel=ENCODER)]
BatchSize = Annotated[int, typer.Option(help="Texts per forward pass.", rich_help_panel=ENCODER)]
MaxBatchTokens = Annotated[Optional[int], typer.Option(
    help="Padded tokens per forward pass at most; long texts go in smaller batches. [default: 64 x --batch-size]",
    rich_help_panel=ENCODER)]
ChunkSize = Annotated[int, typer.Option(
    help="Texts per cache commit (with --engine ray: per actor call); a killed run loses at most one chunk.",
    rich_help_panel=ENCODER)]
MaxLength = Annotated[Optional[int], typer.Option(
    help="Tokens per text; longer texts are truncated. [default: the model's own]", rich_help_panel=ENCODER)]
PoolingOption = Annotated[Optional[Pooling], typer.Option(
    "--pooling", help="[default: the model's own]", rich_help_panel=ENCODER)]
Normalize = Annotated[bool, typer.Option("--normalize/--no-normalize", help="Scale embeddings to unit length.",
                                         rich_help_panel=ENCODER)]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N (auto: CUDA when present).",
                                     rich_help_panel=ENCODER)]
BackendOption = Annotated[Backend, typer.Option(
    "--backend", help="torch; onnx: onnxruntime on the CPU (needs embedclf[onnx]); openvino: OpenVINO on the CPU "
                      "(needs embedclf[openvino]). onnx and openvino export the model once per machine.",
    rich_help_panel=ENCODER)]
PrecisionOption = Annotated[Precision, typer.Option(
    "--precision", help="auto: fp16 on CUDA, bf16 on a CPU with native bf16 (checked once per model: fp32 if "
                        "it strays), else fp32. torch: fp32, fp16, bf16, or int8 (the fastest int8 backend "
                        "installed: openvino, else onnx); onnx: fp32, int8; openvino: fp32, bf16, int8 "
                        "(calibrated on your texts, refused below cosine .98 to fp32).", rich_help_panel=ENCODER)]
ModelBackend = Annotated[Optional[Backend], typer.Option(
    "--backend", help="[default: the one the model was fitted with]", rich_help_panel=ENCODER)]
ModelPrecision = Annotated[Optional[Precision], typer.Option(
    "--precision", help="Encoding precision (see fit --help). [default: the one the model was fitted with]",
    rich_help_panel=ENCODER)]
class LongText(str, Enum):
    truncate = "truncate"
    chunk = "chunk"


class ChunkPooling(str, Enum):
    mean = "mean"
    max = "max"


LongTextOption = Annotated[LongText, typer.Option(
    "--long-text", help="Texts longer than the model's window: truncate them, or chunk them into overlapping "
                        "windows whose vectors are pooled.", rich_help_panel=ENCODER)]
ChunkPoolingOption = Annotated[ChunkPooling, typer.Option(
    "--chunk-pooling", help="How --long-text chunk pools a text's windows.", rich_help_panel=ENCODER)]
Cache = Annotated[Optional[Path], typer.Option(
    help="Embedding cache directory. [default: $EMBEDCLF_CACHE or ./cache]", rich_help_panel=ENCODER)]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Encode without reading or writing the cache.",
                                       rich_help_panel=ENCODER)]

Engine = Annotated[EngineKind, typer.Option(
    help="local: this process; ray: a pool of Ray actors, on this machine or a cluster (needs embedclf[ray]).",
    rich_help_panel=SCALE)]
Address = Annotated[Optional[str], typer.Option(
    help="The Ray cluster for --engine ray: 'auto' (a cluster this machine is part of) or ray://HEAD:10001. "
         "[default: start Ray on this machine]", rich_help_panel=SCALE)]
Actors = Annotated[int, typer.Option(help="Ray actors, each holding one copy of the model.", rich_help_panel=SCALE)]
GpusPerActor = Annotated[float, typer.Option(
    help="GPUs per Ray actor (0.5: two actors share one GPU); 0 encodes on CPUs.", rich_help_panel=SCALE)]

Threshold = Annotated[float, typer.Option(help="Global multi-label decision threshold.", rich_help_panel=DECIDE)]
TuneThresholds = Annotated[bool, typer.Option(
    "--tune-thresholds", help="Tune the multi-label thresholds on the validation data (see --tune-for).",
    rich_help_panel=DECIDE)]
TuneFor = Annotated[TuneObjective, typer.Option(
    help="What --tune-thresholds maximises: macro (a threshold per label, each the best for that label's F1) "
         "or micro (one threshold per multi-label target, the best for its micro-F1; steadier on small "
         "validation sets).", rich_help_panel=DECIDE)]
AtLeastOne = Annotated[bool, typer.Option("--at-least-one", help="A row with no label above threshold takes "
                                          "its top label.", rich_help_panel=DECIDE)]
Track = Annotated[bool, typer.Option(
    "--track", help="Record this run with MLflow ($MLFLOW_TRACKING_URI, else MLflow's default store; needs "
                    "embedclf[track]).", rich_help_panel=TRACK)]
Experiment = Annotated[Optional[str], typer.Option(
    help="MLflow experiment for --track. [default: $MLFLOW_EXPERIMENT_NAME, else MLflow's Default]",
    rich_help_panel=TRACK)]


def track_settings(track: bool, experiment: str | None):
    """``--track``/``--experiment`` as :class:`TrackSettings` (None without --track), checked before any work."""
    from embedclf.errors import EmbedclfError

    if not track:
        if experiment is not None:
            raise EmbedclfError("--experiment needs --track")
        return None
    from embedclf.tracking import TrackSettings

    return TrackSettings(experiment)


def data_options(columns, text_col, label_col, label_sep, label_names, task, strict, *, id_col=None,
                 keep_na_labels=False):
    from embedclf.data import MISSING_LABELS, DataOptions

    return DataOptions(text_cols=tuple(text_col or ["text"]), label_cols=tuple(label_col or []),
                       columns=split_columns(columns), label_sep=label_sep,
                       label_names=tuple(str(p) for p in label_names or []),
                       task=task.value if task is not None else None, strict=strict, id_col=id_col,
                       missing_labels=("",) if keep_na_labels else MISSING_LABELS)


def split_columns(columns: str | None):
    return tuple(c.strip() for c in columns.split(",")) if columns else None


def encoder_settings(model, batch_size, max_length, pooling, normalize, device, precision, backend,
                     max_batch_tokens=None, chunk_size=1024):
    """The encoder options as validated :class:`EncoderSettings` (nothing resolved or loaded)."""
    from embedclf.encode.models import DEFAULT_MODEL
    from embedclf.encode.settings import EncoderSettings

    return EncoderSettings(model=model or DEFAULT_MODEL, batch_size=batch_size, max_length=max_length,
                           pooling=pooling, normalize=normalize, device=device, precision=precision,
                           backend=backend, max_batch_tokens=max_batch_tokens, chunk_size=chunk_size)


def cache_option(cache: Path | None, no_cache: bool):
    """``--cache``/``--no-cache`` as the API takes them: a path, None (the default cache) or False."""
    return False if no_cache else (str(cache) if cache else None)


def say(message: str) -> None:
    """A line of the human summary: always on stderr, so stdout stays machine-readable."""
    typer.echo(message, err=True)


def long_text_settings(long_text, chunk_pooling):
    from embedclf.encode.long_text import LongTextSettings

    return LongTextSettings(long_text, chunk_pooling)
