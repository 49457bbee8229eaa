"""What got indexed: each file with its chunk count, or why it was skipped.

Read from the index manifest (ingest records every indexed file with its chunk ids, and
every file it left out with the reason: not a note file, hidden, binary, undecodable, too
large, unreadable). Used by ``assistant status --files`` and the web chat's Status panel.
"""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """A file name or note text safe to print on a terminal: control characters shown as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def reason_kind(reason: str) -> str:
    """``"too large: 12.0 MB, ..."`` -> ``"too large"``; ``"not a note file (.csv)"`` -> ``"not a note file"``."""
    return reason.split(":")[0].split(" (")[0].strip()


def file_report(qa: Any) -> dict[str, Any]:
    """Indexed files (chunks each) and skipped files (reason each) of ``qa``'s notes folder."""
    snap = qa.snapshot
    m = snap.manifest
    files = [{"file": rel, "chunks": len(meta.get("chunks") or []), "bytes": meta.get("size"),
              "encoding": meta.get("encoding")} for rel, meta in sorted(m.files.items())]
    skipped = [{"file": rel, "skipped": reason} for rel, reason in sorted((m.skipped or {}).items())]
    kinds: dict[str, int] = {}
    for s in skipped:
        k = reason_kind(s["skipped"])
        kinds[k] = kinds.get(k, 0) + 1
    out = {"notes_dir": str(snap.notes_dir), "files": files, "skipped": skipped,
           "totals": {"indexed": len(files), "chunks": sum(f["chunks"] for f in files), "skipped": len(skipped),
                      "skipped_by_reason": kinds}}
    if m.skipped is None:
        out["note"] = "this index was written before skipped files were recorded: run `assistant ingest` once"
    return out


def render_file_report(report: dict[str, Any]) -> None:
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=True)
    t = report["totals"]
    out.print(f"Notes folder  {printable(report['notes_dir'])}", markup=False)
    out.print(f"{t['indexed']} files indexed ({t['chunks']} chunks), {t['skipped']} skipped", markup=False)
    from rich.cells import cell_len  # Chinese file names are two cells a character wide

    width = max([cell_len(printable(f["file"])) for f in report["files"] + report["skipped"]] + [10])

    def pad(name: str) -> str:
        name = printable(name)
        return name + " " * (width - cell_len(name))

    for f in report["files"]:
        n = f["chunks"]
        out.print(f"  {pad(f['file'])}  {n} chunk{'s' if n != 1 else ''}", markup=False)
    for f in report["skipped"]:
        out.print(f"  {pad(f['file'])}  skipped: {printable(f['skipped'])}", markup=False)
    if report.get("note"):
        out.print(f"note: {report['note']}", markup=False)


def status_markdown_rows(qa: Any, escape) -> list[str]:
    """Rows for the web chat's Status panel: totals, then the skipped files with reasons."""
    rep = file_report(qa)
    t = rep["totals"]
    rows = [f"**Files** {t['indexed']} indexed ({t['chunks']} chunks), {t['skipped']} skipped"
            + ("" if not t["skipped_by_reason"] else " (" + ", ".join(
                f"{n} {escape(k)}" for k, n in sorted(t["skipped_by_reason"].items())) + ")")]
    shown = rep["skipped"][:50]
    for s in shown:
        rows.append(f"&nbsp;&nbsp;· <code>{escape(s['file'])}</code> skipped: {escape(s['skipped'])}")
    if len(rep["skipped"]) > len(shown):
        rows.append(f"&nbsp;&nbsp;· … and {len(rep['skipped']) - len(shown)} more (`assistant status --files`)")
    if rep.get("note"):
        rows.append(escape(rep["note"]))
    return rows
