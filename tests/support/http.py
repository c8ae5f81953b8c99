"""Raw HTTP for the edge tests: bodies sent as a hostile client sends them (a huge
Content-Length, an endless chunked body), a server's resident memory, and an app served
by uvicorn on a thread."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from tests.support.api import free_port


def rss_kb(pid: int) -> int:
    """Resident memory of process ``pid`` (Linux), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def _status_line(sock: socket.socket, timeout: float) -> int:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ", 2)[1])


def post_raw(
    base: str,
    path: str,
    *,
    headers: dict[str, str],
    chunks: Iterable[bytes] = (),
    chunked: bool = False,
    timeout: float = 30,
) -> int:
    """POST ``path`` with ``headers``, then send ``chunks`` (as chunked transfer coding if
    ``chunked``) until the server answers; returns the answer's status. Stops sending as
    soon as the server has answered, as a client reading while it writes does."""
    url = urlsplit(base)
    head = [f"POST {path} HTTP/1.1", f"Host: {url.netloc}"]
    if chunked:
        head.append("Transfer-Encoding: chunked")
    head += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        deadline = time.monotonic() + timeout
        for chunk in _slices(chunks):
            if select.select([sock], [], [], 0)[0]:
                break  # answered already: stop before the server's close resets the socket
            frame = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            assert time.monotonic() < deadline, "the server never answered"
        return _status_line(sock, max(1.0, deadline - time.monotonic()))


def _slices(chunks: Iterable[bytes], size: int = 64 * 1024) -> Iterator[bytes]:
    for chunk in chunks:
        for start in range(0, len(chunk), size):
            yield chunk[start : start + size]


@contextmanager
def uvicorn_thread(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a loopback port in a thread; yields the base URL once
    it listens, stops it afterwards."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
