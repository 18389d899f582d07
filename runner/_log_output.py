"""Where tierlock's structured events go: to people as plain lines, to machines as JSON when asked.

Every structlog event (runner, sandbox, image builds, Inspect's sample progress) passes through
one processor installed here, which hands it to the sinks below and then drops it (structlog
itself never prints):

- JSON lines on stderr, one object per event, only with `tierlock --log-format json` (or
  `TIERLOCK_LOG_FORMAT=json`); people then get the command's result on stdout and nothing else;
- JSON lines appended to `tierlock --log-file PATH`, beside unchanged human output;
- the person at the terminal: a presenter while `tierlock run` shows the ladder
  (`_console.py`), otherwise one line on stderr for a warning or an image-build step (a
  command's own output says the rest). Never JSON beside the human lines by default.

JSON is written by `json.dumps` in ASCII, control characters escaped: a value the model controls
cannot break a line of the log or reach the terminal raw.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import click
import structlog

from tierlock.sandbox import TierlockError
from tierlock.sandbox._userfile import os_reason, short

from ._event_text import event_text, is_problem

LogFormat = Literal["human", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("human", "json")
Sink = Callable[[dict[str, Any]], None]


@dataclass
class _Output:
    format: LogFormat = "human"
    file: TextIO | None = None
    path: Path | None = None
    presenter: Sink | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)


_out = _Output()


def set_output(log_format: LogFormat, log_file: Path | None) -> None:
    """The `tierlock` group's choices, for every command of this invocation."""
    close_output()
    _out.format = log_format
    if log_file is not None:
        try:
            _out.file = open(log_file, "a", encoding="ascii", buffering=1)  # noqa: SIM115
        except OSError as e:
            raise TierlockError(
                f"{short(log_file)}: cannot open the log file ({os_reason(e)})"
            ) from None
        _out.path = log_file
    configure_logging()


def close_output() -> None:
    """Close the log file (the end of an invocation); JSON on stderr stays as chosen."""
    with _out.lock:
        if _out.file is not None:
            with suppress(OSError):
                _out.file.close()
        _out.file, _out.path, _out.presenter = None, None, None


def json_on_stderr() -> bool:
    return _out.format == "json"


def configure_logging() -> None:
    """Route structlog's events through `_dispatch` (idempotent: every command may call it)."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _dispatch,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )


@contextmanager
def presenting(presenter: Sink) -> Iterator[None]:
    """Hand every event to `presenter` (instead of the plain warning lines) inside the block."""
    with _out.lock:
        before, _out.presenter = _out.presenter, presenter
    try:
        yield
    finally:
        with _out.lock:
            _out.presenter = before


def json_line(event: dict[str, Any]) -> str:
    """One event as one line of JSON (ASCII; anything not JSON by nature as its `str`)."""
    return json.dumps(event, ensure_ascii=True, default=str)


def stderr_line(text: str, event: str = "message", level: str = "info", **fields: Any) -> None:
    """A line for a person on stderr outside the event stream (an error, an interruption, the
    ledger head after a failure): a JSON object instead when JSON goes to stderr, and appended
    to the log file either way."""
    record = {"event": event, "message": text, **fields, "level": level, "timestamp": _now()}
    with _out.lock:
        if json_on_stderr():
            _write(sys.stderr, json_line(record))
        else:
            click.echo(text, err=True)
        if _out.file is not None:
            _write_file(json_line(record))


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _dispatch(_logger: Any, _method: str, event: structlog.typing.EventDict) -> Any:
    record = dict(event)
    with _out.lock:
        if _out.format == "json" or _out.file is not None:
            line = json_line(record)
            if _out.format == "json":
                _write(sys.stderr, line)
            if _out.file is not None:
                _write_file(line)
        if _out.presenter is not None:
            _present(_out.presenter, record)
        elif _out.format == "human":
            _plain(record)
    raise structlog.DropEvent


def _present(presenter: Sink, record: dict[str, Any]) -> None:
    try:
        presenter(record)
    except Exception as e:  # a display bug must not stop the code that logged the event
        _out.presenter = None
        click.echo(f"tierlock: the progress display failed ({type(e).__name__}: {e})", err=True)


def _plain(record: dict[str, Any]) -> None:
    """Without a presenter: warnings and image-build steps only (the command says the rest)."""
    if not is_problem(record) and record.get("event") != "image_build":
        return
    text = event_text(record)
    if text is not None:
        level = "" if record.get("event") == "image_build" else f"{record.get('level')}: "
        click.echo(f"tierlock: {level}{text}", err=True)


def _write(stream: TextIO, line: str) -> None:
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):  # a closed or broken stderr: nothing left to tell
        pass


def _write_file(line: str) -> None:
    assert _out.file is not None
    try:
        _out.file.write(line + "\n")
    except OSError as e:  # a full disk: say so once, keep running
        path, _out.file = _out.path, None
        click.echo(
            f"tierlock: {short(str(path))}: log file write failed ({os_reason(e)})", err=True
        )
