"""``embedclf encode`` and ``embedclf cache info|clear``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from embedclf.cli import app
from embedclf.cli.options import (Actors, Address, Backend, BatchSize, Cache, Columns, Device, Engine, GpusPerActor,
                                  LabelCol, LabelNames, LabelSep, MaxLength, Model, NoCache, Normalize, Pooling,
                                  Precision, SCALE, Strict, Task, TextCol, check_engine, data_options, encoder_options,
                                  say)


@app.command()
def encode(
    data: Annotated[Path, typer.Argument(help="CSV, TSV, JSON lines or Parquet file (with --engine ray also a "
                                                   "directory of them).")],
    out: Annotated[Optional[Path], typer.Option(help="Also write the embeddings, in input order, to this .npy file.")] = None,
    chunk_size: Annotated[int, typer.Option(help="Texts per cache commit (with --engine ray: per actor call); a killed "
                                                 "run or actor loses at most one chunk.")] = 1024,
    check_fidelity: Annotated[Optional[int], typer.Option(
        "--check-fidelity", metavar="N", help="Also encode the first N texts with fp32 torch (not cached) and print "
        "the cosine similarity of this run's vectors to those.")] = None,
    columns: Columns = None, text_col: TextCol = None, label_col: LabelCol = None, label_sep: LabelSep = None,
    label_names: LabelNames = None, task: Task = None, strict: Strict = False,
    model: Model = None, batch_size: BatchSize = 32, max_length: MaxLength = None, pooling: Pooling = None,
    normalize: Normalize = True, device: Device = "auto", precision: Precision = "auto", backend: Backend = "torch",
    cache: Cache = None, no_cache: NoCache = False,
    engine: Engine = "local", address: Address = None, actors: Actors = 2, gpus_per_actor: GpusPerActor = 0,
    out_dir: Annotated[Optional[Path], typer.Option(
        help="With --engine ray: where the actors write Parquet shards (row, key, tokens, vector); on several "
             "machines a directory all of them reach. [default: CACHE/ray-SPACE/RUN]", rich_help_panel=SCALE)] = None,
):
    """Encode the texts of DATA into embeddings, through the cache: a text seen before is never re-encoded."""
    from embedclf.encode.encoder import Encoder
    from embedclf.encode.fidelity import check_fidelity as fidelity
    from embedclf.errors import EmbedclfError
    from embedclf.io import check_matrix_path, save_matrix

    if out is not None:
        check_matrix_path(out)
    if check_fidelity is not None and check_fidelity < 1:
        raise EmbedclfError("--check-fidelity needs a positive number of texts")
    if check_engine(engine, address, actors, gpus_per_actor):
        from embedclf.encode.distributed import encode_with_ray, load_matrix

        if check_fidelity is not None:
            raise EmbedclfError("--check-fidelity runs with --engine local")
        options = data_options(columns, text_col, label_col, label_sep, label_names, task, strict)
        settings = encoder_options(model, batch_size, max_length, pooling, normalize, device, precision, backend,
                                   cache, no_cache)
        cache_root = settings.pop("cache")  # None: the default cache; False: --no-cache, nothing imported
        report = encode_with_ray(data, settings, text_cols=options.text_cols, columns=options.columns,
                                 address=address, actors=actors, gpus_per_actor=gpus_per_actor, batch_size=chunk_size,
                                 out_dir=out_dir, cache_root=cache_root)
        for line in report.lines(data):
            say(line)
        if out is not None:
            matrix = load_matrix(report)
            save_matrix(out, matrix)
            say(f"wrote {matrix.shape[0]:,} x {matrix.shape[1]} matrix to {out}")
        return
    if out_dir is not None:
        raise EmbedclfError("--out-dir is for --engine ray")
    encoder = Encoder(**encoder_options(model, batch_size, max_length, pooling, normalize, device, precision, backend,
                                        cache, no_cache), chunk_size=chunk_size)  # checks the settings, loads nothing
    dataset = data_options(columns, text_col, label_col, label_sep, label_names, task, strict).load(data)
    say(dataset.summary())
    matrix = encoder.encode(dataset.texts)
    report = encoder.last_report
    say(f"encoded with {encoder.ref.describe()}, {encoder.pooling} pooling, max {encoder.max_length} tokens, "
        f"{encoder.describe()}: {report.summary(encoder.max_length)}")
    if report.cache_dir:
        say(f"embeddings cached in {report.cache_dir} ({matrix.shape[1]} dims)")
    if check_fidelity:
        say(fidelity(encoder, dataset.texts[:check_fidelity], matrix[:check_fidelity]).summary())
    if out is not None:
        save_matrix(out, matrix)
        say(f"wrote {matrix.shape[0]:,} x {matrix.shape[1]} matrix to {out}")


cache_app = typer.Typer(help="Inspect or empty the embedding cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("info")
def cache_info(cache: Cache = None):
    """List the cache's spaces (one per model and encoding setting): entries, size on disk, age."""
    from embedclf.encode.cache import EmbeddingCache, format_age

    store = EmbeddingCache(cache)
    spaces = store.spaces()
    if not spaces:
        say(f"{store.root}: empty")
        return
    typer.echo(f"{'space':<16}  {'entries':>9}  {'size':>9}  {'modified':>9}  model")
    for info in spaces:
        c = info.config
        setting = f"{c.get('pooling')}, {c.get('max_length')} tok, {c.get('backend', 'torch')} " \
                  f"{c.get('precision')}" + ("" if c.get("normalize", True) else ", unnormalised")
        typer.echo(f"{info.id:<16}  {info.entries:>9,}  {info.size_bytes / 2**20:>7.1f}MB  {format_age(info.modified):>9}  "
                   f"{c.get('model')} [{str(c.get('fingerprint', ''))[:12]}] ({setting})")
    total = sum(i.size_bytes for i in spaces)
    say(f"{store.root}: {len(spaces)} spaces, {sum(i.entries for i in spaces):,} entries, {total / 2**20:.1f} MB")


@cache_app.command("clear")
def cache_clear(
    cache: Cache = None,
    model: Annotated[Optional[str], typer.Option(help="Only this model's vectors (its name or fingerprint prefix).")] = None,
):
    """Delete cached embeddings: all of them, or one model's."""
    from embedclf.encode.cache import EmbeddingCache

    store = EmbeddingCache(cache)
    removed = store.clear(model)
    say(f"removed {len(removed)} spaces, {sum(i.entries for i in removed):,} entries, "
        f"{sum(i.size_bytes for i in removed) / 2**20:.1f} MB from {store.root}")
