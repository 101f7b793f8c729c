"""What each KIE error code means for a task: the outcome a member is told."""

from __future__ import annotations

import pytest

from bot.outcomes import Outcome, outcome_for_kie_code

EXPECTED = {
    400: Outcome.CONTENT_POLICY,
    401: Outcome.MISCONFIGURED,
    402: Outcome.OUT_OF_CREDITS,
    404: Outcome.GENERATION_FAILED,
    405: Outcome.GENERATION_FAILED,
    408: Outcome.TIMED_OUT,
    422: Outcome.INVALID_PARAMETERS,
    429: Outcome.GENERATION_FAILED,
    455: Outcome.MAINTENANCE,
    500: Outcome.INTERNAL_ERROR,
    501: Outcome.GENERATION_FAILED,
    503: Outcome.GENERATION_FAILED,  # a code KIE does not document: the generic failure
    505: Outcome.MISCONFIGURED,
    None: Outcome.GENERATION_FAILED,
}


@pytest.mark.parametrize(("code", "outcome"), EXPECTED.items())
def test_each_kie_code_has_its_outcome(code: int | None, outcome: Outcome) -> None:
    """Each documented KIE code is told as its own outcome; anything else as a failed generation."""
    assert outcome_for_kie_code(code) is outcome
