"""Prefetches: a callback's result URL downloaded ahead, held within bounds, handed over only
for the URL record-info confirms."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.prefetch import Prefetches

KIE_FILES = "https://files.kie.example"


class Downloads:
    """A result host whose downloads finish when the test says so."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.cancelled: list[str] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()  # a download was cancelled

    async def fetch(self, url: str) -> bytes:
        self.asked.append(url)
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(url)
            self.stopped.set()
            raise
        if url.endswith("broken.png"):
            raise ConnectionResetError("the host hung up")
        return f"bytes of {url}".encode()


class Timers:
    """The expiry timers, fired by the test instead of by the clock."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def schedule(self, delay: float, fire: Callable[[], None]) -> Timers.Handle:
        entry = (delay, fire)
        self.pending.append(entry)
        return Timers.Handle(self, entry)

    def fire_all(self) -> None:
        pending, self.pending = self.pending, []
        for _, fire in pending:
            fire()

    class Handle:
        def __init__(self, timers: Timers, entry: tuple[float, Callable[[], None]]) -> None:
            self._timers, self._entry = timers, entry

        def cancel(self) -> None:
            if self._entry in self._timers.pending:
                self._timers.pending.remove(self._entry)


def prefetches(downloads: Downloads, timers: Timers, limit: int = 2) -> Prefetches:
    found = Prefetches(downloads.fetch, limit=limit, keep_for=30.0, schedule=timers.schedule)
    found.confirmed(f"{KIE_FILES}/earlier.png")  # record-info named this origin before
    return found


async def started(downloads: Downloads) -> None:
    await asyncio.wait_for(downloads.started.wait(), 5)


async def cancelled(downloads: Downloads) -> None:
    await asyncio.wait_for(downloads.stopped.wait(), 5)


async def test_unused_prefetches_are_dropped_when_their_time_is_up() -> None:
    """A prefetch nobody asks for (record-info failed, the task ended) is cancelled and
    forgotten once its time is up: nothing stays held."""
    downloads, timers = Downloads(), Timers()
    found = prefetches(downloads, timers)
    assert found.start("t1", f"{KIE_FILES}/t1.png")
    await started(downloads)
    assert [delay for delay, _ in timers.pending] == [30.0]
    timers.fire_all()
    await cancelled(downloads)
    assert (len(found), downloads.cancelled) == (0, [f"{KIE_FILES}/t1.png"])
    assert await found.take("t1", f"{KIE_FILES}/t1.png") is None


async def test_at_most_limit_prefetches_are_held() -> None:
    downloads, timers = Downloads(), Timers()
    found = prefetches(downloads, timers, limit=2)
    started = [found.start(f"t{n}", f"{KIE_FILES}/t{n}.png") for n in range(3)]
    assert (started, len(found)) == ([True, True, False], 2)
    downloads.release.set()
    assert await found.take("t0", f"{KIE_FILES}/t0.png") == f"bytes of {KIE_FILES}/t0.png".encode()
    # Taken: its place and its timer are free again.
    assert (found.start("t2", f"{KIE_FILES}/t2.png"), len(timers.pending)) == (True, 2)


async def test_a_url_record_info_did_not_confirm_is_never_handed_over() -> None:
    downloads, timers = Downloads(), Timers()
    found = prefetches(downloads, timers)
    assert found.start("t1", f"{KIE_FILES}/from-callback.png")
    await started(downloads)
    assert await found.take("t1", f"{KIE_FILES}/from-record-info.png") is None
    await cancelled(downloads)
    assert (downloads.cancelled, len(found), timers.pending) == (
        [f"{KIE_FILES}/from-callback.png"],
        0,
        [],
    )


async def test_only_origins_record_info_named_are_fetched_from() -> None:
    """A callback body naming another host (or port) starts no download at all."""
    downloads, timers = Downloads(), Timers()
    found = prefetches(downloads, timers)
    refused = [
        found.start("t1", "https://elsewhere.example/t1.png"),
        found.start("t2", "https://files.kie.example:8443/t2.png"),
        found.start("t3", "http://files.kie.example/t3.png"),
        found.start("t4", "not a url at all"),
    ]
    assert (refused, downloads.asked, len(found)) == ([False] * 4, [], 0)


async def test_a_failed_prefetch_hands_over_nothing() -> None:
    downloads, timers = Downloads(), Timers()
    found = prefetches(downloads, timers)
    downloads.release.set()
    assert found.start("t1", f"{KIE_FILES}/broken.png")
    assert await found.take("t1", f"{KIE_FILES}/broken.png") is None


async def test_one_prefetch_per_task() -> None:
    """KIE's duplicate callback does not download the result a second time."""
    downloads, timers = Downloads(), Timers()
    found = prefetches(downloads, timers)
    assert (found.start("t1", f"{KIE_FILES}/t1.png"), found.start("t1", f"{KIE_FILES}/t1.png")) == (
        True,
        False,
    )
    await started(downloads)
    assert downloads.asked == [f"{KIE_FILES}/t1.png"]
