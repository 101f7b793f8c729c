"""CPU of downloading a 1 MB result: the bot's `bot.net.safe_fetch` against the same request
read the way it was before (its body collected in 64 KB chunks), interleaved in one run.

    python -m bench.download [--rounds 150]

The file is served by a child process on 127.0.0.1 (as KIE's file server would be another
machine); CPU is this process's main-thread time (`time.thread_time`), so the server's work
is not counted. Prints the median wall and CPU time of each way.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from bot import net

SIZE = 1_000_000
LIMIT = 20_000_000


def serve(port: int) -> None:
    data = os.urandom(SIZE)

    async def image(_request: web.Request) -> web.Response:
        return web.Response(body=data, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/image", image)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def in_chunks(session: aiohttp.ClientSession, url: str) -> bytes:
    """safe_fetch as it was: the same timeouts, the body gathered 64 KB at a time and counted
    against the limit."""
    timeout = aiohttp.ClientTimeout(total=30.0, sock_connect=10.0)
    async with (
        asyncio.timeout(30.0),
        session.get(url, allow_redirects=False, timeout=timeout) as resp,
    ):
        buf = bytearray()
        async for chunk in resp.content.iter_chunked(64 * 1024):
            buf.extend(chunk)
            if len(buf) > LIMIT:
                raise net.DownloadTooLarge("too large")
        return bytes(buf)


async def safe_fetch(session: aiohttp.ClientSession, url: str) -> bytes:
    return (await net.safe_fetch(session, url, max_bytes=LIMIT, allow_private=True)).data


async def wait_for(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError("the file server did not start")


async def measure(url: str, rounds: int) -> dict[str, tuple[float, float]]:
    ways: dict[str, Callable[[aiohttp.ClientSession, str], Awaitable[bytes]]] = {
        "64 KB chunks (before)": in_chunks,
        "safe_fetch (now)": safe_fetch,
    }
    wall: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    async with net.make_download_session(allow_private=True) as session:
        for _ in range(rounds):
            for name, way in ways.items():
                started, used = time.perf_counter(), time.thread_time()
                assert len(await way(session, url)) == SIZE
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(time.thread_time() - used)
                await asyncio.sleep(0.005)
    skip = min(10, rounds // 5)  # connection set-up and first-touch allocation
    return {
        name: (statistics.median(wall[name][skip:]), statistics.median(cpu[name][skip:]))
        for name in ways
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args()
    server = multiprocessing.Process(target=serve, args=(args.port,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{args.port}/image"
    try:
        asyncio.run(wait_for(url))
        results = asyncio.run(measure(url, args.rounds))
    finally:
        server.terminate()
        server.join()
    print(f"1 MB download on loopback, {args.rounds} rounds interleaved, medians:")
    for name, (wall, cpu) in results.items():
        print(f"  {name:24s} wall {wall * 1000:5.2f} ms   CPU {cpu * 1000:5.2f} ms")


if __name__ == "__main__":
    main()
