"""Admission (ledger/api/edge.py) refuses at once what finds its queue full, and tells
the client when to come back.

The application behind it holds each request until the test lets it go, so the queue is
known exactly; no clock is read by the assertions. The real-server side (160 clients,
a full queue over HTTP) is tests/integration/test_http_load.py."""

from __future__ import annotations

import asyncio
from typing import Any

from ledger.api.edge import Admission, Lanes

SCOPE = {"type": "http", "path": "/api/v1/balances", "headers": []}


class Held:
    """An ASGI app that answers 200 once ``go`` is set; ``inside`` counts its requests."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.inside = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.inside += 1
        await self.go.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def request(admission: Admission) -> tuple[int, dict[bytes, bytes]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await admission(SCOPE, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"])


async def refused_at_once(admission: Admission) -> dict[bytes, bytes]:
    """A request answered 503 before the event loop got to wait for anything (a refusal
    after the 5 s wait would take far more than these rounds of the loop)."""
    task = asyncio.create_task(request(admission))
    await settle(task.done)
    status, headers = task.result()
    assert status == 503, status
    return headers


async def settle(condition: Any) -> None:
    """Let the other tasks run until ``condition()`` holds (they only await each other)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the requests never got there")


def test_a_request_finding_the_queue_full_is_refused_at_once() -> None:
    async def scenario() -> None:
        app = Held()
        admission = Admission(app, capacity=1, wait=60.0, queue=2)
        first = asyncio.create_task(request(admission))
        await settle(lambda: app.inside == 1)
        waiting = [asyncio.create_task(request(admission)) for _ in range(2)]
        slots = admission._semaphore()
        await settle(lambda: slots.statistics().tasks_waiting == 2)
        headers = await refused_at_once(admission)
        assert headers[b"retry-after"] == b"1"  # no request finished yet: no estimate
        assert not first.done() and not any(task.done() for task in waiting)
        app.go.set()
        assert [(await task)[0] for task in (first, *waiting)] == [200, 200, 200]

    asyncio.run(scenario())


def test_retry_after_is_spread_around_the_time_the_queue_takes_to_drain() -> None:
    async def scenario() -> None:
        app = Held()
        admission = Admission(app, capacity=2, wait=60.0, queue=6)
        admission.held = 2.5  # recent requests held their place 2.5 s each
        held = [asyncio.create_task(request(admission)) for _ in range(2 + 6)]
        await settle(lambda: admission._semaphore().statistics().tasks_waiting == 6)
        drawn = set()
        for _ in range(200):  # 6 waiting * 2.5 s / 2 places = 7.5 s to drain
            drawn.add(int((await refused_at_once(admission))[b"retry-after"]))
        assert min(drawn) >= 1 and max(drawn) <= 15 and len(drawn) > 5, drawn  # spread
        admission.held = 1000.0
        assert int((await refused_at_once(admission))[b"retry-after"]) <= 30  # at most
        app.go.set()
        assert {(await task)[0] for task in held} == {200}
        assert admission.held < 1000.0  # these took no time: the estimate moved down

    asyncio.run(scenario())


def test_with_a_free_place_nobody_is_refused() -> None:
    async def scenario() -> None:
        app = Held()
        app.go.set()
        admission = Admission(app, capacity=1, wait=5.0, queue=0)
        assert [await request(admission) for _ in range(3)] == [(200, {})] * 3

    asyncio.run(scenario())


def test_writes_have_their_own_lane() -> None:
    """With the reads' one place taken and no queue, a read is refused at once while a
    write (POST) is admitted; with the writes' place taken too, a write is refused."""

    async def scenario() -> None:
        app = Held()
        reads = Admission(app, capacity=1, wait=60.0, queue=0)
        writes = Admission(app, capacity=1, wait=60.0, queue=0)
        lanes = Lanes(reads, writes)
        read = asyncio.create_task(call(lanes, "GET"))
        await settle(lambda: app.inside == 1)
        assert await call(lanes, "GET") == 503  # the reads' lane is full: at once
        write = asyncio.create_task(call(lanes, "POST"))
        await settle(lambda: app.inside == 2)  # admitted beside the read
        assert await call(lanes, "POST") == 503  # now the writes' lane is full too
        app.go.set()
        assert [await read, await write] == [200, 200]

    asyncio.run(scenario())


async def call(app: Any, method: str) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({**SCOPE, "method": method, "path": "/api/v1/events"}, receive, send)
    return int(sent[0]["status"])
