"""The Flux Kontext models the bot offers: KIE's model ids and the names members see.

The one definition: options, validation, server defaults, status and result embeds, the
mod-log and the credit costs all read the models from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

PRO: Final = "flux-kontext-pro"
MAX: Final = "flux-kontext-max"
# KIE's id -> the name a member sees, in the order the options list them.
MODEL_NAMES: Final[Mapping[str, str]] = {PRO: "Pro", MAX: "Max"}
MODELS: Final = tuple(MODEL_NAMES)
DEFAULT_MODEL: Final = PRO


def model_name(model: str) -> str:
    """The name a member sees; an unknown id (an old task, a changed catalogue) as it is."""
    return MODEL_NAMES.get(model, model)
