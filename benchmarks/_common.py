"""Shared pieces of the benchmark scripts: corpora built from ../shared/notes, targets, output.

Nothing is downloaded: every corpus is made from the sentences of the seed notes
(``../shared/notes`` beside the repo, or ``--seed-notes``), shuffled with a fixed seed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as `python benchmarks/bench_x.py` from anywhere
SEED_NOTES = (REPO / ".." / "shared" / "notes").resolve()

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def parse_bench_args(ap: argparse.ArgumentParser, argv=None, seed_notes: bool = True) -> argparse.Namespace:
    """``ap`` with the options the benchmarks share (--seed-notes, --work, --json), parsed."""
    if seed_notes:
        ap.add_argument("--seed-notes", type=Path, default=SEED_NOTES)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "notes-assistant-bench")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


# --- corpora -------------------------------------------------------------------------

_SENT_END = re.compile(r"(?<=[。！？!?；;])|(?<=\. )")


def seed_sentences(seed_notes: Path = SEED_NOTES, min_chars: int = 12) -> list[str]:
    """The distinct sentences of the seed notes, in a stable order."""
    if not seed_notes.is_dir():
        sys.exit(f"error: seed notes folder {seed_notes} not found: pass --seed-notes DIR")
    from ingest.load import decode

    seen: dict[str, None] = {}
    for p in sorted(seed_notes.iterdir()):
        if p.suffix.lower() not in (".txt", ".md"):
            continue
        text, _ = decode(p.read_bytes())
        for line in text.splitlines():
            for s in _SENT_END.split(line):
                s = " ".join(s.split())
                if len(s) >= min_chars:
                    seen.setdefault(s, None)
    out = list(seen)
    if not out:
        sys.exit(f"error: no sentences in {seed_notes}")
    return out


def make_notes_folder(root: Path, n_notes: int, sentences: list[str], seed: int = 7,
                      paragraphs: tuple[int, int] = (2, 5), sentences_per_paragraph: tuple[int, int] = (1, 3),
                      per_folder: int = 100) -> Path:
    """``n_notes`` Markdown notes in folders of ``per_folder``, each a heading and a few paragraphs.

    Made once: a folder that already holds a ``.complete`` stamp with the same recipe is reused.
    """
    recipe = json.dumps({"n": n_notes, "seed": seed, "p": paragraphs, "s": sentences_per_paragraph,
                         "per": per_folder, "sent": len(sentences)})
    stamp = root / ".complete"
    if stamp.exists() and stamp.read_text() == recipe:
        return root
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(seed)
    for i in range(n_notes):
        d = root / f"topic-{i // per_folder:04d}"
        d.mkdir(parents=True, exist_ok=True)
        paras = []
        for _ in range(rng.randint(*paragraphs)):
            paras.append("".join(rng.choice(sentences) for _ in range(rng.randint(*sentences_per_paragraph))))
        title = sentences[i % len(sentences)][:24]
        (d / f"note-{i:05d}.md").write_text(f"# {title}\n\n" + "\n\n".join(paras) + "\n", encoding="utf-8")
    stamp.write_text(recipe)
    return root


class DerivedEmbedder:
    """Real-dimension vectors derived from real e5 embeddings, for corpora too large to embed.

    Each sentence of the seed notes is embedded once with the real model; a chunk's vector
    is the normalised mean of the real vectors of the sentences it contains (plus the
    heading's), so text and vector still agree. Text with no known sentence gets the real
    embedding. Used only to *set up* large indexes; benchmarks say so in their output.
    """

    model_name = "derived-from-e5"

    def __init__(self, sentences: list[str], real, cache: Path | None = None):
        import numpy as np

        self.np = np
        self.sentences = sentences
        self.real = real
        vecs = None
        if cache and cache.exists():
            data = np.load(cache, allow_pickle=False)
            if data.shape[0] == len(sentences):
                vecs = data
        if vecs is None:
            t = time.perf_counter()
            vecs = np.asarray(real.get_text_embedding_batch(sentences), dtype=np.float32)
            log(f"embedded {len(sentences)} seed sentences for real in {time.perf_counter() - t:.1f} s")
            if cache:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, vecs)
        self.vecs = vecs
        self.index = {s: i for i, s in enumerate(sentences)}
        # longest first, so that a sentence containing a shorter one wins
        self.by_len = sorted(sentences, key=len, reverse=True)

    def _vector(self, text: str):
        np = self.np
        hits = [self.index[s] for s in self.by_len if s in text][:8]
        if not hits:
            return np.asarray(self.real.get_text_embedding(text), dtype=np.float32)
        v = self.vecs[hits].mean(axis=0)
        return v / (np.linalg.norm(v) or 1.0)

    def get_text_embedding_batch(self, texts: list[str], **_: Any) -> list[list[float]]:
        return [self._vector(t).tolist() for t in texts]

    def get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text).tolist()


# --- measuring ------------------------------------------------------------------------

def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux: KiB


def percentile(values: Iterable[float], p: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    if len(v) == 1:
        return v[0]
    k = (len(v) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_average_at_start": load_average(), "python": sys.version.split()[0]}


# --- output ---------------------------------------------------------------------------

def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check(value: float, target: float, higher_is_better: bool) -> dict[str, Any]:
    """A figure against its target: ratio (>= 1 means the target is met) and pass/miss."""
    if higher_is_better:
        ratio = value / target if target else float("inf")
        ok = value >= target
    else:
        ratio = target / value if value else float("inf")
        ok = value <= target
    return {"value": round(value, 4), "target": target, "ratio_to_target": round(ratio, 3),
            "met": bool(ok), "direction": ">=" if higher_is_better else "<="}


def load_line(start: dict[str, Any], result: dict[str, Any], width: int) -> str:
    """The closing line every benchmark prints: how busy the machine was while it ran."""
    label = "load average at start/end"
    return (f"  {label:<{width}}{start['load_average_at_start']} / {result['load_average_at_end']} "
            f"({start['cpus']} CPUs)")


def emit(result: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print("\n".join(lines))


def fmt_check(name: str, c: dict[str, Any], unit: str = "") -> str:
    mark = "met" if c["met"] else "MISSED"
    return (f"  {name:<28} {c['value']:>10.3f}{unit}  target {c['direction']} {c['target']}{unit}  "
            f"(x{c['ratio_to_target']:.2f} of target) {mark}")
