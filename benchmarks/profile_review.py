"""Server CPU per request of the review app, in process (no HTTP server, no sockets).

    PYTHONPATH=src .venv/bin/python benchmarks/profile_review.py --calls 1000 [--profile ROUTE]

Builds the data folder of ``bench_review.py`` (``--videos`` clips x 3 QAs: 9,828 items), creates
the app (``create_app``: the ASGI middleware + FastAPI app the server runs) with its writer
thread, adds ``--reviewers`` reviewers and drives the ASGI callable directly: ``--calls`` cycles
of ``GET /api/next`` (a claim: the reviewer's previous item is scored) -> ``GET /api/items/{id}``
-> ``POST /api/items/{id}/score`` (every 10th score sent twice: ``resend``), reviewers in turn,
plus ``GET /api/me``. Reports per route the mean wall time, the mean process CPU time (all
threads: the writer thread's SQL and commit included) and the event-loop thread's CPU time per
call, in microseconds.
``--profile ROUTE`` prints the cProfile top functions (cumulative) of that route instead.
What it leaves out: uvicorn's HTTP parsing and socket I/O (the same for every route).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_review import make_data

ROUTES = ("next", "item", "score", "resend", "me")


def scope(method: str, path: str, token: str, body: bytes | None) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())]
    if body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}


async def call(app: Any, method: str, path: str, token: str, body: bytes | None = None) -> tuple[int, bytes]:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body or b"", "more_body": False}

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope(method, path, token, body), receive, send)
    return status, b"".join(chunks)


async def drive(app: Any, tokens: list[str], calls: int, profile: str | None) -> dict[str, dict[str, float]]:
    wall: dict[str, float] = dict.fromkeys(ROUTES, 0.0)
    cpu: dict[str, float] = dict.fromkeys(ROUTES, 0.0)
    loop_cpu: dict[str, float] = dict.fromkeys(ROUTES, 0.0)
    count: dict[str, int] = dict.fromkeys(ROUTES, 0)
    profiler = cProfile.Profile() if profile else None

    async def timed(route: str, method: str, path: str, token: str, body: bytes | None = None) -> bytes:
        if profiler is not None and route == profile:
            profiler.enable()
        c0, t0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
        status, data = await call(app, method, path, token, body)
        wall[route] += time.perf_counter() - w0
        cpu[route] += time.process_time() - c0
        loop_cpu[route] += time.thread_time() - t0
        if profiler is not None and route == profile:
            profiler.disable()
        count[route] += 1
        if status != 200:
            raise RuntimeError(f"{route} {path}: {status} {data[:200]!r}")
        return data

    for i in range(calls):
        token = tokens[i % len(tokens)]
        item = json.loads(await timed("next", "GET", "/api/next", token))["item_id"]
        await timed("item", "GET", f"/api/items/{item}", token)
        body = json.dumps({"score": 1 + i % 4}).encode()
        await timed("score", "POST", f"/api/items/{item}/score", token, body)
        if i % 10 == 0:
            data = await timed("resend", "POST", f"/api/items/{item}/score", token, body)
            if json.loads(data)["status"] != "unchanged":
                raise RuntimeError(f"resend answered {data!r}")
        await timed("me", "GET", "/api/me", token)
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(35)
        sys.stdout.write(out.getvalue())
    return {r: {"n": count[r], "wall_us": 1e6 * wall[r] / max(count[r], 1), "cpu_us": 1e6 * cpu[r] / max(count[r], 1),
                "loop_cpu_us": 1e6 * loop_cpu[r] / max(count[r], 1)} for r in ROUTES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--videos", type=int, default=3276)
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument("--profile", choices=ROUTES, default=None)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    from ravst.review.app import create_app
    from ravst.review.db import ReviewDB

    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n_items = make_data(root, args.videos)
        db_path = root / "reviews.sqlite"
        setup = ReviewDB(db_path)
        tokens = [setup.add_reviewer(f"r{i}") for i in range(args.reviewers)]
        setup.close()
        app = create_app(root, db_path)
        db = app.state.db
        db.start_writer()
        try:
            # warm-up (first-call imports and caches), not counted
            runner(drive(app, tokens, 20, None))
            res = runner(drive(app, tokens, args.calls, args.profile))
        finally:
            db.stop_writer()
    sys.stdout.write(f"{n_items} items, {args.reviewers} reviewers, {args.calls} cycles\n"
                     "| route | calls | wall us/call | CPU us/call (all threads) | of which event-loop thread |\n"
                     "|---|---:|---:|---:|---:|\n")
    for route, r in res.items():
        sys.stdout.write(f"| {route} | {r['n']} | {r['wall_us']:.0f} | {r['cpu_us']:.0f} | {r['loop_cpu_us']:.0f} |\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
