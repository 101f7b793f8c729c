"""Compare: an edit's input and its result side by side, in one image (bot.images.side_by_side).

The input of an Edit or a Reframe of a result is that result (found like the result itself);
otherwise the ledger's stored copy (kept INPUT_RETENTION_DAYS after the task) or, while KIE
still serves it, the URL KIE was given. The result comes from the message the member clicked
(Discord's fresh attachment URL), else from KIE's result URL or the bot's own copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import aiohttp

from bot import images, net
from bot.i18n import Text
from bot.ledger import ParentAction, Task, TaskAndInputStore, TaskKind
from bot.validation import InputRejected

log = logging.getLogger(__name__)

INPUT_GONE = Text(
    "The input image of this edit is no longer kept, so it can't be compared. "
    "The result is still here to download."
)
RESULT_GONE = Text("This result's image can't be read any more, so it can't be compared.")
NOT_AN_EDIT = Text("Only an edit has an input image to compare with.")
MAX_RESULT_BYTES = 50 * 1024 * 1024
RESULT_AS_INPUT = frozenset({ParentAction.EDIT, ParentAction.REFRAME})  # made from a result


class Comparer:
    """Builds the side-by-side image of an edit; every refusal is an InputRejected."""

    def __init__(
        self,
        *,
        inputs: TaskAndInputStore,
        downloads: aiohttp.ClientSession,
        allow_private_urls: bool,
        upload_window: float,
        result_window: float,
        clock: Callable[[], float],
    ) -> None:
        """`upload_window` / `result_window`: how long after submission / completion KIE
        still serves the task's input URL / result URL."""
        self._inputs = inputs
        self._downloads = downloads
        self._allow_private = allow_private_urls
        self._upload_window = upload_window
        self._result_window = result_window
        self._clock = clock

    async def side_by_side(self, task: Task, *, shown_result_url: str | None) -> bytes:
        """The JPEG of the input (left) and the result (right). `shown_result_url`: the
        result's attachment on the message the member clicked, if any."""
        if task.kind != TaskKind.EDIT:
            raise InputRejected(NOT_AN_EDIT)
        left = await self._input(task)
        right = await self._result(task, shown_result_url)
        try:
            return await images.in_worker(images.side_by_side, left, right)
        except images.ImageRejected as exc:
            log.warning("task %s: comparison failed: %s", task.id, exc)
            raise InputRejected(RESULT_GONE) from None

    async def _input(self, task: Task) -> bytes:
        parent = await self._inputs.get(task.parent_task_id) if task.parent_task_id else None
        if parent is not None and task.parent_action is ParentAction.PICK:
            task = parent  # a pick shows the image its set made: the set's input is the input
        elif parent is not None and task.parent_action in RESULT_AS_INPUT:
            # The input was the parent's result, which outlives KIE's copy of the upload.
            data = await self._finished_image(parent, shown_url=None)
            if data is not None:
                return data
        stored = await self._inputs.get_input(task.input_key)
        if stored is not None:
            return stored.data
        sent_at = task.submitted_at or task.created_at
        if task.input_image_url and self._clock() - sent_at < self._upload_window:
            data = await self._fetch(task.input_image_url, max_bytes=images.MAX_INPUT_BYTES)
            if data is not None:
                return data
        raise InputRejected(INPUT_GONE)

    async def _result(self, task: Task, shown_result_url: str | None) -> bytes:
        data = await self._finished_image(task, shown_url=shown_result_url)
        if data is None:
            raise InputRejected(RESULT_GONE)
        return data

    async def _finished_image(self, task: Task, *, shown_url: str | None) -> bytes | None:
        """A finished task's image: where it is shown, else KIE's while kept, else our copy."""
        urls = [shown_url]
        finished_at = task.completed_at or task.created_at
        if task.result_url and self._clock() - finished_at < self._result_window:
            urls.append(task.result_url)
        for url in urls:
            if url:
                data = await self._fetch(url, max_bytes=MAX_RESULT_BYTES)
                if data is not None:
                    return data
        copy = await self._inputs.get_result_copy(task.id)
        return copy.data if copy is not None else None

    async def _fetch(self, url: str, *, max_bytes: int) -> bytes | None:
        try:
            fetched = await net.safe_fetch(
                self._downloads, url, max_bytes=max_bytes, allow_private=self._allow_private
            )
        except net.DownloadError as exc:
            log.info("comparison download failed: %s", exc)
            return None
        return fetched.data
