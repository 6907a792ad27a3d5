"""The FastAPI application: OpenAI-compatible ``/v1/embeddings``, ``/v1/predict``, ``/v1/models``,
``/health`` (readiness) and ``/metrics`` (Prometheus), over one :class:`~embedclf.serve.batcher.Batcher`.

:func:`create_app` takes a ``load`` callable returning a loaded :class:`~embedclf.serve.service.Service`:
the app starts answering at once, loads in a thread, and ``/health`` turns 200 when the model is ready.
FastAPI is imported here, so this module is imported only once the ``serve`` extra is known to be there.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from contextlib import asynccontextmanager
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response

from embedclf.serve.batcher import Batcher
from embedclf.serve.metrics import Metrics
from embedclf.serve.schemas import (EmbeddingRequest, PredictRequest, RequestError, dumps, embeddings_body,
                                    error_body, parse, predictions_body)
from embedclf.serve.settings import ServeSettings

JSON = "application/json"
THREADED_CHARS = 50_000  # requests with more text than this are tokenised in a thread, not on the loop


class State:
    """The app's mutable state: the service once loaded, the batcher, the metrics, a load failure."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.metrics = Metrics()
        self.service = None
        self.batcher: Batcher | None = None
        self.error: str | None = None


def create_app(load: Callable, settings: ServeSettings = ServeSettings(), *,
               on_ready: Callable | None = None, on_error: Callable[[str], None] | None = None):
    """The app; ``load()`` runs in a thread at start-up. ``on_ready(service)`` and ``on_error(message)``
    are told how loading ended (the command line prints the first and stops on the second)."""
    state = State(settings)

    @asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()
        loading = loop.create_task(_load(state, load, on_ready, on_error))
        flushing = loop.create_task(_flush_cache_when_due(state))
        yield
        for task in (loading, flushing):
            task.cancel()
        await asyncio.gather(loading, flushing, return_exceptions=True)
        if state.batcher is not None:
            await state.batcher.stop()
        if state.service is not None:  # the requests are answered: what they encoded goes to the cache
            await asyncio.to_thread(state.service.flush_cache)

    app = FastAPI(title="embedclf", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.embedclf = state

    def respond(endpoint: str, start: float, status: int, body: bytes, media_type: str = JSON):
        state.metrics.observe_request(endpoint, status, time.perf_counter() - start)
        return Response(body, status_code=status, media_type=media_type)

    async def handle(request: Request, endpoint: str, run) -> Response:
        start = time.perf_counter()
        try:
            _authorise(request, settings)
            if state.service is None:
                raise RequestError(503, state.error or "the model is still loading; retry when /health says ready",
                                   "not_ready")
            return respond(endpoint, start, 200, await run(request))
        except RequestError as error:
            return respond(endpoint, start, error.status, error_body(error))
        except Exception as exc:  # a bug or a failed forward pass: this request fails, the server stays up
            error = RequestError(500, f"{type(exc).__name__}: {exc}", "server_error")
            return respond(endpoint, start, 500, error_body(error))

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        async def run(request):
            with state.batcher.arriving():
                body = parse(await _read_body(request, settings), EmbeddingRequest)
                texts = _check_texts(body.texts, settings, "input")
                dimension = state.service.encoder.dimension
                if body.dimensions is not None and body.dimensions != dimension:
                    raise RequestError(422, f"dimensions: this model gives {dimension}-dimensional vectors, "
                                            f"not {body.dimensions}", "invalid_value", "dimensions")
                tokens = await _tokens(state, texts)
                future = state.batcher.submit(texts, tokens)
            output = await future
            return embeddings_body(output.vectors, int(tokens.sum()), state.service.embedding_model,
                                   body.encoding_format)

        return await handle(request, "embeddings", run)

    @app.post("/v1/predict")
    async def predict(request: Request):
        async def run(request):
            from embedclf.inference import prediction_columns

            classifier = state.service.classifier
            if classifier is None:
                raise RequestError(404, "no model folder is served: start embedclf serve MODEL_DIR for /v1/predict",
                                   "no_classifier")
            with state.batcher.arriving():
                body = parse(await _read_body(request, settings), PredictRequest)
                texts = _check_texts(body.texts, settings, "texts")
                tokens = await _tokens(state, texts)
                future = state.batcher.submit(texts, tokens, scores=True)
            output = await future
            Y, added = classifier.decide(output.scores, threshold=body.threshold, top_k=body.top_k)
            labels, probabilities = prediction_columns(classifier.space, Y, output.scores, added)
            return predictions_body(labels, probabilities, int(tokens.sum()), state.service.classifier_id)

        return await handle(request, "predict", run)

    @app.get("/v1/models")
    async def models(request: Request):
        async def run(request):
            service, created = state.service, int(time.time())
            ids = [service.embedding_model] + ([service.classifier_id] if service.classifier is not None else [])
            return dumps({"object": "list", "data": [{"id": i, "object": "model", "created": created,
                                                      "owned_by": "embedclf"} for i in ids]})

        return await handle(request, "models", run)

    @app.get("/health")
    async def health():
        if state.service is None:
            status = "failed" if state.error else "loading"
            return Response(dumps({"status": status, "error": state.error}), status_code=503, media_type=JSON)
        return Response(dumps({"status": "ready", "model": state.service.embedding_model,
                               "classifier": state.service.classifier_id}), media_type=JSON)

    @app.get("/metrics")
    async def metrics():
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    return app


async def _load(state: State, load: Callable, on_ready, on_error) -> None:
    try:
        service = await asyncio.to_thread(load)
    except Exception as exc:
        state.error = f"loading the model failed: {' '.join(str(exc).split())[:500]}"
        if on_error is not None:
            on_error(state.error)
        return
    batcher = Batcher(service.work, batch_size=service.settings.batch_size,
                      batch_tokens=service.settings.batch_tokens, max_wait_ms=state.settings.max_wait_ms,
                      metrics=state.metrics, workers=service.workers)
    batcher.start()
    state.batcher, state.service = batcher, service
    if on_ready is not None:
        on_ready(service)


async def _flush_cache_when_due(state: State, every: float = 1.0) -> None:
    """Commit the vectors held for the cache once the oldest is due, even when no request comes."""
    while True:
        await asyncio.sleep(every)
        if state.service is not None:
            await asyncio.to_thread(state.service.flush_cache, True)


def _authorise(request, settings: ServeSettings) -> None:
    if settings.api_key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), settings.api_key.encode()):
        raise RequestError(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'",
                           "invalid_api_key")


async def _read_body(request, settings: ServeSettings) -> bytes:
    """The body, refused with 413 as soon as it is over the limit (by its Content-Length, or while reading)."""
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body is {int(declared):,} bytes; the limit is {limit:,} (--max-body-bytes)",
                           "body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is over the limit of {limit:,} bytes (--max-body-bytes)",
                               "body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_texts(texts: list[str], settings: ServeSettings, param: str) -> list[str]:
    if not texts:
        raise RequestError(422, f"{param}: give at least one text", "invalid_value", param)
    if len(texts) > settings.max_texts_per_request:
        raise RequestError(413, f"{param}: {len(texts):,} texts; the limit is {settings.max_texts_per_request:,} per "
                                "request (--max-texts-per-request)", "too_many_texts", param)
    longest = max(range(len(texts)), key=lambda i: len(texts[i]))
    if len(texts[longest]) > settings.max_text_chars:
        raise RequestError(413, f"{param}[{longest}]: {len(texts[longest]):,} characters; the limit is "
                                f"{settings.max_text_chars:,} (--max-text-chars)", "text_too_long", param)
    return texts


async def _tokens(state: State, texts: list[str]):
    if sum(map(len, texts)) > THREADED_CHARS:
        return await asyncio.to_thread(state.service.token_counts, texts)
    return state.service.token_counts(texts)
