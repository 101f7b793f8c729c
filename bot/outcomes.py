"""Why a task failed, in words a member understands. Raw exception text never reaches a user."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from bot.i18n import N_
from bot.kie.errors import (
    ERROR_BY_CODE,
    KieAuthError,
    KieContentPolicy,
    KieError,
    KieFeatureDisabled,
    KieGenerationFailed,
    KieInsufficientCredits,
    KieMaintenance,
    KieServerError,
    KieUpstreamTimeout,
    KieValidationError,
)


class Outcome(enum.StrEnum):
    CONTENT_POLICY = "content_policy"
    OUT_OF_CREDITS = "out_of_credits"
    MISCONFIGURED = "misconfigured"
    MAINTENANCE = "maintenance"
    INTERNAL_ERROR = "internal_error"
    GENERATION_FAILED = "generation_failed"
    INVALID_PARAMETERS = "invalid_parameters"
    TIMED_OUT = "timed_out"
    INPUT_UNAVAILABLE = "input_unavailable"
    RESULT_UNAVAILABLE = "result_unavailable"
    CANNOT_POST = "cannot_post"
    SHUTDOWN = "shutdown"
    NO_ANSWER = "no_answer"
    CANCELLED = "cancelled"  # the member pressed Cancel while the task was queued
    TOO_LATE = "too_late"  # outside servers, the interaction token ran out before the image
    DM_CLOSED = "dm_closed"  # a private result outlived the token; the member's DMs are closed


@dataclass(frozen=True)
class Failure:
    outcome: Outcome
    message: str
    rerollable: bool = True


# English msgids of the catalogues: a failure stores one, and it is shown in the task's language
# (bot.status.failure_text).
MESSAGES: dict[Outcome, str] = {
    Outcome.CONTENT_POLICY: N_(
        "KIE's content filter flagged the prompt or the image. Try rewording the prompt."
    ),
    Outcome.OUT_OF_CREDITS: N_(
        "The bot is out of KIE credits, so no image could be made. "
        "The bot's operator needs to top up the account; nothing was charged to you."
    ),
    Outcome.MISCONFIGURED: N_(
        "The bot's KIE API key was refused. The bot's operator needs to fix its configuration."
    ),
    Outcome.MAINTENANCE: N_("KIE is under maintenance right now. Please try again later."),
    Outcome.INTERNAL_ERROR: N_(
        "KIE had an internal error, and retrying didn't help. Please try again later."
    ),
    Outcome.GENERATION_FAILED: N_("KIE could not generate this image. Press Re-roll to try again."),
    Outcome.INVALID_PARAMETERS: N_("KIE refused the request's parameters."),
    Outcome.TIMED_OUT: N_("KIE did not finish this image in time. Press Re-roll to try again."),
    Outcome.INPUT_UNAVAILABLE: N_("The input image could not be sent to KIE. Please try again."),
    Outcome.RESULT_UNAVAILABLE: N_("The finished image could not be downloaded from KIE."),
    Outcome.CANNOT_POST: N_("The image was made, but the bot may not post in this channel."),
    Outcome.SHUTDOWN: N_("The bot was shutting down."),
    Outcome.NO_ANSWER: N_(
        "KIE did not answer in time, so the bot can't tell whether the request went through. "
        "Press Re-roll to try again."
    ),
    Outcome.CANCELLED: N_(
        "You cancelled this task before it was sent to KIE. Your credits were given back."
    ),
    Outcome.TOO_LATE: N_(
        "The image could not be delivered in time: outside servers the bot can only answer "
        "within 15 minutes of a command. Your credits were given back; please try again."
    ),
    Outcome.DM_CLOSED: N_(
        "Your private image took longer than 15 minutes, so it had to come by direct message, "
        "but your DMs are closed to the bot. Your credits were given back; please try again."
    ),
}

NOT_REROLLABLE = frozenset({Outcome.OUT_OF_CREDITS, Outcome.MISCONFIGURED, Outcome.CANNOT_POST})


def failure(outcome: Outcome, message: str | None = None) -> Failure:
    return Failure(outcome, message or MESSAGES[outcome], outcome not in NOT_REROLLABLE)


# What a task's failure with each KIE error means to the member. Which code is which error is
# bot.kie.errors.ERROR_BY_CODE's to say; errors not listed here (404, 405, 429, and codes KIE
# does not document) end the task as a failed generation.
OUTCOME_OF_ERROR: Final[Mapping[type[KieError], Outcome]] = {
    KieContentPolicy: Outcome.CONTENT_POLICY,
    KieAuthError: Outcome.MISCONFIGURED,
    KieInsufficientCredits: Outcome.OUT_OF_CREDITS,
    KieUpstreamTimeout: Outcome.TIMED_OUT,
    KieValidationError: Outcome.INVALID_PARAMETERS,
    KieMaintenance: Outcome.MAINTENANCE,
    KieServerError: Outcome.INTERNAL_ERROR,
    KieGenerationFailed: Outcome.GENERATION_FAILED,
    KieFeatureDisabled: Outcome.MISCONFIGURED,
}


def outcome_for_kie_code(code: int | None) -> Outcome:
    """KIE's error code (body `code`, record `errorCode` or callback `code`) to our outcome."""
    error = ERROR_BY_CODE.get(code) if code is not None else None
    if error is None:
        return Outcome.GENERATION_FAILED
    return OUTCOME_OF_ERROR.get(error, Outcome.GENERATION_FAILED)
