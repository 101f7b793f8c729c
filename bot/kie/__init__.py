"""The KIE.AI client: errors, models and the client class."""

from __future__ import annotations

from bot.kie.client import KieClient
from bot.kie.errors import (
    KieAuthError,
    KieBadResponse,
    KieConnectError,
    KieContentPolicy,
    KieError,
    KieFeatureDisabled,
    KieGenerationFailed,
    KieInsufficientCredits,
    KieMaintenance,
    KieMethodNotAllowed,
    KieNotFound,
    KieRateLimited,
    KieServerError,
    KieTransportError,
    KieUpstreamTimeout,
    KieValidationError,
    error_for_code,
)
from bot.kie.models import (
    CallbackEvent,
    GenerateRequest,
    SuccessFlag,
    TaskRecord,
    UploadedFile,
    parse_callback,
    parse_timestamp,
)

__all__ = [
    "CallbackEvent",
    "GenerateRequest",
    "KieAuthError",
    "KieBadResponse",
    "KieClient",
    "KieConnectError",
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
    "SuccessFlag",
    "TaskRecord",
    "UploadedFile",
    "error_for_code",
    "parse_callback",
    "parse_timestamp",
]
