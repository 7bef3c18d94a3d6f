"""A rich progress bar, or a do-nothing stand-in (shared by the solvers and the blockwise scheduler)."""

from __future__ import annotations


def progress_bar(enabled: bool, total: int, description: str):
    """A rich progress bar, or a do-nothing stand-in."""
    if not enabled:
        return _NoProgress()
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    prog = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeRemainingColumn(), transient=True)
    return _RichProgress(prog, total, description)


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def advance(self, n: int = 1):
        pass


class _RichProgress:
    def __init__(self, prog, total, description):
        self.prog, self.total, self.description = prog, total, description

    def __enter__(self):
        self.prog.__enter__()
        self.task = self.prog.add_task(self.description, total=self.total)
        return self

    def __exit__(self, *exc):
        return self.prog.__exit__(*exc)

    def advance(self, n: int = 1):
        self.prog.advance(self.task, n)
