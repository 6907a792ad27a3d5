"""Start the service: check everything, bind the port, run uvicorn until SIGTERM or Ctrl-C, exit 0.

On the first SIGTERM or Ctrl-C the server stops accepting connections, answers every request in
flight, stops the batcher and returns normally (a second Ctrl-C quits at once). uvicorn would
re-raise the signal after a graceful stop (exit 130 or 143); a service that stopped as asked exits 0.
"""

from __future__ import annotations

import os
import socket
from typing import Callable

from embedclf.encode.settings import EncoderSettings
from embedclf.errors import EmbedclfError, missing_extra
from embedclf.serve.settings import ServeSettings


def require_extra() -> None:
    """The one-line install hint (exit 2) when the ``serve`` extra is missing."""
    import importlib

    for module, name in (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("prometheus_client", "prometheus-client"),
                         ("orjson", "orjson")):
        try:
            importlib.import_module(module)
        except ImportError:
            raise missing_extra(name, "serve") from None


def serve(settings: ServeSettings, encoder_settings: EncoderSettings, *, model_dir=None, cache=False,
          given: frozenset[str] = frozenset(), say: Callable[[str], None] = print) -> None:
    """``embedclf serve``: returns when the server was stopped by a signal; raises ``EmbedclfError`` for
    bad input, a port it cannot bind, or a model that failed to load."""
    require_extra()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import uvicorn

    from embedclf.serve.app import create_app
    from embedclf.serve.service import Service

    service = Service.prepare(encoder_settings, model_dir=model_dir, cache=cache, given=given)
    sock = _bind(settings)
    failure: list[str] = []

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            if not self.should_exit:
                say("stopping: no new connections; answering the requests in flight")
            super().handle_exit(sig, frame)
            self._captured_signals.clear()  # stopped as asked: return, do not re-raise the signal

    def failed(message: str) -> None:
        failure.append(message)
        server.should_exit = True

    app = create_app(service.load, settings, on_error=failed,
                     on_ready=lambda s: say(f"ready: {s.describe()}"
                                            + (f", cache {s.encoder.space.directory}" if s.encoder.space else "")))
    server = Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                   timeout_keep_alive=30))
    auth = "Bearer key required" if settings.api_key else "no API key"
    say(f"serving {service.describe()} on {settings.url} ({auth}); loading the model, /health says when it is ready")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if failure:
        raise EmbedclfError(failure[0])
    say("stopped")


def _bind(settings: ServeSettings) -> socket.socket:
    """The listening socket, bound here so that a busy port or a bad host is one line, not a log."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise EmbedclfError(f"cannot listen on {settings.host}:{settings.port} (--host/--port): "
                            f"{exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock
