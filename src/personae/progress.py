"""A thin wrapper over rich's progress bar: counts, rate and ETA, on stderr, off with --quiet."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, SpinnerColumn, TaskProgressColumn,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)


class Progress:
    """Progress for waves of requests. Disabled: every method is a no-op."""

    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self._bar: RichProgress | None = None
        if enabled:
            self._bar = RichProgress(
                SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[width]}"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), console=console or Console(stderr=True), transient=False)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def add(self, label: str, total: int, completed: int = 0) -> Any:
        if self._bar is None:
            return None
        return self._bar.add_task(label, total=total, completed=completed, rate="", width="")

    def advance(self, task: Any, n: int = 1, width: str = "") -> None:
        """Count n more done; `width` is the requests in flight an adaptive executor allows now
        (e.g. 'width 12/64'), shown after the rate."""
        if self._bar is None or task is None:
            return
        self._bar.advance(task, n)
        speed = self._task(task).speed
        self._bar.update(task, rate=f"{speed:.1f}/s" if speed else "", width=width)

    def done(self, task: Any) -> None:
        if self._bar is None or task is None:
            return
        self._bar.update(task, completed=self._task(task).total)

    def _task(self, task: Any) -> Any:
        assert self._bar is not None
        return next(t for t in self._bar.tasks if t.id == task)
