"""One small exception tree for every way a KIE call can fail.

Each class carries a short, user-safe ``user_message`` (shown on Discord) and a ``retryable`` flag.
``str(exc)`` is meant for logs: endpoint, code and KIE's message (truncated). It never contains the
API key or request headers, because nothing that could carry them is ever passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Final

from bot.i18n import N_

__all__ = [
    "ERROR_BY_CODE",
    "KieAuthError",
    "KieBadResponse",
    "KieContentPolicy",
    "KieError",
    "KieFeatureDisabled",
    "KieGenerationFailed",
    "KieInsufficientCredits",
    "KieMaintenance",
    "KieMethodNotAllowed",
    "KieNotFound",
    "KieRateLimited",
    "KieServerError",
    "KieTransportError",
    "KieUpstreamTimeout",
    "KieValidationError",
    "error_for_code",
]

_MAX_MSG = 200


def _truncate(text: str, limit: int = _MAX_MSG) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class KieError(Exception):
    """Base class: a KIE call (or a KIE task) did not give what was asked for."""

    default_code: ClassVar[int | None] = None
    default_retryable: ClassVar[bool] = False
    default_user_message: ClassVar[str] = N_(
        "The image service returned an error — try again later."
    )

    code: int | None
    retryable: bool
    user_message: str
    msg: str
    endpoint: str
    http_status: int | None

    def __init__(
        self,
        msg: str = "",
        *,
        code: int | None = None,
        endpoint: str = "",
        http_status: int | None = None,
        retryable: bool | None = None,
        user_message: str | None = None,
    ) -> None:
        self.msg = _truncate(msg or "")
        self.code = code if code is not None else self.default_code
        self.endpoint = endpoint
        self.http_status = http_status
        self.retryable = self.default_retryable if retryable is None else retryable
        self.user_message = user_message or self.default_user_message
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts: list[str] = []
        if self.endpoint:
            parts.append(self.endpoint)
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.http_status is not None and self.http_status != self.code:
            parts.append(f"http={self.http_status}")
        head = " ".join(parts) or type(self).__name__
        return f"{head}: {self.msg}" if self.msg else head

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()!r})"


class KieTransportError(KieError):
    """The connection failed (reset, refused, DNS) or timed out before an answer arrived."""

    default_retryable = True
    default_user_message = N_("The image service could not be reached — try again in a moment.")


class KieConnectError(KieTransportError):
    """The connection could not be made: the request was never sent, so resending is safe."""


class KieBadResponse(KieError):
    """KIE answered, but not with JSON of the documented shape."""

    default_retryable = True
    default_user_message = N_(
        "The image service sent an unexpected answer — try again in a moment."
    )


class KieContentPolicy(KieError):
    """400: the prompt or the input image was flagged by the content filter."""

    default_code = 400
    default_user_message = N_("Your prompt or image was flagged by the content filter.")


class KieAuthError(KieError):
    """401: the API key is missing or was refused."""

    default_code = 401
    default_user_message = N_(
        "The bot's KIE API key was refused — an admin needs to check the configuration."
    )


class KieInsufficientCredits(KieError):
    """402: the account has run out of credits."""

    default_code = 402
    default_user_message = N_(
        "The bot's KIE credits have run out — an admin needs to top up the account."
    )


class KieNotFound(KieError):
    """404: resource or endpoint does not exist."""

    default_code = 404
    default_user_message = N_("The image service could not find what was asked for.")


class KieMethodNotAllowed(KieError):
    """405: method not allowed (a bug on our side)."""

    default_code = 405
    default_user_message = N_("The image service refused the request.")


class KieUpstreamTimeout(KieError):
    """408: upstream produced no result for too long."""

    default_code = 408
    default_retryable = True
    default_user_message = N_("The image service timed out — try again in a moment.")


class KieValidationError(KieError):
    """422: the request's parameters were refused (also "the record does not exist")."""

    default_code = 422
    default_user_message = N_("KIE refused the request's parameters.")


class KieRateLimited(KieError):
    """429: too many generation requests in the rate window."""

    default_code = 429
    default_retryable = True
    default_user_message = N_("The image service is busy right now — try again in a few seconds.")


class KieMaintenance(KieError):
    """455: the service is under maintenance."""

    default_code = 455
    default_retryable = True
    default_user_message = N_("KIE is under maintenance right now.")


class KieServerError(KieError):
    """500: server error. On generate it also means "safety tolerance out of range"."""

    default_code = 500
    default_retryable = True
    default_user_message = N_("The image service had an internal error — try again later.")


class KieGenerationFailed(KieError):
    """501: the generation itself failed."""

    default_code = 501
    default_user_message = N_("The image generation failed — try Re-roll.")


class KieFeatureDisabled(KieError):
    """505: the feature is disabled."""

    default_code = 505
    default_user_message = N_("This feature of the image service is disabled right now.")


def _by_code(*classes: type[KieError]) -> dict[int, type[KieError]]:
    table: dict[int, type[KieError]] = {}
    for cls in classes:
        assert cls.default_code is not None, cls
        table[cls.default_code] = cls
    return table


# Every code KIE documents, to its class: the one table of what a KIE code means (each class
# states its code once, as `default_code`; bot.outcomes derives a task's outcome from the class).
ERROR_BY_CODE: Final[Mapping[int, type[KieError]]] = _by_code(
    KieContentPolicy,
    KieAuthError,
    KieInsufficientCredits,
    KieNotFound,
    KieMethodNotAllowed,
    KieUpstreamTimeout,
    KieValidationError,
    KieRateLimited,
    KieMaintenance,
    KieServerError,
    KieGenerationFailed,
    KieFeatureDisabled,
)


def error_for_code(
    code: int | None,
    msg: str | None,
    *,
    endpoint: str = "",
    http_status: int | None = None,
) -> KieError:
    """Build the exception for a KIE body ``code``, falling back to the HTTP status.

    Unknown codes map by range: 5xx -> a retryable :class:`KieServerError`, anything else -> a
    plain non-retryable :class:`KieError`.
    """
    effective = code if code is not None and code != 200 else http_status
    cls = ERROR_BY_CODE.get(effective) if effective is not None else None
    text = msg or ""
    if cls is not None:
        return cls(text, code=effective, endpoint=endpoint, http_status=http_status)
    if effective is not None and 500 <= effective <= 599:
        return KieServerError(text, code=effective, endpoint=endpoint, http_status=http_status)
    return KieError(text, code=effective, endpoint=endpoint, http_status=http_status)
