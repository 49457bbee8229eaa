"""Ingest as the front ends call it: the pipeline of :mod:`ingest` with the embedding
model the settings name (``ingest/`` knows no models; this is where one is chosen).

    summary = ingest_notes(settings, folder, progress=progress)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ingest.pipeline import IngestSummary, Progress, run_ingest

if TYPE_CHECKING:
    from .settings import Settings


def ingest_notes(settings: Settings, notes_dir: Path, progress: Progress | None = None, embedder: Any = None,
                 rebuild: bool = False, _hook: Callable[[str], None] | None = None) -> IngestSummary:
    """Bring the index of ``notes_dir`` up to date with ``embedder`` (default: the model
    ``settings.embed`` names, built only if something needs embedding)."""
    from .models import make_embedder

    return run_ingest(settings, notes_dir, progress=progress, embedder=embedder, rebuild=rebuild, _hook=_hook,
                      make_embedder=lambda: make_embedder(settings.embed, settings))
