"""notes-assistant: ask a folder of study notes, get answers cited to file and line."""

__version__ = "0.1.0"

import os as _os

# numpy's OpenBLAS keeps its worker threads spinning after each matrix product, and on a
# small machine they take the cores e5 and llama.cpp encode on: measured on 2 cores, a
# search went from 26 to 11 ms per question with one BLAS thread (our products are
# matrix-vector scans, which more threads do not speed up). Set before numpy loads;
# a value the user exported wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
