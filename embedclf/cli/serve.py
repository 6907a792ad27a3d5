"""``embedclf serve``: the encoder, or a fitted model folder, as an HTTP service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from embedclf.cli import app
from embedclf.cli.options import (ENCODER, BackendOption, BatchSize, Device, MaxBatchTokens, MaxLength, Model,
                                  Normalize, PoolingOption, PrecisionOption, encoder_settings, say)

SERVICE = "Service options"
ENCODER_OPTIONS = ("model", "batch_size", "max_batch_tokens", "max_length", "pooling", "normalize", "device",
                   "precision", "backend")


def _option(help: str, *names: str, **kwargs):
    return typer.Option(*names, help=help, rich_help_panel=SERVICE, **kwargs)


@app.command()
def serve(
    ctx: typer.Context,
    model_dir: Annotated[Optional[Path], typer.Argument(
        help="A model folder written by fit or finetune: also serve /v1/predict with it (its encoder for "
             "/v1/embeddings). Without it, the encoder of the encoder options.")] = None,
    host: Annotated[str, _option("Address to listen on; 0.0.0.0 opens the service to other machines.")] = "127.0.0.1",
    port: Annotated[int, _option("TCP port.")] = 8000,
    max_wait_ms: Annotated[float, _option(
        "Longest a request waits for others to join its forward pass (only while others are arriving or "
        "another group is encoding).")] = 5.0,
    max_texts_per_request: Annotated[int, _option("More texts in one request are refused (413).")] = 256,
    max_text_chars: Annotated[int, _option("A longer text is refused (413).")] = 20_000,
    max_body_bytes: Annotated[int, _option("A larger request body is refused (413).")] = 4 * 2**20,
    api_key: Annotated[Optional[str], _option(
        "Require 'Authorization: Bearer KEY' on /v1/* (401 otherwise); without it and the variable, open.",
        show_default=False, envvar="EMBEDCLF_API_KEY", show_envvar=True)] = None,
    cache: Annotated[Optional[Path], typer.Option(
        help="Read and write this embedding cache (the CLI's, e.g. ./cache): a text seen before costs nothing. "
             "[default: no cache]", rich_help_panel=ENCODER)] = None,
    model: Model = None, batch_size: BatchSize = 32, max_batch_tokens: MaxBatchTokens = None,
    max_length: MaxLength = None, pooling: PoolingOption = None, normalize: Normalize = True, device: Device = "auto",
    precision: PrecisionOption = "auto", backend: BackendOption = "torch",
):
    """Serve embeddings (OpenAI-compatible) and, with MODEL_DIR, labels over HTTP.

    /v1/embeddings, /v1/predict, /health, /v1/models and /metrics; concurrent requests share forward passes.
    SIGTERM or Ctrl-C stops it after the requests in flight (exit 0). Needs pip install 'embedclf\\[serve]'.
    """
    from typer._click.core import ParameterSource

    from embedclf.serve.run import serve as run_service
    from embedclf.serve.settings import ServeSettings

    settings = ServeSettings.from_options(host=host, port=port, max_wait_ms=max_wait_ms,
                                          max_texts_per_request=max_texts_per_request, max_text_chars=max_text_chars,
                                          max_body_bytes=max_body_bytes, api_key=api_key)
    encoder = encoder_settings(model, batch_size, max_length, pooling, normalize, device, precision, backend,
                               max_batch_tokens)
    given = frozenset(name for name in ENCODER_OPTIONS
                      if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT))
    run_service(settings, encoder, model_dir=model_dir, cache=str(cache) if cache else False, given=given, say=say)
