"""The `tierlock` Inspect sandbox provider: one container per sample, exactly as its policy says.

Use `Task(sandbox=("tierlock", "policies/x.yaml"))`, `--sandbox tierlock:policies/x.yaml`, or
`("tierlock", SandboxConfig(policy=..., services={...}))` for task sidecars.

Lifecycle of a sample (all Docker calls run in worker threads; the event loop never blocks):

1. `task_init`: load and lint the policy (lint errors refuse to run), check what the Docker host
   can give it (`_host_check`: CPU count, runtimes...), remove leftovers of dead runs,
   build the image on first use.
2. `sample_init`: install the policy's `tools.approval` in front of the sample's tool approver
   (`_approval`), per-sample network (`internal`/`allowlist`, by `_network`), create the container
   from `_translate.container_settings`, read it back and check it against the policy
   (`_conformance`), start it, check the kernel's view of its PID 1 and of a command run as the
   model's are, read back the effective limits (cgroups, tmpfs sizes: `_effective`), and record a
   `ConformanceRecord` in the transcript. A mismatch raises `SandboxError`: the sample ends before
   the model's first command. Anything created is removed on any failure (Inspect does not call
   `sample_cleanup` when `sample_init` raises).
   PID 1 (the keepalive) runs as `KEEPALIVE_USER`, a uid the model's cannot signal, so the model
   cannot stop its own container (and its cgroup evidence); the kernel check reads both PID 1 and
   a command exec'd as the policy's user.
3. `exec`/`read_file`/`write_file` through `docker exec` (see `_exec`), always explicitly as the
   policy's user (never the container's default user, which is the keepalive's).
4. `sample_cleanup`: record a `ContainerEvidence` (and the network's evidence) in the transcript,
   then remove the container and the network. Events logged here land in the sample's `.eval`
   transcript: Inspect runs sample cleanup inside the sample's transcript context, before the
   sample is written (the tests read them back from the `.eval` file: test_sandbox_containment).
5. `task_cleanup` retries removals that failed; at process exit any sandbox still tracked is
   removed; leftovers of crashed processes are found by label (`tierlock cleanup`, next start).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, Union, overload

import anyio
import structlog
from inspect_ai.util import (
    ExecResult,
    OutputLimitExceededError,
    SandboxEnvironment,
    SandboxEnvironmentConfigType,
    sandboxenv,
)
from inspect_ai.util._sandbox.environment import (
    SandboxConnection,
    SandboxUnavailableError,
    SandboxUserUnsupportedError,
)
from inspect_ai.util._sandbox.limits import SandboxEnvironmentLimits
from pydantic import BaseModel

from . import _labels
from ._approval import apply_approval, approval_of, read_approval
from ._cleanup import cleanup as cleanup_objects
from ._cleanup import remove_unused_egress
from ._collect import collect_evidence
from ._config import SandboxConfig
from ._conformance import (
    EXEC_PROBE,
    check_config,
    check_daemon,
    check_kernel_exec_output,
    check_kernel_host,
    check_status,
    host_proc_visible,
)
from ._docker import create_container, get_client, get_client_async, run_sync
from ._effective import (
    CGROUP_FILES,
    SELF_PROBE,
    STATUS,
    check_effective,
    host_cgroup_files,
    parse_probe,
)
from ._errors import PolicyError, SandboxError, display_path
from ._escape import escape_bytes
from ._evidence import EVIDENCE_SOURCE, ConformanceRecord, ContainerEvidence, ProcessSurvivors
from ._exec import PINNED_PATH, ContainerGone, ExecOutcome, kill_exec, run_exec
from ._host_check import engine_refusal, require_host_fit
from ._images import ensure_image_async
from ._policy import Policy
from ._reaper import INSIDE_COMMAND, ProcKey, kill_from_host, list_from_host, snapshot
from ._signals import install_termination_handler
from ._translate import KEEPALIVE_USER, container_settings, seccomp_profile, user_ids
from ._tripwire import Tripwire, after_command, install_tripwire, tripwire_for
from ._uids import UidLease, lease_uid

if TYPE_CHECKING:
    import docker

    from ._network import SampleNetwork

log = structlog.get_logger("tierlock.sandbox")

KILL_GRACE = "5s"
"""`timeout -k`: how long a timed-out command gets between SIGTERM and SIGKILL."""
FILE_OP_TIMEOUT = 600
"""Seconds for one read_file/write_file."""


# --- policies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedSandboxPolicy:
    """A policy ready to run: where it came from, and where its relative paths resolve."""

    path: Path
    policy: Policy
    policy_dir: Path
    warnings: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()
    """The policy file and the parents it extends, child first."""
    approval: Path | None = None
    """The approval policy file `tools.approval` names (resolved), applied to every sample."""


_policy_cache: dict[str, tuple[tuple[int, ...], LoadedSandboxPolicy]] = {}
_policy_lock = threading.Lock()


def find_policy_file(path: str | Path) -> Path:
    """The policy file a config names.

    Inspect makes a relative sandbox config path relative to the task's directory, so a
    `--sandbox tierlock:policies/x.yaml` given from the project root arrives as
    `<task dir>/policies/x.yaml`. When that does not exist, the path as typed is looked up in the
    working directory: the longest trailing part of it that names a file there. Nothing else is
    searched, so a policy never resolves to a same-named file somewhere unexpected.
    """
    p = Path(path)
    if p.is_file():
        return p.resolve()
    bases = [Path.cwd()]
    if os.environ.get("PWD") and Path(os.environ["PWD"]).resolve() != Path.cwd().resolve():
        bases.append(Path(os.environ["PWD"]))
    parts = p.parts
    for k in range(len(parts) - 1, 0, -1):
        tail = Path(*parts[-k:])
        for base in bases:
            candidate = base / tail
            if candidate.is_file():
                return candidate.resolve()
    raise PolicyError(f"{display_path(p)}: policy file not found")


def load_sandbox_policy(path: str | Path) -> LoadedSandboxPolicy:
    """Load, lint and cache a policy file; lint errors raise `PolicyError` (nothing runs).

    The cache is keyed by the file and checked against the modification times of every file of
    its `extends` chain, so editing a parent policy takes effect at the next sample.
    """
    from ._lint import has_errors, lint_policy
    from ._loader import load_policy_file

    file = find_policy_file(path)
    with _policy_lock:
        cached = _policy_cache.get(str(file))
    if cached is not None and cached[0] == _stamps(cached[1].files):
        return cached[1]
    loaded = load_policy_file(file)
    problems = lint_policy(loaded.policy, source=loaded)
    if has_errors(problems):
        ordered = sorted(problems, key=lambda p: p.severity != "error")
        raise PolicyError(f"{loaded.source}: policy has lint errors", ordered)
    result = LoadedSandboxPolicy(
        path=file,
        policy=loaded.policy,
        policy_dir=loaded.defined_in(("process", "seccomp")).parent.resolve(),
        warnings=tuple(str(p) for p in problems),
        files=tuple(Path(f) for f in loaded.files),
        approval=approval_of(loaded),
    )
    with _policy_lock:
        _policy_cache[str(file)] = (_stamps(result.files), result)
    return result


def _stamps(files: tuple[Path, ...]) -> tuple[int, ...]:
    """Modification times of a policy's files (-1 for one that is gone)."""
    out = []
    for f in files:
        try:
            out.append(f.stat().st_mtime_ns)
        except OSError:
            out.append(-1)
    return tuple(out)


def sandbox_config(config: SandboxEnvironmentConfigType | None) -> SandboxConfig:
    """The provider's config from what Inspect passes: a policy path or a `SandboxConfig`."""
    if isinstance(config, SandboxConfig):
        return config
    if isinstance(config, str):
        return SandboxConfig(policy=config)
    if isinstance(config, BaseModel):
        return SandboxConfig.model_validate(config.model_dump())
    raise SandboxError(
        "the tierlock sandbox needs a policy: sandbox=('tierlock', 'policies/<tier>.yaml')"
    )


# --- objects to remove at exit -----------------------------------------------------------------

_live: set[str] = set()
_retry: set[str] = set()
_live_lock = threading.Lock()


def _track(container_id: str, alive: bool) -> None:
    with _live_lock:
        (_live.add if alive else _live.discard)(container_id)


@atexit.register
def _remove_live_at_exit() -> None:
    """Last resort (e.g. an interrupted run): remove this process's remaining sandboxes."""
    with _live_lock:
        ids = list(_live)
        _live.clear()
    if not ids:
        return
    with contextlib.suppress(Exception):
        client = get_client()
        for cid in ids:
            with contextlib.suppress(Exception):
                client.api.remove_container(cid, force=True, v=True)
        cleanup_objects(client, run=_labels.run_id())


# --- the provider ------------------------------------------------------------------------------


def _record(data: BaseModel) -> None:
    from inspect_ai.log._transcript import transcript

    transcript().info(data.model_dump(mode="json"), source=EVIDENCE_SOURCE)


def _sample_key() -> str:
    from inspect_ai.log._samples import sample_active

    active = sample_active()
    if active is None:
        return "none"
    return f"{active.sample.id}_{active.epoch}"


@dataclass
class _Counters:
    timeouts: int = 0
    output_limit_hits: int = 0
    survivors_killed: int = 0


@dataclass
class _Sandbox:
    """Everything a sample's sandbox owns."""

    client: docker.DockerClient
    container_id: str
    name: str
    loaded: LoadedSandboxPolicy
    policy: Policy
    """The policy as this sandbox runs it: `loaded.policy` with the leased uid/gid as its user."""
    lease: UidLease
    network: SampleNetwork | None = None
    counters: _Counters = field(default_factory=_Counters)
    removed: bool = False
    running: int = 0
    """Commands in flight; when the last returns, the model's leftover processes are killed."""
    init_pid: int = 0
    """Host pid of the container's PID 1 (0 when unknown)."""
    model_acted: bool = False
    """Whether the model has generated yet; processes left by commands before that (the
    sample's setup) are the operator's and are kept (`operator`)."""
    operator: frozenset[ProcKey] = frozenset()
    tripwire: Tripwire | None = None
    """The sample's tripwires (`_tripwire`), checked after each command."""


@sandboxenv(name="tierlock")
class TierlockSandboxEnvironment(SandboxEnvironment):
    """A Docker container configured by a tierlock policy, driven through the docker SDK."""

    @classmethod
    def config_files(cls) -> list[str]:
        return []

    @classmethod
    def default_concurrency(cls) -> int | None:
        return 2 * (os.cpu_count() or 1)

    @classmethod
    def config_deserialize(cls, config: dict[str, Any]) -> BaseModel:
        return SandboxConfig.model_validate(config)

    @classmethod
    async def task_init(cls, task_name: str, config: SandboxEnvironmentConfigType | None) -> None:
        install_termination_handler()  # SIGTERM/SIGHUP end the eval like Ctrl-C
        loaded = await run_sync(load_sandbox_policy, sandbox_config(config).policy)
        client = await get_client_async()
        await run_sync(require_host_fit, loaded.path, client)  # what Docker would refuse
        await run_sync(cleanup_objects, client)  # leftovers of dead runs
        await ensure_image_async(client, loaded.policy.image)

    @classmethod
    async def sample_init(
        cls, task_name: str, config: SandboxEnvironmentConfigType | None, metadata: dict[str, str]
    ) -> dict[str, SandboxEnvironment]:
        cfg = sandbox_config(config)
        loaded = await run_sync(load_sandbox_policy, cfg.policy)
        if loaded.approval is not None:  # the sample's tool calls run in this context
            await run_sync(read_approval, loaded.approval)  # (file reads off the event loop)
            apply_approval(loaded.approval)
        tripwire = tripwire_for(loaded.policy)
        install_tripwire(tripwire)  # in front of every approver: sees each call before it runs
        client = await get_client_async()
        image = await ensure_image_async(client, loaded.policy.image)
        sample = _sample_key()
        labels = _labels.object_labels(
            role="default",
            task=task_name,
            sample=sample,
            policy_hash=loaded.policy.digest(),
            policy_name=loaded.policy.name,
        )
        lease = _lease(loaded.policy)
        policy = _as_user(loaded.policy, lease)
        name = f"tierlock-{_labels.run_id()}-{_labels.sanitize(sample, 40)}-{uuid.uuid4().hex[:6]}"
        box: _Sandbox | None = None
        network: SampleNetwork | None = None
        try:
            if policy.network.mode in ("internal", "allowlist"):
                from ._network import create_sample_network

                network = await create_sample_network(
                    client, policy, dict(cfg.services), labels, policy_dir=loaded.policy_dir
                )
            settings = container_settings(
                policy,
                image=image,
                labels=labels,
                name=name,
                network=network.network if network else None,
                extra_env=network.env if network else None,
                policy_dir=loaded.policy_dir,
                sandbox=True,
            )
            try:
                container = await run_sync(create_container, client, settings)
            except Exception as e:
                raise engine_refusal(e, loaded.path, "create") or e from None
            _track(container.id, True)
            box = _Sandbox(client, container.id, name, loaded, policy, lease, network)
            box.tripwire = tripwire.attach(client, container.id)
            await cls._conform(box, image, container.attrs)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if box is not None:
                    await _remove(box)
                else:
                    lease.release()
                    if network is not None:
                        await network.teardown()
            raise
        return {"default": cls(box)}

    @classmethod
    async def _conform(cls, box: _Sandbox, image: str, attrs: dict[str, Any]) -> None:
        """Check the created container against its policy, start it, check the kernel's view,
        and record the outcome; raise `SandboxError` on any mismatch."""
        policy, client = box.policy, box.client
        image_env = (await _image_config(client, image)).get("Env")
        net = box.network
        mismatches = check_config(
            attrs,
            policy,
            image_env=image_env,
            extra_env=net.env if net else None,
            network=net.network if net else None,
            policy_dir=box.loaded.policy_dir,
            sandbox=True,
        ) + check_daemon(await _daemon_security(client), policy)
        if not mismatches:
            try:
                await run_sync(client.api.start, box.container_id)
            except Exception as e:
                raise engine_refusal(e, box.loaded.path, "start") or e from None
            mismatches = await run_sync(_kernel_check, client, box.container_id, policy)
            state = (await run_sync(client.api.inspect_container, box.container_id))["State"]
            box.init_pid = int(state.get("Pid") or 0)
        unsafe = policy.unsafe
        _record(
            ConformanceRecord(
                container=box.name,
                role="default",
                policy_name=policy.name,
                policy_hash=box.loaded.policy.digest(),
                policy_path=str(box.loaded.path),
                ok=not mismatches,
                mismatches=mismatches,
                unsafe_reason=unsafe.reason if unsafe else None,
                unsafe_rules=list(unsafe.allow) if unsafe else [],
                seccomp_sha256=_profile_sha256(policy, box.loaded.policy_dir),
                user=policy.process.user,
            )
        )
        if mismatches:
            more = f" (and {len(mismatches) - 1} more)" if len(mismatches) > 1 else ""
            raise SandboxError(
                f"{display_path(box.loaded.path)}: sandbox {box.name} does not conform to policy "
                f"{policy.name!r}: {mismatches[0]}{more}"
            )

    @classmethod
    async def sample_cleanup(
        cls,
        task_name: str,
        config: SandboxEnvironmentConfigType | None,
        environments: dict[str, SandboxEnvironment],
        interrupted: bool,
    ) -> None:
        for env in environments.values():
            if isinstance(env, TierlockSandboxEnvironment):
                with anyio.CancelScope(shield=True):
                    await env._finish()

    @classmethod
    async def task_cleanup(
        cls, task_name: str, config: SandboxEnvironmentConfigType | None, cleanup: bool
    ) -> None:
        """Samples remove their own objects (even when interrupted); retry removals that failed,
        and drop the shared egress network once nothing uses it (the proxy recreates it on
        demand). Nothing else is touched: other evals may still be running samples."""
        if not cleanup:
            return
        client = await get_client_async()
        for cid in list(_retry):
            with contextlib.suppress(Exception):
                await run_sync(client.api.remove_container, cid, force=True, v=True)
                _retry.discard(cid)
                _track(cid, False)
        with contextlib.suppress(Exception):
            await run_sync(remove_unused_egress, client)

    @classmethod
    async def cli_cleanup(cls, id: str | None) -> None:
        client = await get_client_async()
        if id is None:
            await run_sync(cleanup_objects, client)
        else:
            await run_sync(client.api.remove_container, id, force=True, v=True)

    # --- instance --------------------------------------------------------------------------

    def __init__(self, box: _Sandbox) -> None:
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
                await _reap(box, final=True)
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
                _record(evidence)
            if box.network is not None:
                with anyio.move_on_after(60):
                    for record in await box.network.evidence():
                        _record(record)
        except Exception as e:  # evidence is best effort; removal is not
            log.warning("evidence collection failed", container=box.name, error=str(e))
            _record(
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
            await _remove(box)

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
                    await _reap(box)

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
        out = await self._run(
            [
                "/usr/bin/timeout",
                "-k",
                KILL_GRACE,
                f"{FILE_OP_TIMEOUT}s",
                "/bin/sh",
                "-c",
                script,
                "sh",
                path,
            ],
            stdin=data,
            env={"PATH": PINNED_PATH},
            workdir=str(self._workdir),
            user=self.policy.process.user,
            limit=1 << 16,
            deadline=FILE_OP_TIMEOUT + 15,
        )
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
        out = await self._run(
            [
                "/usr/bin/timeout",
                "-k",
                KILL_GRACE,
                f"{FILE_OP_TIMEOUT}s",
                "/bin/sh",
                "-c",
                script,
                "sh",
                path,
            ],
            env={"PATH": PINNED_PATH},
            workdir=str(self._workdir),
            user=self.policy.process.user,
            limit=limit,
            deadline=FILE_OP_TIMEOUT + 15,
        )
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


def _lease(policy: Policy) -> UidLease:
    """This sandbox's uid slot, counted from the policy's user (see `_uids`)."""
    ids = user_ids(policy.process.user)
    if ids is None:
        raise SandboxError(f"process.user {policy.process.user!r} is not a known user or uid")
    return lease_uid(*ids)


def _as_user(policy: Policy, lease: UidLease) -> Policy:
    """`policy` running as the leased uid/gid (everything else unchanged)."""
    if lease.user == policy.process.user:
        return policy
    process = policy.process.model_copy(update={"user": lease.user})
    return policy.model_copy(update={"process": process})


async def _reap(box: _Sandbox, final: bool = False) -> None:
    """Kill every process of the model's uid left in the sandbox (see `_reaper`); under
    `background: allow`, list them in the transcript instead (`final`: list, then kill)."""
    ids = user_ids(box.policy.process.user)
    if ids is None or box.removed:
        return
    if box.policy.process.background == "allow":  # may keep running: on the record instead
        listed = await run_sync(list_from_host, box.init_pid, ids[0]) if box.init_pid else None
        if listed is not None and listed[0]:
            _record(ProcessSurvivors(
                container=box.name, processes=[escape_bytes(c)[0] for c in listed[0]],
                more=listed[1],
            ))  # fmt: skip
        if not final:
            return
    if not final and not box.model_acted:
        box.model_acted = _model_has_acted()
        if not box.model_acted:  # setup and preparation: what keeps running is the operator's
            if box.init_pid:
                box.operator = frozenset(await run_sync(snapshot, box.init_pid, ids[0]) or ())
            return
    killed = (
        await run_sync(kill_from_host, box.init_pid, ids[0], box.operator)
        if box.init_pid
        else None
    )
    if killed is None:  # the host cannot see the container's processes: from inside instead
        with contextlib.suppress(Exception):
            await run_sync(
                run_exec, box.client.api, box.container_id, INSIDE_COMMAND,
                user=box.policy.process.user, limit=4096, deadline=15,
            )  # fmt: skip
    elif killed:
        box.counters.survivors_killed += killed


def _profile_sha256(policy: Policy, policy_dir: Path) -> str | None:
    """SHA-256 of the seccomp profile the sandbox was given (what conformance compared)."""
    import hashlib

    with contextlib.suppress(SandboxError):
        profile = seccomp_profile(policy, policy_dir)
        return hashlib.sha256(profile.encode()).hexdigest() if profile is not None else None
    return None


def _model_has_acted() -> bool:
    """Whether the active sample's model has generated (outside an eval: yes, always)."""
    from inspect_ai.log._samples import sample_active

    active = sample_active()
    return active is None or active.total_turns > 0 or active.total_tokens > 0


def _allowed_users(user: str) -> set[str]:
    """Spellings of the policy's user that `exec(user=...)` accepts."""
    allowed = {user}
    ids = user_ids(user)
    if ids is not None:
        allowed |= {str(ids[0]), f"{ids[0]}:{ids[1]}"}
        allowed |= {name for name, known in _KNOWN_NAMES.items() if known == ids}
    return allowed


_KNOWN_NAMES = {"root": (0, 0), "agent": (1000, 1000)}

_image_configs: dict[str, dict[str, Any]] = {}
_daemon_security_options: dict[int, list[str]] = {}


async def _daemon_security(client: docker.DockerClient) -> list[str]:
    """The daemon's `docker info` SecurityOptions (read once per client)."""
    key = id(client)
    if key not in _daemon_security_options:
        info = await run_sync(client.info)
        _daemon_security_options[key] = list(info.get("SecurityOptions") or [])
    return _daemon_security_options[key]


async def _image_config(client: docker.DockerClient, image: str) -> dict[str, Any]:
    if image not in _image_configs:
        info = await run_sync(client.api.inspect_image, image)
        _image_configs[image] = info.get("Config") or {}
    return _image_configs[image]


def _kernel_check(client: docker.DockerClient, container_id: str, policy: Policy) -> list[str]:
    """The kernel's view of the started sandbox: its PID 1 (the keepalive, as `KEEPALIVE_USER`)
    from the host's /proc when it can see it, else from inside; then one command exec'd the way
    the model's are (as the policy's user, through `timeout`), which must run as the policy
    says (uid/gid, capabilities, no_new_privs, seccomp) and reads back the effective limits
    (cgroup memory, pids, CPU; tmpfs sizes from the mount table: `_effective`)."""
    attrs = client.api.inspect_container(container_id)
    state = attrs.get("State") or {}
    if not state.get("Running"):
        return [f"container is not running after start (exit code {state.get('ExitCode')})"]
    pid = int(state.get("Pid") or 0)
    bad: list[str] | None = None
    if host_proc_visible(pid, container_id):
        with contextlib.suppress(OSError):
            bad = check_kernel_host(pid, policy, user=KEEPALIVE_USER)
    if bad is None:
        out = run_exec(
            client.api,
            container_id,
            EXEC_PROBE,
            env={"PATH": PINNED_PATH},
            user=KEEPALIVE_USER,
            limit=1 << 16,
            deadline=30,
        )
        if out.exit_code != 0:
            return [
                "cannot read the container's process status "
                f"({out.stderr.decode(errors='replace')})"
            ]
        bad = check_kernel_exec_output(
            out.stdout.decode(errors="replace"), policy, user=KEEPALIVE_USER
        )
    bad = [f"PID 1: {m}" for m in bad]
    out = run_exec(
        client.api,
        container_id,
        ["/usr/bin/timeout", "-k", KILL_GRACE, "30s", *SELF_PROBE],
        env={"PATH": PINNED_PATH},
        workdir=policy.filesystem.workdir,
        user=policy.process.user,
        limit=1 << 18,
        deadline=45,
    )
    files = parse_probe(out.stdout.decode(errors="replace"))
    if out.exit_code not in (0, 2) or STATUS not in files:  # grep: 2 when a file is absent
        text = (out.stdout + out.stderr).decode(errors="replace").strip()[:300]
        return [
            *bad,
            f"cannot run a command as policy process.user {policy.process.user!r} "
            f"(exit {out.exit_code}: {text})",
        ]
    if not any(f in files for f in CGROUP_FILES) and host_proc_visible(pid, container_id):
        with contextlib.suppress(OSError, ValueError):
            files = {**host_cgroup_files(pid), **files}
    return (
        bad
        + [f"commands: {m}" for m in check_status(files[STATUS], policy, None)]
        + [f"limits: {m}" for m in check_effective(files, policy)]
    )


async def _remove(box: _Sandbox) -> None:
    """Remove the container and the sample network (idempotent, never raises)."""
    if box.removed:
        return
    box.removed = True
    with anyio.CancelScope(shield=True):
        try:
            await run_sync(box.client.api.remove_container, box.container_id, force=True, v=True)
            _track(box.container_id, False)
        except Exception as e:
            import docker.errors

            if isinstance(e, docker.errors.NotFound):
                _track(box.container_id, False)
            else:
                _retry.add(box.container_id)
                log.warning("could not remove sandbox", container=box.name, error=str(e))
        if box.container_id not in _retry:
            box.lease.release()
        if box.network is not None:
            try:
                await box.network.teardown()
            except Exception as e:
                log.warning("could not remove sample network", container=box.name, error=str(e))
