"""A running sample sandbox as Inspect drives it: `exec`, `read_file`, `write_file`, evidence
and connection, all through `docker exec` (`_exec`) and always explicitly as the policy's user
(never the container's default user, which is the keepalive's); and its teardown (evidence
recorded, then everything removed).

`_provider.TierlockSandboxEnvironment` adds the lifecycle (task and sample init and cleanup) on
top of this class.
"""

from __future__ import annotations

import errno
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Union, overload

import anyio
import structlog
from inspect_ai.util import ExecResult, OutputLimitExceededError, SandboxEnvironment
from inspect_ai.util._sandbox.environment import (
    SandboxConnection,
    SandboxUnavailableError,
    SandboxUserUnsupportedError,
)
from inspect_ai.util._sandbox.limits import SandboxEnvironmentLimits

from ._collect import collect_evidence
from ._docker import run_sync
from ._evidence import ContainerEvidence
from ._exec import (
    PINNED_PATH,
    ContainerGone,
    ExecOutcome,
    exec_permission_error,
    kill_exec,
    run_exec,
)
from ._policy import Policy
from ._sample_box import SampleBox, remove_box
from ._sample_context import record_evidence
from ._sample_reap import reap
from ._translate import user_ids
from ._tripwire import after_command

log = structlog.get_logger("tierlock.sandbox")

KILL_GRACE = "5s"
"""`timeout -k`: how long a timed-out command gets between SIGTERM and SIGKILL."""
FILE_OP_TIMEOUT = 600
"""Seconds for one read_file/write_file."""


class RunningSandbox(SandboxEnvironment):
    """A sample's Docker container configured by a tierlock policy, driven through the docker SDK."""

    def __init__(self, box: SampleBox) -> None:
        super().__init__()
        self._box = box
        policy = box.loaded.policy
        self._workdir = PurePosixPath(policy.filesystem.workdir)
        # the policy's own spellings of its user, and the leased uid it runs as
        self._users = _allowed_users(policy.process.user) | _allowed_users(box.policy.process.user)

    @property
    def container_id(self) -> str:
        return self._box.container_id

    @property
    def policy(self) -> Policy:
        return self._box.policy

    @property
    def policy_file(self) -> Path:
        """The policy file this sandbox was made from (its relative paths resolve against it)."""
        return self._box.loaded.path

    async def _finish(self) -> None:
        """Record the container's (and network's) evidence, then remove everything."""
        box = self._box
        if box.removed:
            return
        try:
            with anyio.move_on_after(60):
                # nothing of the model's may run while its file-system changes are read
                await reap(box, final=True)
                evidence = await run_sync(
                    collect_evidence,
                    box.client,
                    box.container_id,
                    role="default",
                    policy_hash=box.loaded.policy.digest(),
                    writable=[w.path for w in box.loaded.policy.filesystem.writable]
                    + [m.target for m in box.loaded.policy.filesystem.mounts if m.mode == "rw"],
                    timeouts=box.counters.timeouts,
                    output_limit_hits=box.counters.output_limit_hits,
                )
                record_evidence(evidence)
            if box.network is not None:
                with anyio.move_on_after(60):
                    for record in await box.network.evidence():
                        record_evidence(record)
        except Exception as e:  # evidence is best effort; removal is not
            log.warning("evidence collection failed", container=box.name, error=str(e))
            record_evidence(
                ContainerEvidence(
                    container=box.name,
                    policy_hash=box.loaded.policy.digest(),
                    timeouts=box.counters.timeouts,
                    output_limit_hits=box.counters.output_limit_hits,
                    collected=False,
                    error=f"{type(e).__name__}: {e}"[:300],
                )
            )
        finally:
            await remove_box(box)

    def _cwd(self, cwd: str | None) -> str:
        if cwd is None:
            return str(self._workdir)
        p = PurePosixPath(cwd)
        return str(p if p.is_absolute() else self._workdir / p)

    def _file(self, file: str) -> str:
        p = PurePosixPath(file)
        return str(p if p.is_absolute() else self._workdir / p)

    def _check_user(self, user: str | None) -> None:
        if user is not None and user not in self._users:
            raise SandboxUserUnsupportedError(
                f"the policy runs sandbox processes as {self.policy.process.user} only "
                f"(requested user {user!r})"
            )

    async def _file_op(
        self, script: str, path: str, *, stdin: bytes | None, limit: int
    ) -> ExecOutcome:
        """One `read_file`/`write_file` shell step as the policy's user, under `timeout`."""
        argv = ["/usr/bin/timeout", "-k", KILL_GRACE, f"{FILE_OP_TIMEOUT}s"]
        argv += ["/bin/sh", "-c", script, "sh", path]
        return await self._run(
            argv,
            stdin=stdin,
            env={"PATH": PINNED_PATH},
            workdir=str(self._workdir),
            user=self.policy.process.user,
            limit=limit,
            deadline=FILE_OP_TIMEOUT + 15,
        )

    async def _run(self, argv: list[str], **kwargs: Any) -> ExecOutcome:
        """`run_exec` in a worker thread; a cancelled call (Ctrl-C, a time limit) returns at
        once and its command is killed."""
        box = self._box
        api, cid = box.client.api, box.container_id
        exec_ids: list[str] = []
        box.running += 1
        try:
            return await run_sync(
                run_exec, api, cid, argv, started=exec_ids.append, abandon_on_cancel=True, **kwargs
            )
        except ContainerGone as e:
            raise SandboxUnavailableError(
                f"the sandbox container {box.name} is not running ({e})"
            ) from None
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                for exec_id in exec_ids:
                    await run_sync(kill_exec, api, exec_id, cid)
            raise
        finally:
            box.running -= 1
            if box.running == 0:  # the last command returned: nothing it started survives it
                with anyio.CancelScope(shield=True), anyio.move_on_after(15):
                    await reap(box)

    async def exec(
        self,
        cmd: list[str],
        input: str | bytes | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        timeout: int | None = None,
        timeout_retry: bool = True,
        concurrency: bool = True,
    ) -> ExecResult[str]:
        """Run a command as the policy's user, killed after `timeout` (capped by the policy's
        `limits.command_timeout`); output per stream is capped by `limits.output_bytes`."""
        self._check_user(user)
        limits = self.policy.limits
        seconds = (
            limits.command_timeout if timeout is None else min(timeout, limits.command_timeout)
        )
        limit = min(limits.output_bytes, SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE)
        argv = ["/usr/bin/timeout", "-k", KILL_GRACE, f"{seconds:g}s", *cmd]
        stdin = input.encode("utf-8") if isinstance(input, str) else input
        out = await self._run(
            argv,
            stdin=stdin,
            workdir=self._cwd(cwd),
            env=env,
            user=self.policy.process.user,
            limit=limit,
            deadline=seconds + 15,
        )
        box = self._box
        if box.tripwire is not None:  # may end the sample (Inspect's TerminateSampleError)
            await after_command(
                box.tripwire, box.client, box.container_id, box.network, out.stdout, out.stderr
            )
        stdout = out.stdout.decode("utf-8", errors="replace")
        stderr = out.stderr.decode("utf-8", errors="replace")
        if out.overflow:
            self._box.counters.output_limit_hits += 1
            from ._units import format_size

            raise OutputLimitExceededError(format_size(limit), truncated_output=stdout + stderr)
        code = out.exit_code
        if out.host_timeout or code == 124 or (code in (137, 143) and out.elapsed >= seconds):
            self._box.counters.timeouts += 1
            err = TimeoutError(f"Command timed out after {seconds:g} seconds")
            if stdout or stderr:
                err.truncated_output = stdout + stderr  # type: ignore[attr-defined]
            raise err
        if (refused := exec_permission_error(code, out.stdout, out.stderr, cmd)) is not None:
            raise refused  # cmd[0] is not executable: Inspect's contract raises
        if code == 126 and "OCI runtime exec failed" in stdout:
            if "unable to find user" in stdout:
                raise SandboxUserUnsupportedError(stdout.strip())
            return ExecResult(False, 126, "", stdout.strip())
        if code is None:
            raise SandboxUnavailableError(f"no exit status for a command in {self._box.name}")
        return ExecResult(code == 0, code, stdout, stderr)

    async def write_file(self, file: str, contents: str | bytes) -> None:
        """Write as the policy's user (parents created); read-only places → PermissionError."""
        path = self._file(file)
        data = contents.encode("utf-8") if isinstance(contents, str) else contents
        script = (
            'f=$1; if [ -d "$f" ]; then echo "$f: Is a directory" >&2; exit 21; fi; '
            'mkdir -p -- "$(dirname -- "$f")" && cat > "$f"'
        )
        out = await self._file_op(script, path, stdin=data, limit=1 << 16)
        if out.exit_code == 0:
            return
        message = out.stderr.decode("utf-8", errors="replace").strip()
        low = message.lower()
        if out.host_timeout or out.exit_code == 124:
            raise TimeoutError(f"writing {file} timed out")
        if out.exit_code == 21 or "is a directory" in low:
            raise IsADirectoryError(errno.EISDIR, "Is a directory", file)
        if "read-only file system" in low or "permission denied" in low:
            raise PermissionError(errno.EACCES, f"Permission denied ({message})", file)
        raise RuntimeError(f"write_file {file} failed (exit {out.exit_code}): {message}")

    @overload
    async def read_file(self, file: str, text: Literal[True] = True) -> str: ...

    @overload
    async def read_file(self, file: str, text: Literal[False]) -> bytes: ...

    async def read_file(self, file: str, text: bool = True) -> Union[str, bytes]:  # noqa: UP007
        """Read as the policy's user; errors map to FileNotFoundError, IsADirectoryError,
        PermissionError and OutputLimitExceededError (over Inspect's read limit)."""
        path = self._file(file)
        script = (
            'f=$1; if [ -d "$f" ]; then exit 21; fi; '
            'if [ ! -e "$f" ]; then exit 2; fi; if [ ! -r "$f" ]; then exit 13; fi; '
            'exec cat -- "$f"'
        )
        limit = SandboxEnvironmentLimits.MAX_READ_FILE_SIZE
        out = await self._file_op(script, path, stdin=None, limit=limit)
        if out.overflow:
            raise OutputLimitExceededError(SandboxEnvironmentLimits.MAX_READ_FILE_SIZE_STR, None)
        if out.host_timeout or out.exit_code == 124:
            raise TimeoutError(f"reading {file} timed out")
        if out.exit_code == 21:
            raise IsADirectoryError(errno.EISDIR, "Is a directory", file)
        if out.exit_code == 2:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", file)
        if out.exit_code == 13:
            raise PermissionError(errno.EACCES, "Permission denied", file)
        if out.exit_code != 0:
            message = out.stderr.decode("utf-8", errors="replace").strip()
            raise RuntimeError(f"read_file {file} failed (exit {out.exit_code}): {message}")
        return out.stdout.decode("utf-8") if text else out.stdout

    async def evidence_now(self) -> ContainerEvidence:
        """The container's evidence as it stands (OOM kills and pids-limit hits from its cgroups,
        command timeouts, files changed outside the writable paths), neither recorded nor
        pausing the container: what the in-log `containment` scorer audits, before teardown
        records the final `ContainerEvidence`."""
        box = self._box
        policy = box.loaded.policy
        return await run_sync(
            collect_evidence,
            box.client,
            box.container_id,
            role="default",
            policy_hash=policy.digest(),
            writable=[w.path for w in policy.filesystem.writable]
            + [m.target for m in policy.filesystem.mounts if m.mode == "rw"],
            timeouts=box.counters.timeouts,
            output_limit_hits=box.counters.output_limit_hits,
        )

    async def connection(self, *, user: str | None = None) -> SandboxConnection:
        self._check_user(user)
        return SandboxConnection(
            type="tierlock",
            command=f"docker exec -it -u {self.policy.process.user} {self._box.name} bash -l",
            container=self._box.name,
        )


def _allowed_users(user: str) -> set[str]:
    """Spellings of the policy's user that `exec(user=...)` accepts."""
    allowed = {user}
    ids = user_ids(user)
    if ids is not None:
        allowed |= {str(ids[0]), f"{ids[0]}:{ids[1]}"}
        allowed |= {name for name, known in _KNOWN_NAMES.items() if known == ids}
    return allowed


_KNOWN_NAMES = {"root": (0, 0), "agent": (1000, 1000)}
