"""notes-assistant: ask a folder of study notes, get answers cited to file and line."""

__version__ = "0.1.0"

# the lower package sets OPENBLAS_NUM_THREADS before numpy loads (see ingest/__init__.py)
import ingest as _ingest  # noqa: E402,F401
