"""Watch mode: keep a notes folder indexed by itself.

    assistant ingest ~/notes --watch      first ingest, then re-ingest on every change
    assistant ui --notes ~/notes --watch  the same, inside the web chat's process

Changes come from the operating system's file events (``watchfiles``: inotify on Linux,
FSEvents on macOS, ReadDirectoryChangesW on Windows). They are debounced: a burst of saves
(an editor's write-rename-delete dance, a ``git pull``, a sync client) becomes one re-ingest
once the folder has been quiet for ``quiet_ms``, or at the latest ``max_wait_ms`` after the
first change. Editor swap, backup and temp files and anything in a hidden folder are ignored.

Each update prints one line: the time, what changed, what the ingest did and how long it
took. The ingest is the ordinary one (incremental, crash-safe, one writer at a time): a
watcher killed mid-update leaves the previous index in force and the next run repairs the
rest; when another process holds the write lock the update waits and retries. Readers
(``NotesAssistant``: the web chat, ``assistant chat``, ``assistant mcp``) switch to the new
snapshot on their next question, without a restart.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .errors import BusyError, UserError

if TYPE_CHECKING:
    from .settings import Settings

NOTE_SUFFIXES = {".md", ".markdown", ".txt"}
# vim (.swp/.swo/..., 4913, file~), emacs (#file#, .#file), JetBrains (___jb_tmp___), Kate, gedit,
# LibreOffice, browsers' and sync clients' partial downloads, generic temp files
_TEMP_NAME = re.compile(r"(~$|^#.*#$|^4913$|___jb_(tmp|old|bak)___$|\.sw[a-p]$|\.(tmp|temp|part|partial|crdownload|"
                        r"download|kate-swp|bak|orig|lock)$|^~\$|\.goutputstream-)", re.I)

RETRY_S = 2.0  # another writer holds the lock: try again after this long


def is_noise(path: str | Path, root: Path, data_dir: Path | None = None) -> bool:
    """True for a change the index does not care about: editor swap/temp files, hidden
    files and folders, the index itself (a data_dir inside the notes folder)."""
    p = Path(path)
    try:
        rel = p.relative_to(root)
    except ValueError:
        return True
    if any(part.startswith(".") for part in rel.parts):
        return True
    if _TEMP_NAME.search(p.name):
        return True
    if data_dir is not None:
        try:
            p.relative_to(data_dir)
            return True
        except ValueError:
            pass
    return False


def describe(changes: Iterable[tuple[Any, str]], root: Path) -> str:
    """``{(Change.modified, '/n/a.md'), (Change.added, '/n/b.md')}`` -> ``"added b.md, edited a.md"``.

    The events of one path come as a set (their order is lost), so what happened is told by
    what the path is now: gone -> deleted; there and only created -> added; else edited
    (an editor's save-by-rename deletes and creates the same name)."""
    kinds: dict[str, set[int]] = {}
    for change, path in changes:
        kinds.setdefault(str(path), set()).add(int(change))
    said: list[tuple[str, str]] = []
    for path, ks in kinds.items():
        try:
            rel = Path(path).relative_to(root).as_posix()
        except ValueError:
            rel = str(path)
        if not Path(path).exists():
            if ks == {1} or ks == {1, 2}:
                continue  # created and gone again within the burst: nothing to tell
            verb = "deleted"
        elif 1 in ks and 3 not in ks:
            verb = "added"
        else:
            verb = "edited"
        said.append((verb, rel))
    order = {"added": 0, "edited": 1, "deleted": 2}
    said.sort(key=lambda vr: (order[vr[0]], vr[1]))
    shown = ", ".join(f"{v} {r}" for v, r in said[:3])
    if len(said) > 3:
        shown += f" and {len(said) - 3} more"
    return shown or "changes came and went"


def update_line(what: str, summary: Any) -> str:
    """One line per update: what changed, what the index did, seconds."""
    did = [f"{n} {k}" for k, n in (("added", summary.added), ("changed", summary.changed),
                                   ("removed", summary.removed), ("renamed", summary.renamed)) if n]
    body = ", ".join(did) if did else "no note changed"
    return (f"{datetime.now():%H:%M:%S} {what} -> {body}; {summary.files} files, {summary.chunks} chunks "
            f"({summary.chunks_embedded} embedded) in {summary.seconds:.1f} s")


def watch_notes(settings: Settings, notes_dir: Path, echo: Callable[[str], None] = print,
                stop: threading.Event | None = None, quiet_ms: int = 400, max_wait_ms: int = 3000,
                embedder: Any = None, on_update: Callable[[Any], None] | None = None) -> None:
    """Ingest ``notes_dir`` now and after every change, until ``stop`` is set or Ctrl-C
    (KeyboardInterrupt is left to the caller). ``echo`` gets one line per update."""
    import watchfiles

    from .indexing import ingest_notes as run_ingest

    root = Path(notes_dir).expanduser()
    if not root.is_dir():
        from .errors import NotesFolderError

        raise NotesFolderError(f"notes folder {root} does not exist: check the path" if not root.exists()
                               else f"{root} is a file, not a folder: pass the folder that holds your notes")
    root = root.resolve()
    data_dir = Path(settings.data_dir).expanduser().resolve()
    from .query import NotesAssistant

    qa = NotesAssistant(settings, root)  # the query API's view of the index: its embedder is kept across updates
    try:
        qa.snapshot  # noqa: B018 - an existing index: the embedder loads once, for every update
    except UserError:
        qa = None  # not ingested yet: the first ingest loads its own
    pending: set = set()
    first = True
    retry_at = 0.0

    def keep(change, path: str) -> bool:
        return not is_noise(path, root, data_dir)

    # The watcher starts before the first ingest: nothing saved meanwhile is missed. watchfiles
    # hands over changes every `step` ms while they come, and an empty set after `rust_timeout` ms
    # without any: that quiet time is the debounce (its own debounce counts distinct changes, so
    # 200 saves of one file would not hold it back). A burst that never pauses waits max_wait_ms.
    burst_since: float | None = None
    for changes in watchfiles.watch(root, watch_filter=keep, debounce=quiet_ms, step=50,
                                    rust_timeout=quiet_ms, yield_on_timeout=True, stop_event=stop,
                                    raise_interrupt=True, ignore_permission_denied=True):
        now = time.monotonic()
        if changes:
            pending |= changes
            burst_since = burst_since or now
            if now - burst_since < max_wait_ms / 1000:
                continue  # still changing: wait for a quiet moment
        if not (first or pending) or now < retry_at:
            continue
        burst_since = None
        what = "first ingest" if first else describe(pending, root)
        if qa is not None and embedder is None:
            try:
                embedder = qa.snapshot.embedder  # loaded once, kept across updates
            except UserError:
                pass
        try:
            summary = run_ingest(settings, root, embedder=embedder)
        except BusyError:
            echo(f"{datetime.now():%H:%M:%S} {what}: another ingest of this folder is running; "
                 f"retrying in {RETRY_S:.0f} s")
            retry_at = time.monotonic() + RETRY_S
            continue
        except UserError as exc:  # e.g. every note deleted: say so, keep watching
            echo(f"{datetime.now():%H:%M:%S} {what}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the index stays as it was; the next change retries
            echo(f"{datetime.now():%H:%M:%S} {what}: ingest failed ({type(exc).__name__}: {exc}); "
                 f"the index is unchanged, the next change retries")
        else:
            for w in summary.warnings:
                echo(f"warning: {w}")
            echo(update_line(what, summary))
            if on_update is not None:
                on_update(summary)
            if qa is None:
                qa = NotesAssistant(settings, root)
        first = False
        pending = set()
        retry_at = 0.0


def watch_in_background(settings: Settings, notes_dir: Path, echo: Callable[[str], None] = print,
                        embedder_from: Callable[[], Any] | None = None) -> tuple[threading.Thread, threading.Event]:
    """:func:`watch_notes` in a daemon thread (for ``assistant ui --watch``); set the event to stop it."""
    stop = threading.Event()

    def run():
        emb = None
        if embedder_from is not None:
            try:
                emb = embedder_from()
            except Exception:  # noqa: BLE001 - no index yet: the first ingest loads its own
                emb = None
        try:
            watch_notes(settings, notes_dir, echo=echo, stop=stop, embedder=emb)
        except UserError as exc:
            echo(f"watch stopped: {exc}")
        except Exception as exc:  # noqa: BLE001
            echo(f"watch stopped: {type(exc).__name__}: {exc}")

    t = threading.Thread(target=run, name="notes-watch", daemon=True)
    t.start()
    return t, stop
