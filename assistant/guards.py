"""Checks an answer makes before it shows anything: the passages still stand in their
files, and the question has something to look up.

Both are called at one point of :meth:`assistant.query.NotesAssistant.ask`.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from pathlib import Path
from typing import Any, Sequence

from ingest.text import CJK_SCRIPT_CHAR, HAN


def _file_state(notes_dir: Path, rel: str, meta: Any) -> str:
    """``"same"`` when note ``rel`` is, on disk now, what the index read (same size and
    mtime, or same bytes); ``"changed"`` or ``"gone"`` (deleted, unreadable, or no longer
    inside the notes folder) otherwise."""
    import hashlib

    from ingest.paths import OutsideNotesError, note_path

    try:
        path = note_path(notes_dir, rel)
        st = path.stat()
    except (OSError, OutsideNotesError):
        return "gone"
    if not isinstance(meta, dict):
        return "changed"
    if st.st_size == meta.get("size") and st.st_mtime_ns == meta.get("mtime_ns"):
        return "same"
    try:
        data = path.read_bytes()
    except OSError:
        return "gone"
    return "same" if hashlib.sha256(data).hexdigest() == meta.get("sha256") else "changed"


def inside_only(passages: Sequence[Any], notes_dir: Path) -> list[Any]:
    """The passages whose file is inside the notes folder now (ingest.paths, the one rule):
    an index written before a note was replaced by a link out of the folder (or by an older
    version that followed such links) never shows what the link leads to."""
    from ingest.paths import is_inside, real_root

    root = real_root(notes_dir)
    return [p for p in passages if is_inside(root, os.path.join(root, p.chunk.file), root)]


def drop_stale(passages: Sequence[Any], snapshot: Any) -> tuple[list[Any], list[str], str | None]:
    """Keep the passages of notes that are, on disk now, what the index read.

    Returns ``(passages, warnings, message)``: the passages of unchanged notes; one
    warning per note changed (or gone) since the last ingest, whose passages are left
    out whole (the prompt may add a passage's neighbours from the same note, so a note
    that changed anywhere is not quoted); and, when any was, the line an answer that
    cannot be given adds (the note changed: run `assistant ingest`). So an answer never
    quotes text that is no longer in its file.
    """
    notes_dir = Path(snapshot.notes_dir)
    files = getattr(getattr(snapshot, "manifest", None), "files", None) or {}
    state: dict[str, str] = {}
    kept: list[Any] = []
    for p in passages:
        f = p.chunk.file
        if f not in state:
            state[f] = _file_state(notes_dir, f, files.get(f))
        if state[f] == "same":
            kept.append(p)
    changed = [f for f, st in state.items() if st != "same"]
    warnings = [f"{f} {'changed' if state[f] == 'changed' else 'was deleted or moved'} since the last ingest: "
                f"its old passages were left out of the answer; run `assistant ingest` to index it as it is now"
                for f in changed]
    message = None
    if changed:
        names = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        message = (f"Notes that match this question changed since the last ingest ({names}), so their old "
                   f"text is not quoted: run `assistant ingest` and ask again.")
    return kept, warnings, message


# --- a question with nothing to look up --------------------------------------------

_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]", re.S)
_COMMAND = re.compile(r"\\[A-Za-z]+\*?")
_WORD = re.compile(r"[^\W\d_]{2,}")  # two letters in a row, any script


def nothing_to_look_up(question: str) -> bool:
    """True when the question has no word to look up: only emoji, symbols, numbers or a
    formula (``$\\frac{a}{b}$``, ``\\sum_i x_i^2``). Such a question gets "the notes do not
    cover this", not sentences that merely sit near it in embedding space."""
    rest = _COMMAND.sub(" ", _MATH.sub(" ", question or ""))
    return not (CJK_SCRIPT_CHAR.search(rest) or _WORD.search(rest))


# --- a question about a name the notes never mention --------------------------------

# A name is a word people do not paraphrase: CamelCase (AlexNet, WikiText), capitals
# (ONNX, BERT) or letters with digits (GPT-2, YOLOv5, float16). Written-out words are not
# names: a student paraphrases them, and a paraphrase is rarely in the notes verbatim.
_NAME = re.compile(r"(?<![A-Za-z0-9])(?:[A-Za-z]*[A-Z][A-Za-z]*[a-z][A-Za-z]*[A-Z][A-Za-z0-9\-]*"
                   r"|[A-Z]{2,}[A-Za-z0-9\-]*|[A-Za-z]+-?\d+[A-Za-z0-9\-]*)(?![A-Za-z0-9])")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_FOLDED: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()
_FOLD_LOCK = threading.Lock()


def fold(text: str) -> str:
    """Lower case, letters and digits only: ``GPT-2``, ``gpt2`` and ``$\\mathrm{GPT}_2$`` meet."""
    return _NOT_ALNUM.sub("", text.lower())


# an English suffix on a name (CNN-based, BERT-style) says nothing the notes must write
_NAME_SUFFIX = re.compile(r"-(based|style|like|level|wise|free|only|specific|aware|driven|sized|type)$", re.I)


# In a question written in Chinese, an English word is a term the user copied from the notes or
# the literature ("DINO 里 teacher 网络", "all-reduce", "Swin Transformer"), not a paraphrase.
# (A bracketed gloss is left to the gloss rule below: the notes may write its term instead.)
_LATIN_WORD = re.compile(r"(?<![A-Za-z0-9\-])[A-Za-z][A-Za-z0-9\-]{2,}[A-Za-z0-9](?![A-Za-z0-9\-])")


def question_names(question: str) -> list[str]:
    """The names the question uses, and in a Chinese question every English word of four
    letters or more. Left out: three capitals or fewer alone, also as a plural (CNN, GRUs:
    notes often spell such an acronym out in their own language), and words of a question
    written in capitals (WHAT IS DROPOUT)."""
    found = [m.group(0).strip("-") for m in _NAME.finditer(question or "")]
    if CJK_SCRIPT_CHAR.search(question or ""):
        unglossed = _GLOSS.sub(" ", question)
        found += [m.group(0) for m in _LATIN_WORD.finditer(unglossed)]
    if sum(1 for n in found if n.isupper()) >= 3:
        found = [n for n in found if not n.isupper()]
    out = []
    for name in found:
        name = _NAME_SUFFIX.sub("", name)
        acronym = name[:-1] if name.endswith("s") and name[:-1].isupper() else name
        if len(fold(name)) < 3 or (acronym.isalpha() and acronym.isupper() and len(acronym) <= 3):
            continue
        out.append(name)
    return list(dict.fromkeys(out))


def name_written(name: str, folded: str) -> bool:
    """Does the ``fold``-ed text write the name (without case, spaces or punctuation)? A plural
    (ResNets, GPUs) counts as written when its singular is."""
    return fold(name) in folded or (name.endswith("s") and fold(name[:-1]) in folded)


def unknown_names(question: str, snapshot: Any) -> list[str]:
    """The names of the question that stand nowhere in the indexed notes (text, code and
    headings, compared without case, spaces or punctuation). A question about AlexNet over
    notes that never write "AlexNet" is a near miss, however close its other words are: the
    notes discuss the topic, not the thing asked. Measured on every suite (benchmarks/README.md,
    "Refusals"): no answerable question names something its notes never write."""
    names = question_names(question)
    glosses = question_glosses(question)
    if not names and not glosses:
        return []
    with _FOLD_LOCK:  # once per snapshot, not once per thread asking at the same time
        folded = _FOLDED.get(snapshot)
        if folded is None:
            texts = [f"{c.heading_path}\n{c.text}" for c in snapshot.chunks]
            folded = ("\x00".join(fold(t) for t in texts), "\x00".join(texts).lower())
            _FOLDED[snapshot] = folded
    letters, raw = folded
    out = [n for n in names if not name_written(n, letters)]
    # a glossed term counts as written when the notes write the term or its gloss
    out += [gloss for term, gloss in glosses if fold(gloss) not in letters
            and not (term and (fold(term) in letters if term.isascii() else term.lower() in raw))]
    return list(dict.fromkeys(out))


# A term given with its gloss in brackets ("计划采样（scheduled sampling）", "dilated (atrous)
# convolution") names one concept precisely, in two wordings.
_GLOSS = re.compile(rf"([{HAN}]{{2,}}|[A-Za-z][A-Za-z\-]{{2,}})?\s*[（(]\s*([A-Za-z][A-Za-z0-9 \-]{{2,}}?)\s*[）)]")


def question_glosses(question: str) -> list[tuple[str, str]]:
    """``(term, gloss)`` for each bracketed English gloss in the question; ``term`` is the
    word before it (a Chinese one: its last four characters), or empty."""
    out = []
    for m in _GLOSS.finditer(question or ""):
        term, gloss = (m.group(1) or ""), m.group(2).strip()
        if len(fold(gloss)) >= 4:
            out.append((term[-4:] if not term.isascii() else term, gloss))
    return out
