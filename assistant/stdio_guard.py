"""Keep standard output for the one thing a command promises there.

``assistant ask --json`` prints one JSON object and ``assistant mcp`` speaks JSON-RPC on
stdout; anything else (a library's log line, llama.cpp writing to file descriptor 1)
would break the reader. :func:`stdout_to_stderr` points descriptor 1 at stderr and
returns a text stream on the real stdout for the promised output.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TextIO


def stdout_to_stderr() -> TextIO:
    """From now on, fd 1 and ``sys.stdout`` write to stderr; the returned stream writes to the
    original stdout (UTF-8, line-buffered)."""
    sys.stdout.flush()
    real = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True)
    return io.TextIOWrapper(io.FileIO(real, "w", closefd=True), encoding="utf-8", line_buffering=True)
