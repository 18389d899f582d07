"""Every Docker API call has a deadline, and one that misses it says which call on what.

docker-py bounds each HTTP request by the client's `timeout` (connect and each read), but a
request that misses it surfaces as a `requests` exception naming a URL pool ("Read timed out"),
with no container and no operation. `DeadlineAPIClient` turns it into `DockerNoAnswer`, one line:
"Docker did not answer start on container tierlock-… within 120 s". The container's name is
known from its creation (or an inspect) by this client; exec ids are mapped to their container.

`DockerNoAnswer` is a `SandboxError`, not Inspect's `SandboxUnavailableError`: a tool call that
meets it ends the sample with an error (a harness error: the tier is incomplete) instead of
showing the model a failed tool call and scoring the sample as if nothing had happened.

The deadline is `TIERLOCK_DOCKER_TIMEOUT` seconds (default 120). Calls that legitimately take
longer pass their own timeout (docker-py's `stop(timeout=…)`, image builds); exec output streams
are bounded by the command's own deadline (`_exec`).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any

from docker import APIClient, DockerClient

from ._env import env_seconds
from ._errors import SandboxError

TIMEOUT_ENV = "TIERLOCK_DOCKER_TIMEOUT"
DEFAULT_TIMEOUT = 120.0
"""Seconds one Docker API call may take (a start or removal under load takes seconds)."""

_VERSION_PREFIX = re.compile(r"^/v\d+(\.\d+)?")
_OP_NAMES = {"json": "inspect", "changes": "diff", "exec": "exec create", "top": "top"}
_KEEP = 4096
"""Names remembered (container and exec ids), oldest forgotten first."""


def docker_timeout() -> float:
    """The deadline of one Docker call, from `TIERLOCK_DOCKER_TIMEOUT` (seconds)."""
    return env_seconds(TIMEOUT_ENV, DEFAULT_TIMEOUT, high=86400)


class DockerNoAnswer(SandboxError):
    """A Docker call missed its deadline or lost its connection: which call, on what. Outside a
    sample (a tier's host check, say) it ends `tierlock` with exit 3: nothing was decided, run
    again once Docker answers."""

    exit_code = 3

    def __init__(self, operation: str, target: str, seconds: float | None, reason: str = ""):
        on = f" on {target}" if target else ""
        if seconds is not None:
            text = f"Docker did not answer {operation}{on} within {seconds:g} s"
        else:
            text = f"Docker did not answer {operation}{on} ({reason or 'connection lost'})"
        super().__init__(text)
        self.operation, self.target, self.seconds = operation, target, seconds


class _Names:
    """Short-lived memory of container names and exec ids seen by one client (thread safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._containers: OrderedDict[str, str] = OrderedDict()
        self._execs: OrderedDict[str, str] = OrderedDict()

    @staticmethod
    def _put(table: OrderedDict[str, str], key: str, value: str) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > _KEEP:
            table.popitem(last=False)

    def container(self, cid: str, name: str) -> None:
        with self._lock:
            self._put(self._containers, cid, name.lstrip("/"))

    def exec(self, exec_id: str, cid: str) -> None:
        with self._lock:
            self._put(self._execs, exec_id, cid)

    def name(self, cid: str) -> str:
        with self._lock:
            if cid in self._containers:
                return self._containers[cid]
            for known, name in self._containers.items():  # a short id
                if len(cid) >= 12 and known.startswith(cid):
                    return name
        return cid[:12] if re.fullmatch(r"[0-9a-f]{64}", cid) else cid

    def container_of(self, exec_id: str) -> str | None:
        with self._lock:
            return self._execs.get(exec_id)


def describe(method: str, path: str, params: Any, names: _Names) -> tuple[str, str]:
    """(operation, target) of one API call, e.g. ("start", "container tierlock-…")."""
    parts = [p for p in _VERSION_PREFIX.sub("", path).split("/") if p]
    if not parts:
        return f"{method} /", ""
    kind = parts[0]
    if kind == "containers" and len(parts) >= 2:
        if parts[1] == "create":
            name = (params or {}).get("name") if isinstance(params, dict) else None
            return "create", f"container {name}" if name else ""
        if parts[1] == "json":
            return "container list", ""
        op = parts[2] if len(parts) > 2 else ("remove" if method == "DELETE" else method)
        return _OP_NAMES.get(op, op), f"container {names.name(parts[1])}"
    if kind == "exec" and len(parts) >= 3:
        cid = names.container_of(parts[1])
        target = f"container {names.name(cid)}" if cid else f"exec {parts[1][:12]}"
        return f"exec {_OP_NAMES.get(parts[2], parts[2])}", target
    if kind == "networks" and len(parts) >= 2 and parts[1] not in ("create", "prune"):
        op = parts[2] if len(parts) > 2 else ("remove" if method == "DELETE" else "inspect")
        return f"network {op}", f"network {parts[1][:40]}"
    return f"{method} /{'/'.join(parts)[:80]}", ""


class DeadlineAPIClient(APIClient):
    """docker-py's low-level client whose calls fail with `DockerNoAnswer` (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.names = _Names()  # (the base class asks the daemon's version while it initialises)
        super().__init__(*args, **kwargs)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        import requests.exceptions

        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.exceptions.Timeout:
            seconds = kwargs.get("timeout")
            if isinstance(seconds, tuple):
                seconds = max(s for s in seconds if s is not None)
            op, target = describe(method, _path(url), kwargs.get("params"), self.names)
            raise DockerNoAnswer(op, target, seconds if seconds else self.timeout) from None
        except requests.exceptions.ConnectionError as e:
            op, target = describe(method, _path(url), kwargs.get("params"), self.names)
            raise DockerNoAnswer(op, target, None, _reason(e)) from None
        if not kwargs.get("stream"):
            self._learn(method, _path(url), kwargs.get("params"), response)
        return response

    def _learn(self, method: str, path: str, params: Any, response: Any) -> None:
        """Remember the names this answer tells: a created container's, an inspected one's,
        and which container an exec belongs to."""
        if getattr(response, "status_code", 0) >= 300:
            return
        parts = [p for p in _VERSION_PREFIX.sub("", path).split("/") if p]
        if len(parts) < 2 or parts[0] != "containers":
            return
        try:
            if parts[1] == "create" and isinstance(params, dict) and params.get("name"):
                self.names.container(str(response.json()["Id"]), str(params["name"]))
            elif len(parts) == 3 and parts[2] == "json" and method == "GET":
                body = response.json()
                self.names.container(str(body["Id"]), str(body.get("Name") or body["Id"][:12]))
            elif len(parts) == 3 and parts[2] == "exec" and method == "POST":
                self.names.exec(str(response.json()["Id"]), parts[1])
        except (ValueError, KeyError, TypeError):
            pass

    def describe(self, method: str, path: str) -> tuple[str, str]:
        """(operation, target) of a call made outside docker-py (`_exec_socket`)."""
        return describe(method, path, None, self.names)


class DeadlineDockerClient(DockerClient):
    """`docker.DockerClient` over a `DeadlineAPIClient`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.api = DeadlineAPIClient(*args, **kwargs)


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path


def _reason(e: BaseException) -> str:
    """Why a connection failed, in a few words (no pool or adapter names)."""
    text = str(e)
    for words, said in (
        ("RemoteDisconnected", "the connection closed without an answer"),
        ("Connection aborted", "the connection closed without an answer"),
        ("Connection refused", "connection refused"),
        ("No such file", "no socket at the address"),
        ("Connection reset", "the connection was reset"),
    ):
        if words in text:
            return said
    return text.splitlines()[0][:200] if text else type(e).__name__
