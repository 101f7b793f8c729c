"""``python -m bot.kie_sim --port PORT [--delay S] [--api-key KEY] [--host HOST]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from bot.kie_sim.server import KieSimulator, SimConfig


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot.kie_sim", description=__doc__)
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (0 = any)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--delay", type=float, default=8.0, help="seconds until a task finishes")
    parser.add_argument("--api-key", default=None, help="the only accepted key (default: any)")
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    sim = KieSimulator(SimConfig(api_key=args.api_key, delay=args.delay))
    await sim.start(host=args.host, port=args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(f"KIE simulator serving API and uploads on {sim.base_url}", flush=True)
    print(
        f"  try: curl -X POST {sim.base_url}/api/v1/flux/kontext/generate "
        "-H 'Authorization: Bearer KEY' -H 'Content-Type: application/json' "
        '-d \'{"prompt":"a red fox"}\'',
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the simulator until interrupted."""
    args = _parse(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
