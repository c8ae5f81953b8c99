"""A small keep-alive HTTP/1.1 client on asyncio streams, for load tests of `ledger serve`.

Hundreds of simulated clients on a machine with two cores: a full client library would
spend the CPU the server under test needs. This one sends a request, reads the status
line, the headers and a Content-Length body, and keeps the connection for the next request
(it reconnects when the server said ``Connection: close``, or had closed the idle
connection). 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One keep-alive connection to ``127.0.0.1:port``, one request at a time."""

    def __init__(self, port: int, *, timeout: float = 120.0) -> None:
        self.port = port
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> Answer:
        started = time.monotonic()
        reused = self.writer is not None
        try:
            return await asyncio.wait_for(
                self._exchange(method, path, headers, body, started), self.timeout
            )
        except (ConnectionError, asyncio.IncompleteReadError):
            if not reused:
                raise
            # the server closed the idle connection (uvicorn: after 5 s), as servers may:
            # send again on a new one, as HTTP clients do (the ledger's POSTs are idempotent)
            return await asyncio.wait_for(
                self._exchange(method, path, headers, body, started), self.timeout
            )

    async def _exchange(
        self, method: str, path: str, headers: dict[str, str], body: bytes, started: float
    ) -> Answer:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body or method == "POST":
            head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        try:
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("the server closed the connection")
            status = int(status_line.split(b" ", 2)[1])
            got: dict[str, str] = {}
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                got[name.strip().lower()] = value.strip()
            data = await self.reader.readexactly(int(got.get("content-length", "0")))
        except BaseException:
            await self.close()
            raise
        if got.get("connection", "").lower() == "close":
            await self.close()
        return Answer(status, got, data, time.monotonic() - started)

    async def close(self) -> None:
        writer, self.writer, self.reader = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
