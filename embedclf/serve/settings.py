"""What ``embedclf serve`` listens on and what it accepts: one frozen settings object, checked once.

The encoder's own settings (model, backend, precision, batch policy) stay in
:class:`~embedclf.encode.settings.EncoderSettings`; these are the service's: the address, how long the
batcher waits for company, and the limits that keep one client from taking the server down.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from embedclf.errors import EmbedclfError

API_KEY_ENV = "EMBEDCLF_API_KEY"


@dataclass(frozen=True)
class ServeSettings:
    """The service's address, batching wait and request limits.

    ``max_wait_ms`` is the longest the batcher holds a request back waiting for others to join its
    forward pass; it only waits while other requests are still arriving or another group is in the model,
    so a lone client never pays it.
    ``api_key`` (None: open) is compared with each request's ``Authorization: Bearer`` header.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_wait_ms: float = 5.0
    max_texts_per_request: int = 256
    max_text_chars: int = 20_000
    max_body_bytes: int = 4 * 2**20
    api_key: str | None = None

    def __post_init__(self):
        if not isinstance(self.host, str) or not self.host.strip():
            raise EmbedclfError(f"--host must be a host name or address, got {self.host!r}")
        _integer("--port", self.port, least=1, most=65535)
        if isinstance(self.max_wait_ms, bool) or not isinstance(self.max_wait_ms, (int, float)) \
                or not 0 <= self.max_wait_ms <= 10_000:
            raise EmbedclfError(f"--max-wait-ms must be between 0 and 10000, got {self.max_wait_ms!r}")
        _integer("--max-texts-per-request", self.max_texts_per_request, least=1)
        _integer("--max-text-chars", self.max_text_chars, least=1)
        _integer("--max-body-bytes", self.max_body_bytes, least=1024)
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key.strip()):
            raise EmbedclfError(f"--api-key must not be empty (or leave it and ${API_KEY_ENV} unset)")

    @classmethod
    def from_options(cls, api_key: str | None = None, **values) -> "ServeSettings":
        """Settings from the command line; the key falls back to ``$EMBEDCLF_API_KEY``."""
        return cls(api_key=api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None, **values)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _integer(option: str, value, *, least: int, most: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least or (most is not None and value > most):
        bound = f"between {least} and {most}" if most is not None else f"of at least {least}"
        raise EmbedclfError(f"{option} must be an integer {bound}, got {value!r}")
