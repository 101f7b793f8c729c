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


class ResultHost:
    """KIE's result files by URL (each a distinct PNG), and the publisher's posts."""

    def __init__(self) -> None:
        self.files = {url: png_of(color) for url, color in RESULT_FILES.items()}
        self.fetched: list[tuple[str, bool]] = []  # (url, fall_back)
        self.posted: list[bytes] = []

    async def fetch_result(self, url: str, *, max_bytes: int, fall_back: bool = True) -> bytes:
        self.fetched.append((url, fall_back))
        return self.files[url]

    async def post_result(self, task: Any, image: ResultImage) -> Published:
        self.posted.append(image.data)
        return Published(message_id=1)


RESULT_FILES = {
    "https://files.kie.example/earlier.png": "white",
    "https://files.kie.example/result.png": "red",
    "https://files.kie.example/forged.png": "black",
}


def png_of(color: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, "PNG")
    return out.getvalue()


async def delivered_after_prefetch(callback_url: str) -> ResultHost:
    """One earlier delivery (record-info has named KIE's file host), then a task whose
    callback named `callback_url` and whose record-info named .../result.png."""
    host = ResultHost()
    deliverer = ResultDeliverer(host, host, Metrics())  # type: ignore[arg-type]
    earlier = make_task("e00000000000").with_changes(
        state=TaskState.DELIVERING, result_url="https://files.kie.example/earlier.png"
    )
    assert isinstance(await deliverer.deliver(earlier), Delivered)
    task = make_task("a00000000000").with_changes(state=TaskState.GENERATING)
    deliverer.prefetch(task.id, callback_url)
    confirmed = task.with_changes(
        state=TaskState.DELIVERING, result_url="https://files.kie.example/result.png"
    )
    assert isinstance(await deliverer.deliver(confirmed), Delivered)
    assert len(deliverer.prefetches) == 0
    return host


async def test_a_prefetched_result_is_posted_without_a_second_download() -> None:
    host = await delivered_after_prefetch("https://files.kie.example/result.png")
    assert (host.fetched[1:], host.posted[1:]) == (
        [("https://files.kie.example/result.png", False)],  # the prefetch: no fallback
        [png_of("red")],
    )


async def test_a_prefetch_of_another_url_than_record_infos_is_not_posted() -> None:
    """Record-info is the authority: the callback's URL differs, so record-info's is
    downloaded and posted."""
    host = await delivered_after_prefetch("https://files.kie.example/forged.png")
    assert (host.fetched[-1], host.posted[1:]) == (
        ("https://files.kie.example/result.png", True),
        [png_of("red")],
    )
