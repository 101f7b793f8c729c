"""What the cogs ask about tasks that already exist: look one up, who may act on it, where a
re-roll or an edit of it gets its input, cancel it, post one image of a set alone.

A part of KontextService (bot/service.py), kept apart so each class stays readable.
"""

from __future__ import annotations

from collections.abc import Callable

from bot import custom_ids, images
from bot.config import Settings
from bot.executors import UPLOAD_REUSE_WINDOW
from bot.i18n import Text
from bot.ledger import ParentAction, StoredInput, Task, TaskAndInputStore, TaskKind, TaskState
from bot.outcomes import Outcome
from bot.runner import Runner
from bot.shared_work import leased
from bot.validation import InputRejected

RESULT_REUSE_WINDOW = 13 * 86400  # KIE keeps resultImageUrl 14 days
_HAS_RESULT = frozenset({TaskState.DELIVERING, TaskState.DONE})


class ExistingTasks:
    """Mixed into KontextService, which sets these."""

    _ledger: TaskAndInputStore
    _runner: Runner
    _settings: Settings
    _clock: Callable[[], float]

    async def get_task(self, task_id: str) -> Task | None:
        return await self._ledger.get(task_id)

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a task not yet sent to KIE (refunded); False if it had moved on. For a set
        (`task_id` its id), every image still queued; True if any was."""
        task = await self._ledger.get(task_id)
        if task is None or not task.in_set:
            return await self._runner.cancel(task_id)
        members = await self._ledger.set_members(task.set_id or task.id)
        cancelled = [await self._runner.cancel(m.id) for m in members]
        return any(cancelled)

    async def record_pick(
        self,
        picked: Task,
        *,
        interaction: tuple[int, int, str],
        channel_id: int,
        reply_message_id: int,
        locale: str | None = None,
    ) -> Task:
        """One image of a set, about to be posted alone as a result of its own in the click's
        reply (`interaction`: application id, interaction id and token of the click), in the
        clicker's `locale`. Nothing goes to KIE and nothing is charged. Written DELIVERING with
        the picked result's URL, so a restart before `delivered` posts it like any result."""
        application_id, interaction_id, token = interaction
        now = self._clock()
        pick = picked.with_changes(
            id=custom_ids.new_task_id(),
            channel_id=channel_id,
            application_id=application_id,
            interaction_id=interaction_id,
            interaction_token=token,
            created_at=now,
            updated_at=now,
            state=TaskState.DELIVERING,
            kie_task_id=None,
            callback_secret=None,
            parent_task_id=picked.id,
            parent_action=ParentAction.PICK,
            cost=0.0,
            refunded=False,
            set_id=None,
            set_index=0,
            set_size=1,
            reply_message_id=reply_message_id,
            result_message_id=None,
            result_channel_id=None,
            delivered_at=None,
            delivery_attempts=0,
            locale=locale,
        )
        await self._ledger.insert(
            leased(pick, self._settings), lease_seconds=self._settings.task_lease_seconds
        )
        return pick

    async def pick_failed(self, task: Task) -> None:
        """A pick that could not be posted: it ends as failed (it cost nothing)."""
        await self._ledger.transition(
            task.id,
            frozenset({TaskState.DELIVERING}),
            state=TaskState.FAILED,
            error_code=Outcome.CANNOT_POST.value,
            error_message="The image could not be posted.",
        )

    async def delivered(
        self, task: Task, message_id: int, image: tuple[bytes, str] | None = None
    ) -> None:
        """A task posted outside the lifecycle (a pick) is out, as message `message_id`. A
        private one keeps the bot's copy of `image` (bytes, file name): its ephemeral message
        is out of reach once the click's token has run out."""
        if task.private and image is not None:
            data, filename = image
            await self._ledger.put_result_copy(
                StoredInput(task.id, data, filename, images.content_type_of(filename))
            )
        await self._ledger.transition(
            task.id,
            frozenset({TaskState.DELIVERING}),
            state=TaskState.DONE,
            result_message_id=message_id,
            delivered_at=self._clock(),
        )

    @staticmethod
    def may_control(task: Task, user_id: int, *, can_manage_messages: bool) -> bool:
        return task.requester_id == user_id or can_manage_messages

    async def reroll_source(self, parent: Task) -> tuple[str | None, images.PreparedImage | None]:
        """The input of a re-roll: the parent's upload while KIE keeps it, else its stored bytes
        (a pick's input is its set's), else (None, None) for an edit of a saved reference alone
        (the re-roll names it too)."""
        if parent.kind != TaskKind.EDIT:
            return None, None
        if parent.parent_action is ParentAction.PICK and parent.parent_task_id:
            parent = await self._ledger.get(parent.parent_task_id) or parent
        if (
            parent.input_image_url
            and parent.submitted_at
            and (self._clock() - parent.submitted_at < UPLOAD_REUSE_WINDOW)
        ):
            return parent.input_image_url, None
        stored = await self._ledger.get_input(parent.input_key)
        if stored is None and parent.ref_name is not None:
            return None, None  # the saved reference alone: the Submitter uploads it again
        if stored is None:
            raise InputRejected(
                Text(
                    "The input image of this task is no longer kept. "
                    "Run /edit again with the image."
                )
            )
        try:
            return None, await images.in_worker(images.prepare_input, stored.data)
        except images.ImageRejected as exc:
            raise InputRejected(exc.user_message) from None

    def result_as_input(self, parent: Task) -> str:
        """The URL of a finished result, to edit it again (KIE keeps results 14 days). A task
        still DELIVERING has it too: its image may be in Discord before DONE is written."""
        if parent.state not in _HAS_RESULT or not parent.result_url:
            raise InputRejected(Text("This task has no finished image to edit."))
        if self._clock() - (parent.completed_at or parent.created_at) > RESULT_REUSE_WINDOW:
            raise InputRejected(
                Text("This image is too old to edit directly. Save it and use /edit with it.")
            )
        return parent.result_url
