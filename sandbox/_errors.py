"""Errors a user can cause, each rendered as one line that names the place it applies to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Location:
    """A place in a file: path, 1-based line and column (0 when unknown), and a key path."""

    file: str
    line: int = 0
    column: int = 0
    key: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        return where


@dataclass(frozen=True)
class Problem:
    """One problem found in a file: where, what, and how bad."""

    location: Location
    message: str
    severity: str = "error"  # "error" | "warning"
    rule: str = ""

    def __str__(self) -> str:
        key = f" {self.location.key}:" if self.location.key else ""
        tag = "" if self.severity == "error" else f" {self.severity}:"
        rule = f" [{self.rule}]" if self.rule else ""
        return f"{self.location}:{tag}{key} {self.message}{rule}"


class TierlockError(Exception):
    """Base of every error a user can cause. The CLI prints it as one line and exits 1."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems: list[Problem] = problems or []

    def lines(self) -> list[str]:
        """The lines to print: one per problem, or the message itself."""
        return [str(p) for p in self.problems] or [str(self)]


class PolicyError(TierlockError):
    """A policy file cannot be loaded, or fails lint with errors."""


class SandboxError(TierlockError):
    """The sandbox could not be created as its policy says (Docker missing, conformance failed...)."""


def display_path(path: str | Path) -> str:
    """A path as the user would type it: relative to the working directory when below it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return str(p)
