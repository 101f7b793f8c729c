"""Discord's answers to a post, as the core reads them: each one a typed Refusal (bot.ports)."""

from __future__ import annotations

from dataclasses import dataclass

import discord
import pytest

from bot.ports import Refusal
from cogs.publisher import refused


@dataclass
class Answer:
    """What discord.HTTPException reads from an HTTP response."""

    status: int
    reason: str = ""


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (403, 50013, Refusal.FORBIDDEN),  # Missing Permissions
        (403, 50001, Refusal.FORBIDDEN),  # Missing Access
        (413, 40005, Refusal.TOO_LARGE),  # Request entity too large
        (429, 0, Refusal.TRANSIENT),
        (503, 0, Refusal.TRANSIENT),
        (400, 50035, Refusal.REFUSED),  # Invalid Form Body
        (404, 10003, Refusal.REFUSED),  # Unknown Channel
    ],
)
def test_discord_answer_becomes_a_typed_refusal(status: int, code: int, expected: Refusal) -> None:
    exc = discord.HTTPException(Answer(status), {"code": code, "message": "refused"})
    assert refused(exc).refusal == expected
