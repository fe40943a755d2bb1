"""Webhook receivers for the end-to-end benchmark, in a process of their own.

    python -m bench.receiver PORT [PORT ...]

Each port is one recipient's webhook: it answers every call 201 at once and records, per
transaction ID found in the body's D0 blocks, when the call arrived (time.time()). GET /results
returns ``{"count": n, "received": {transactionID: [first arrival, copies]}}``; GET /count just
the number of distinct transactions.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time

import orjson
from aiohttp import web

_TRANSACTION = re.compile(rb'"transactionID":"([^"]+)"')


class Recorder:
    def __init__(self) -> None:
        self.received: dict[str, list[float]] = {}
        self.calls = 0

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        self.calls += 1
        received = self.received
        for match in _TRANSACTION.finditer(body):
            tid = match.group(1).decode()
            seen = received.get(tid)
            if seen is None:
                received[tid] = [now, 1]
            else:
                seen[1] += 1
        return web.Response(status=201)

    async def count(self, request: web.Request) -> web.Response:
        return web.json_response({"count": len(self.received), "calls": self.calls})

    async def results(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"count": len(self.received), "calls": self.calls,
                                               "received": self.received}), content_type="application/json")


async def serve(ports: list[int]) -> None:
    runners = []
    for port in ports:
        recorder = Recorder()
        app = web.Application(client_max_size=1024 ** 3)
        app.router.add_post("/hook", recorder.hook)
        app.router.add_get("/count", recorder.count)
        app.router.add_get("/results", recorder.results)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve([int(p) for p in sys.argv[1:]]))
