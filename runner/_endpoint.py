"""Watching the model endpoint while a tier runs: refusals stop the run, outages are bounded.

Inspect retries transient model errors (429, 5xx, dropped connections) inside the model call,
unseen, and turns a refusal (401, 403, 404) into one sample error per sample. `EndpointWatch`
listens to Inspect's hooks while a tier's `eval_set` runs:

- every retry is counted and said on the terminal (at most one line every few seconds: retries
  so far, last status, the endpoint);
- a sample attempt that failed with 401/403/404 cancels the tier's tasks at once
  (`EndpointRefused`, a configuration error: exit 3 with one line naming the endpoint, the
  status and what to check; no verdict is recorded);
- an endpoint that has kept failing for `give_up` seconds — counted from the first failure
  after its last answer, not from the tier's start (sandbox set-up before the first call is not
  the endpoint's silence) — cancels the tasks too (`EndpointUnavailable`: the tier is recorded
  incomplete, never clean or unsafe).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tierlock.sandbox import TierlockError

from ._model_args import redact_url

FATAL = {
    401: "check the API key (${PROVIDER}_API_KEY, or -M api_key)",
    403: "check that the API key may use this model at this endpoint",
    404: "check the model name and the base URL (${PROVIDER}_BASE_URL); an OpenAI-compatible "
    "server without the Responses API needs -M responses_api=false",
}
"""Statuses that no retry can fix, and what to check."""
_STATUS = re.compile(r"(?:Error code|status(?:_code)?)[:= ]+(\d{3})\b", re.IGNORECASE)
_FATAL_TYPES = {"AuthenticationError": 401, "PermissionDeniedError": 403, "NotFoundError": 404}
SAY_EVERY = 5.0
"""Seconds between two retry lines on the terminal."""


class EndpointRefused(TierlockError):
    """The model endpoint refused the run's calls (401/403/404): fix the configuration."""

    exit_code = 3


class EndpointUnavailable(RuntimeError):
    """The model endpoint kept failing past the bound: the tier is incomplete."""


def endpoint_of(model: str, model_args: dict[str, Any]) -> str:
    """The endpoint a model's calls go to, credentials masked (for messages)."""
    provider = model.partition("/")[0]
    url = model_args.get("base_url") or os.environ.get(f"{provider.upper()}_BASE_URL")
    return redact_url(str(url)) if url else f"the {provider} API's default endpoint"


def fatal_status(message: str) -> int | None:
    """The 401/403/404 a model error message reports, if any."""
    m = _STATUS.search(message)
    if m is not None and int(m.group(1)) in FATAL:
        return int(m.group(1))
    for name, status in _FATAL_TYPES.items():
        if name in message:
            return status
    return None


@dataclass
class EndpointWatch:
    """What the hooks saw during one tier's eval (see the module docstring)."""

    model: str
    endpoint: str
    give_up: float
    say: Callable[[str], None]
    retries: int = 0
    last: str = ""
    refused: tuple[int, str] | None = None
    unavailable: str | None = None
    tasks: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.monotonic
    _failing_since: float | None = None  # the first failure since the last answer
    _last_said: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self) -> None:
        with self._lock:
            self._failing_since = None

    def task_started(self, task_id: str) -> None:
        with self._lock:
            self.tasks.add(task_id)
            if self.failed:  # a retry of a task cancelled earlier: cancel it too
                self._cancel()

    @property
    def failed(self) -> bool:
        return self.refused is not None or self.unavailable is not None

    def retried(self, status: int | None, exception: str | None) -> None:
        now = self.clock()
        with self._lock:
            self.retries += 1
            self.last = f"status {status}" if status else (exception or "an error")
            if self._failing_since is None:
                self._failing_since = now
            failing = now - self._failing_since
            if now - self._last_said >= SAY_EVERY:
                self._last_said = now
                self.say(
                    f"model endpoint {self.endpoint} is failing: {self.retries} retries so far, "
                    f"last {self.last}; failing for {failing:.0f}s without an answer (giving up "
                    f"after {self.give_up:.0f}s)"
                )
            if failing >= self.give_up and not self.failed:
                self.unavailable = (
                    f"model endpoint {self.endpoint} kept failing for {failing:.0f}s without an "
                    f"answer: {self.retries} retries, last {self.last}"
                )
            if self.failed:  # again on every event: a task between attempts may restart
                self._cancel()

    def attempt_failed(self, message: str) -> None:
        status = fatal_status(message)
        with self._lock:
            if status is not None and not self.failed:
                self.refused = (status, " ".join(message.split())[:200])
            if self.failed:
                self._cancel()

    def _cancel(self) -> None:
        from inspect_ai._control.cancel import cancel_task

        for task_id in list(self.tasks):
            try:
                cancel_task(task_id, action="cancel")
            except Exception:  # a task that already ended
                continue

    @contextmanager
    def failures(self) -> Iterator[None]:
        """Around the eval: a refusal or an outage the hooks saw is raised on the way out,
        whatever Inspect itself returned or raised."""
        try:
            yield
        except Exception:
            self.raise_if_failed()
            raise
        self.raise_if_failed()

    def raise_if_failed(self) -> None:
        """After the eval: the refusal or the outage, as the exception the runner expects."""
        if self.refused is not None:
            status, _ = self.refused
            provider = self.model.partition("/")[0].upper()
            check = FATAL[status].replace("${PROVIDER}", provider)
            raise EndpointRefused(
                f"model endpoint {self.endpoint} answered {status} for {self.model}: {check}; "
                "nothing was recorded for this tier (run again once fixed)"
            )
        if self.unavailable is not None:
            raise EndpointUnavailable(self.unavailable)


_active: EndpointWatch | None = None
_registered = False


@contextmanager
def watching(watch: EndpointWatch) -> Iterator[EndpointWatch]:
    """Route Inspect's hook events to `watch` for the duration of the block."""
    global _active
    _register()
    _active = watch
    try:
        yield watch
    finally:
        _active = None


def _register() -> None:
    global _registered
    if _registered:
        return
    from inspect_ai.hooks import (
        Hooks,
        ModelRetry,
        ModelUsageData,
        SampleAttemptEnd,
        TaskStart,
        hooks,
    )

    @hooks(name="tierlock_endpoint_watch", description="tierlock: model endpoint failures")
    class _Watch(Hooks):
        def enabled(self) -> bool:
            return _active is not None

        async def on_task_start(self, data: TaskStart) -> None:
            if _active is not None:
                _active.task_started(data.spec.task_id)

        async def on_model_retry(self, data: ModelRetry) -> None:
            if _active is not None:
                _active.retried(data.status_code, data.exception_type)

        async def on_model_usage(self, data: ModelUsageData) -> None:
            if _active is not None:
                _active.answered()

        async def on_sample_attempt_end(self, data: SampleAttemptEnd) -> None:
            if _active is not None and data.error is not None:
                _active.attempt_failed(data.error.message)

    _registered = True
