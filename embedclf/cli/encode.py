"""``embedclf encode`` and ``embedclf cache info|clear``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from embedclf.cli import app
from embedclf.cli.options import (SCALE, Actors, Address, BackendOption, BatchSize, Cache, ChunkPoolingOption,
                                  ChunkSize, Columns, Device, Engine, GpusPerActor, IdCol, KeepNaLabels, LabelCol,
                                  LabelNames, LabelSep, LongTextOption, MaxBatchTokens, MaxLength, Model, NoCache,
                                  Normalize, PoolingOption, PrecisionOption, Strict, Task, TextCol, cache_option,
                                  data_options, encoder_settings, long_text_settings, say)


@app.command()
def encode(
    data: Annotated[Path, typer.Argument(help="CSV, TSV, JSON lines or Parquet file (with --engine ray also a "
                                              "directory of them).")],
    out: Annotated[Optional[Path], typer.Option(
        help="Also write the embeddings, one row per input row in order: a .npy matrix, or a .parquet table of "
             "row, the input's id column (see --id-col) and vector.")] = None,
    check_fidelity: Annotated[Optional[int], typer.Option(
        "--check-fidelity", metavar="N", min=1, help="Also encode the first N texts with fp32 torch (not cached) and "
        "print the cosine similarity of this run's vectors to those.")] = None,
    columns: Columns = None, text_col: TextCol = None, label_col: LabelCol = None, label_sep: LabelSep = None,
    label_names: LabelNames = None, task: Task = None, strict: Strict = False,
    keep_na_labels: KeepNaLabels = False, id_col: IdCol = None,
    model: Model = None, batch_size: BatchSize = 32, max_batch_tokens: MaxBatchTokens = None,
    chunk_size: ChunkSize = 1024, max_length: MaxLength = None, pooling: PoolingOption = None,
    normalize: Normalize = True, device: Device = "auto", precision: PrecisionOption = "auto",
    backend: BackendOption = "torch", cache: Cache = None, no_cache: NoCache = False,
    long_text: LongTextOption = "truncate", chunk_pooling: ChunkPoolingOption = "mean",
    engine: Engine = "local", address: Address = None, actors: Actors = 2, gpus_per_actor: GpusPerActor = 0,
    out_dir: Annotated[Optional[Path], typer.Option(
        help="With --engine ray: where the actors write Parquet shards (row, key, tokens, vector); on several "
             "machines a directory all of them reach. [default: CACHE/ray-SPACE/RUN]", rich_help_panel=SCALE)] = None,
):
    """Encode the texts of DATA into embeddings, through the cache: a text seen before is never re-encoded."""
    from embedclf.engines import EngineSettings, encode_data
    from embedclf.io import check_matrix_path, save_matrix

    if out is not None:
        check_matrix_path(out)
    settings = encoder_settings(model, batch_size, max_length, pooling, normalize, device, precision, backend,
                                max_batch_tokens, chunk_size)
    options = data_options(columns, text_col, label_col, label_sep, label_names, task, strict,
                           keep_na_labels=keep_na_labels, id_col=id_col)
    engine_settings = EngineSettings(engine, address=address, actors=actors, gpus_per_actor=gpus_per_actor)
    result = encode_data(data, options, settings, engine_settings, cache=cache_option(cache, no_cache),
                         out_dir=out_dir, check_fidelity=check_fidelity,
                         long_text=long_text_settings(long_text, chunk_pooling))
    for line in result.lines(data):
        say(line)
    if out is not None:
        matrix = result.matrix()
        id_col, row_ids = result.input_ids()
        save_matrix(out, matrix, row_ids, id_col)
        say(f"wrote {matrix.shape[0]:,} x {matrix.shape[1]} matrix to {out}")


cache_app = typer.Typer(help="Inspect or empty the embedding cache and the per-user export store.",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("info")
def cache_info(cache: Cache = None):
    """List the cache's spaces (one per model and encoding setting) and the export store's exported models
    and bf16 verdicts ($EMBEDCLF_EXPORTS or ~/.cache/embedclf/exports): entries, size on disk, age."""
    from embedclf.encode.cache import EmbeddingCache, format_spaces
    from embedclf.encode.exports import ExportStore, format_entries

    store, exports = EmbeddingCache(cache), ExportStore()
    spaces, entries = store.spaces(), exports.entries()
    if spaces:
        typer.echo(format_spaces(spaces))
    total = sum(i.size_bytes for i in spaces)
    say(f"{store.root}: {len(spaces)} spaces, {sum(i.entries for i in spaces):,} entries, {total / 2**20:.1f} MB"
        if spaces else f"{store.root}: empty")
    if entries:
        typer.echo(format_entries(entries))
    say(f"{exports.root}: {len(entries)} exports, {sum(e.size_bytes for e in entries) / 2**20:.1f} MB"
        if entries else f"{exports.root}: no exports")


@cache_app.command("clear")
def cache_clear(
    cache: Cache = None,
    model: Annotated[Optional[str], typer.Option(help="Only this model's vectors and exports (its name or fingerprint "
                                                     "prefix).")] = None,
    keep_exports: Annotated[bool, typer.Option(
        "--keep-exports", help="Keep the export store's exported models and verdicts ($EMBEDCLF_EXPORTS).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (needed when stdin is not a "
                                                          "terminal).")] = False,
):
    """Delete cached embeddings and the exported models of the export store: all of them, or one model's.
    Asks first, unless --yes."""
    import sys

    from embedclf.encode.cache import EmbeddingCache
    from embedclf.encode.exports import ExportStore
    from embedclf.errors import EmbedclfError

    store, exports = EmbeddingCache(cache), ExportStore()
    spaces = store.select(model)
    fingerprints = [str(i.config.get("fingerprint", "")) for i in spaces]
    entries = [] if keep_exports else exports.select(model, fingerprints)
    where = f"{store.root}" + ("" if keep_exports else f" and {exports.root}")
    if not spaces and not entries:
        say(f"{where}: nothing to remove" + (f" for model {model}" if model is not None else ""))
        return
    what = _clear_summary(spaces, entries)
    if not yes:
        if not sys.stdin.isatty():
            raise EmbedclfError(f"would remove {what} from {where}; stdin is not a terminal, so pass --yes to "
                                "confirm")
        if not typer.confirm(f"remove {what} from {where}?", default=False, err=True):
            say("nothing removed")
            raise typer.Exit(1)
    removed = store.clear(model)
    removed_exports = [] if keep_exports else exports.clear(model, fingerprints)
    say(f"removed {_clear_summary(removed, removed_exports)} from {where}")


def _clear_summary(spaces, entries) -> str:
    text = (f"{len(spaces)} spaces, {sum(i.entries for i in spaces):,} entries, "
            f"{sum(i.size_bytes for i in spaces) / 2**20:.1f} MB")
    if entries:
        text += f", {len(entries)} exports ({sum(e.size_bytes for e in entries) / 2**20:.1f} MB)"
    return text
