"""What `assistant status` and the web UI's Status panel show: the settings in force,
the index, and the model that would answer (without loading it)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable

from .errors import UserError

if TYPE_CHECKING:
    from .settings import Settings


def status_info(settings: Settings, index_stats: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``{"config_file", "config_file_exists", "settings", "index", "llm"}``; a part that
    cannot be known holds ``{"error": one line}``."""
    from .models import describe_llm

    info: dict[str, Any] = {"config_file": str(settings.config_file),
                            "config_file_exists": settings.config_file.exists(),
                            "settings": json.loads(settings.model_dump_json())}
    try:
        info["index"] = index_stats()
    except UserError as exc:
        info["index"] = {"error": str(exc)}
    try:
        info["llm"] = describe_llm(settings)
    except UserError as exc:
        info["llm"] = {"error": str(exc)}
    return info
