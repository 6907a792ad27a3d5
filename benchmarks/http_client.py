"""The load generator's HTTP/1.1 client: keep-alive connections posting prepared bodies, nothing more.

The client of a load test shares the machine's cores with the server it measures, so what it spends
is taken from the server: httpx cost about 6 ms of CPU per request here, as much as the server's own
work for a short text. This one costs about 0.1 ms.
"""

from __future__ import annotations

import asyncio


class Connection:
    """One keep-alive HTTP/1.1 connection that posts prepared bodies.

    It shares the machine's cores with the server, so it does as little as it can: bodies are encoded
    before the clock starts, and a reply is read by its Content-Length, its status checked, its JSON
    not parsed (httpx costs about 6 ms of CPU per request here, as much as the server's forward pass).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int):
        self.reader, self.writer, self.host, self.port = reader, writer, host.encode(), port
        self.reconnects = 0

    @classmethod
    async def open(cls, host: str, port: int) -> "Connection":
        return cls(*await asyncio.open_connection(host, port), host, port)

    def request(self, body: bytes) -> bytes:
        return (b"POST /v1/embeddings HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (self.host, len(body))) + body

    async def post(self, request: bytes) -> int:
        """Send a prepared request, read the whole reply; its status. A keep-alive connection that the server
        closed while it sat idle (uvicorn's default closes one after 5 s) is opened again and the request
        sent once more, as HTTP clients' pools do."""
        self.writer.write(request)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise
            self.close()
            self.reader, self.writer = await asyncio.open_connection(self.host.decode(), self.port)
            self.reconnects += 1
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
        fields = head.lower().split(b"content-length:", 1)
        if len(fields) == 2:
            await self.reader.readexactly(int(fields[1].split(b"\r\n", 1)[0]))
        else:  # chunked (another server may stream its reply)
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readuntil(b"\r\n")
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()
