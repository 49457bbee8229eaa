"""Progress of long work, for every front end: ingest's stages (files read, chunks
embedded) and a run of steps (graded cases, benchmark rounds).

    p = RichProgress(Console(stderr=True))        a bar on a terminal (plain lines elsewhere)
    run_ingest(..., progress=p); p.close()        ingest.pipeline's Progress protocol: stage/advance/warn
    p.start(len(cases), "grading"); p.step(case.id); p.stop()

:class:`Progress` itself is quiet and only counts; :class:`CallbackProgress` feeds a
function (the web UI's ``gr.Progress``).
"""

from __future__ import annotations

from typing import Any, Callable


class Progress:
    """Quiet progress that keeps count: ``name``, ``total``, ``done`` and the ``warnings`` seen."""

    def __init__(self) -> None:
        self.name, self.total, self.done = "", 0, 0
        self.warnings: list[str] = []

    # ingest.pipeline.Progress: stages of known size
    def stage(self, name: str, total: int) -> None:
        self.name, self.total, self.done = name, max(total, 0), 0
        self._show()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._show()

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    # a run of steps, each with a label
    def start(self, total: int, label: str) -> None:
        self.stage(label, total)

    def step(self, label: str) -> None:
        self.advance()

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.stop()

    def _show(self) -> None:
        pass


class CallbackProgress(Progress):
    """Calls ``fn(fraction_or_(done, total), desc=stage, unit=...)`` at every change, the
    signature of Gradio's ``gr.Progress``."""

    def __init__(self, fn: Callable[..., Any] | None):
        super().__init__()
        self.fn = fn

    def _show(self) -> None:
        if self.fn is not None:
            self.fn((min(self.done, self.total), self.total) if self.total else 0.0,
                    desc=self.name, unit="files" if "notes" in self.name else "chunks")


class RichProgress(Progress):
    """A rich progress bar on ``console`` (files, chunks, rate, ETA).

    ``transient``: the bar goes away when done, and a stage of nothing to do shows no bar
    (eval's ingest); otherwise every stage stays on screen (`assistant ingest`). A run of
    steps (:meth:`start`/:meth:`step`) shows a bar on a terminal and one plain line per
    step elsewhere (CI logs)."""

    def __init__(self, console: Any, transient: bool = False):
        super().__init__()
        self.console = console
        self.transient = transient
        self._bar: Any = None
        self._task: Any = None
        self._steps_plain = False

    def _open(self, description_width: int = 18) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TaskProgressColumn, \
            TextColumn, TimeElapsedColumn, TimeRemainingColumn

        if self._bar is None:
            self._bar = Bar(TextColumn(f"{{task.description:<{description_width}}}"), BarColumn(),
                            MofNCompleteColumn(), TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
                            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                            console=self.console, transient=self.transient)
            self._bar.start()

    def stage(self, name: str, total: int) -> None:
        super().stage(name, total)
        if self.transient and total <= 0:
            return
        self._open()
        if self._task is not None:
            self._bar.update(self._task, completed=self._bar.tasks[self._task].total)
        self._task = self._bar.add_task(name, total=max(total, 0), rate="")

    def advance(self, n: int = 1) -> None:
        super().advance(n)
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, n)
            t = self._bar.tasks[self._task]
            if t.elapsed and t.completed:
                self._bar.update(self._task, rate=f"{t.completed / t.elapsed:.1f}/s")

    def warn(self, message: str) -> None:
        super().warn(message)
        from .safe_text import text

        self.console.print(text(("warning:", "yellow"), " ", message, newlines=False))  # one line, never markup

    def start(self, total: int, label: str) -> None:
        Progress.stage(self, label, total)
        self._steps_plain = not self.console.is_terminal
        if self._steps_plain:
            return
        self._open(28)
        self._task = self._bar.add_task(label[:28], total=total, rate="")

    def step(self, label: str) -> None:
        Progress.advance(self)
        if self._steps_plain:
            self.console.print(f"[{self.done}/{self.total}] {label}", markup=False, highlight=False)
        elif self._bar is not None:
            self._bar.update(self._task, advance=1, description=label[:28])

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self._task = None
