"""The ASGI application: OpenAI-compatible ``/v1/embeddings``, ``/v1/predict``, ``/v1/models``,
``/health`` (readiness) and ``/metrics`` (Prometheus), over one :class:`~embedclf.serve.batcher.Batcher`;
FastAPI for all but the two POST endpoints, which are served straight over ASGI (see :class:`App`).

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
CLIENT_GONE = 499  # the status a request gets in /metrics when its client left before sending all of its body
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
               on_ready: Callable | None = None, on_error: Callable[[str], None] | None = None) -> "App":
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

    api = FastAPI(title="embedclf", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    api.state.embedclf = state

    async def embeddings(read) -> bytes:
        with state.batcher.arriving():
            body = parse(await read(), EmbeddingRequest)
            texts = _check_texts(body.texts, settings, "input")
            dimension = state.service.encoder.dimension
            if body.dimensions is not None and body.dimensions != dimension:
                raise RequestError(422, f"dimensions: this model gives {dimension}-dimensional vectors, "
                                        f"not {body.dimensions}", "invalid_value", "dimensions")
            tokens = await _tokens(state, texts)
            future = state.batcher.submit(texts, tokens)
        output = await future
        return embeddings_body(output.vectors, int(tokens.sum()), state.service.embedding_model, body.encoding_format)

    async def predict(read) -> bytes:
        from embedclf.inference import prediction_columns

        classifier = state.service.classifier
        if classifier is None:
            raise RequestError(404, "no model folder is served: start embedclf serve MODEL_DIR for /v1/predict",
                               "no_classifier")
        with state.batcher.arriving():
            body = parse(await read(), PredictRequest)
            texts = _check_texts(body.texts, settings, "texts")
            tokens = await _tokens(state, texts)
            future = state.batcher.submit(texts, tokens, scores=True)
        output = await future
        Y, added = classifier.decide(output.scores, threshold=body.threshold, top_k=body.top_k)
        labels, probabilities = prediction_columns(classifier.space, Y, output.scores, added)
        return predictions_body(labels, probabilities, int(tokens.sum()), state.service.classifier_id)

    @api.get("/v1/models")
    async def models(request: Request):
        start = time.perf_counter()
        status, body = await _answer(state, request.headers, lambda read: _models(state))
        state.metrics.observe_request("models", status, time.perf_counter() - start)
        return Response(body, status_code=status, media_type=JSON)

    @api.get("/health")
    async def health():
        if state.service is None:
            status = "failed" if state.error else "loading"
            return Response(dumps({"status": status, "error": state.error}), status_code=503, media_type=JSON)
        return Response(dumps({"status": "ready", "model": state.service.embedding_model,
                               "classifier": state.service.classifier_id}), media_type=JSON)

    @api.get("/metrics")
    async def metrics():
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    return App(api, state, {"/v1/embeddings": ("embeddings", embeddings), "/v1/predict": ("predict", predict)})


class App:
    """The ASGI application: ``POST /v1/embeddings`` and ``/v1/predict`` straight over ASGI, the rest (and
    the lifespan) through FastAPI.

    The two endpoints that carry the load parse their bodies themselves (``schemas``), so FastAPI's
    routing, request and response objects only cost CPU there, on the cores the model uses: with a model
    that answers at once, 32 clients cost the server 0.225 ms of CPU per request through FastAPI and 0.07
    ms straight over ASGI (uvicorn, httptools, uvloop).
    """

    def __init__(self, api: FastAPI, state: State, posts: dict[str, tuple[str, Callable]]):
        self.api, self._state, self._posts = api, state, posts

    @property
    def state(self):
        return self.api.state

    async def __call__(self, scope, receive, send):
        found = self._posts.get(scope["path"].rstrip("/")) if scope["type"] == "http" else None
        if found is None:
            return await self.api(scope, receive, send)
        endpoint, run = found
        start = time.perf_counter()
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        if scope["method"] != "POST":
            status, body = 405, error_body(RequestError(405, f"this endpoint takes POST, not {scope['method']}",
                                                        "method_not_allowed"))
        else:
            try:
                status, body = await _answer(self._state, headers, run,
                                             lambda: _read_body(headers, receive, self._state.settings))
            except ClientGone:  # nobody to answer; counted as nginx counts it
                self._state.metrics.observe_request(endpoint, CLIENT_GONE, time.perf_counter() - start)
                return
        self._state.metrics.observe_request(endpoint, status, time.perf_counter() - start)
        extra = [(b"allow", b"POST")] if status == 405 else []
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
                    + extra})
        await send({"type": "http.response.body", "body": body})


async def _answer(state: State, headers, run, read=None) -> tuple[int, bytes]:
    """The status and body of one API request: the API key checked, then ``run(read)`` (``read()`` gives the
    body); a refused request gets its OpenAI-style error, a failure a 500, never the server down."""
    try:
        _authorise(headers, state.settings)
        if state.service is None:
            raise RequestError(503, state.error or "the model is still loading; retry when /health says ready",
                               "not_ready")
        return 200, await run(read)
    except ClientGone:
        raise
    except RequestError as error:
        return error.status, error_body(error)
    except Exception as exc:  # a bug or a failed forward pass: this request fails, the server stays up
        return 500, error_body(RequestError(500, f"{type(exc).__name__}: {exc}", "server_error"))


async def _models(state: State) -> bytes:
    service, created = state.service, int(time.time())
    ids = [service.embedding_model] + ([service.classifier_id] if service.classifier is not None else [])
    return dumps({"object": "list", "data": [{"id": i, "object": "model", "created": created,
                                              "owned_by": "embedclf"} for i in ids]})


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


def _authorise(headers, settings: ServeSettings) -> None:
    """``headers``: a mapping with lower-case names (Starlette's headers, or the ASGI scope's as a dict)."""
    if settings.api_key is None:
        return
    header = headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), settings.api_key.encode()):
        raise RequestError(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'",
                           "invalid_api_key")


class ClientGone(Exception):
    """The client closed the connection before its body was read."""


async def _read_body(headers: dict[str, str], receive, settings: ServeSettings) -> bytes:
    """The body, refused with 413 as soon as it is over the limit (by its Content-Length, or while reading)."""
    limit = settings.max_body_bytes
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body is {int(declared):,} bytes; the limit is {limit:,} (--max-body-bytes)",
                           "body_too_large")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is over the limit of {limit:,} bytes (--max-body-bytes)",
                               "body_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
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
