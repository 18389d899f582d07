"""One YAML file of the runner's (a campaign, a series) read as a validated pydantic model.

Bounded, non-blocking read of a regular file; YAML parsed by the policy loader's position-aware
parser, so every error names file:line:col and the key path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tierlock.sandbox import Location, Problem, TierlockError
from tierlock.sandbox._errors import display_path
from tierlock.sandbox._loader_positions import PositionIndex
from tierlock.sandbox._loader_yaml import LoadProblems, parse_yaml
from tierlock.sandbox._userfile import UserFileError, read_text

M = TypeVar("M", bound=BaseModel)


def read_model(
    p: Path,
    model: type[M],
    what: str,
    error: type[TierlockError],
    message: Callable[[Any], tuple[str, bool]],
) -> tuple[M, PositionIndex]:
    """One YAML file of the runner's (a campaign, a series) as a validated `model`, with the
    positions of its keys. Raises `error` naming file:line:col: the file unreadable (a regular
    file only, never blocking, bounded), empty, not YAML, not a mapping, or not valid."""
    file = display_path(p)
    try:
        text = read_text(p, f"{what} file", max_bytes=1 << 20)
    except UserFileError as e:
        raise error(str(e)) from None
    if not text.strip():
        raise error("", [Problem(Location(file, 1, 1), f"the {what} file is empty")])
    soft: list[Problem] = []
    try:
        data, spans, _ = parse_yaml(text, file, soft)
    except LoadProblems as e:
        raise error(f"{file}: invalid {what}", e.problems) from None
    if soft:
        raise error(f"{file}: invalid {what}", soft)
    positions = PositionIndex(file, spans)
    if not isinstance(data, dict):
        raise error("", [Problem(Location(file, 1, 1), f"a {what} is a mapping")])
    try:
        return model.model_validate({**data, "source": str(p.resolve())}), positions
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(x for x in err["loc"] if isinstance(x, str | int))
            msg, at_key = message(err)
            problems.append(Problem(positions.locate(loc, at_key=at_key), msg))
        raise error(f"{file}: invalid {what}", problems) from None
