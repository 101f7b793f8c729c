"""The executors' own rules, with their collaborators (KIE, the publisher) played by stubs."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from ledger.test_sqlite_ledger import make_task
from PIL import Image

from bot.executors import MAX_DELIVERIES_AT_ONCE, ResultDeliverer
from bot.ledger import TaskState
from bot.lifecycle.events import Delivered
from bot.metrics import Metrics
from bot.ports import Published, ResultImage


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "PNG")
    return out.getvalue()


class Results:
    """KIE's result downloads and the publisher's posts, counting results held in between."""

    def __init__(self) -> None:
        self.held = 0
        self.most_held = 0

    async def fetch_result(self, url: str, *, max_bytes: int) -> bytes:
        self.held += 1
        self.most_held = max(self.most_held, self.held)
        return png()

    async def post_result(self, task: Any, image: ResultImage) -> Published:
        await asyncio.sleep(0.01)  # Discord takes the upload
        self.held -= 1
        return Published(message_id=1)


async def test_results_held_between_download_and_post_are_bounded() -> None:
    """1,000 tasks finishing together (a restart) must not hold 1,000 results in memory:
    at most MAX_DELIVERIES_AT_ONCE are downloaded and not yet posted."""
    results = Results()
    deliverer = ResultDeliverer(results, results, Metrics())  # type: ignore[arg-type]
    tasks = [
        make_task(f"a{n:011d}").with_changes(
            state=TaskState.DELIVERING, result_url="https://kie.example/r.png"
        )
        for n in range(3 * MAX_DELIVERIES_AT_ONCE)
    ]
    events = await asyncio.gather(*(deliverer.deliver(task) for task in tasks))
    assert (results.most_held, all(isinstance(e, Delivered) for e in events)) == (
        MAX_DELIVERIES_AT_ONCE,
        True,
    )
