"""The policy a sandbox runs: the file a config names, loaded, linted and cached by content.

Also turns what Inspect passes as a sandbox config (a policy path or a `SandboxConfig`) into the
provider's `SandboxConfig`.
"""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from inspect_ai.util import SandboxEnvironmentConfigType
from pydantic import BaseModel

from ._approval import approval_of
from ._config import SandboxConfig
from ._errors import PolicyError, SandboxError, display_path
from ._loader import LoadedPolicy
from ._policy import Policy


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


@dataclass(frozen=True)
class _Entry:
    """A cached result and what it was derived from."""

    policy: Policy
    """The loader's `Policy` object: the same object while no file of the chain changed."""
    named: tuple[tuple[Path, bytes | None], ...]
    """The seccomp profile and approval file the policy names, and their bytes (None: unreadable)."""
    result: LoadedSandboxPolicy


_policy_cache: dict[tuple[str, str], _Entry] = {}
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

    The cache is keyed by the file (and the working directory) and is served only while the
    content of every file the result depends on is unchanged: the policy and the parents it
    extends (the loader's own cache, `_loader_cache`) and the seccomp profile and approval file
    it names (their bytes, read before the lint so a change during it is caught next time).
    Editing any of them takes effect at the next sample.
    """
    from ._lint import has_errors, lint_policy
    from ._loader import load_policy_file

    file = find_policy_file(path)
    key = (_cwd(), str(file))
    loaded = load_policy_file(file)
    with _policy_lock:
        cached = _policy_cache.get(key)
    if (
        cached is not None
        and cached.policy is loaded.policy
        and all(_read(f) == content for f, content in cached.named)
    ):
        return cached.result
    named = tuple((f, _read(f)) for f in _named_files(loaded))
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
    if key[0]:
        with _policy_lock:
            _policy_cache[key] = _Entry(loaded.policy, named, result)
    return result


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # removed: nothing relative is stable, so nothing is cached
        return ""


def _named_files(loaded: LoadedPolicy) -> list[Path]:
    """The files besides the chain that lint and the provider read: seccomp, approval."""
    out = []
    seccomp = loaded.policy.process.seccomp.strip()
    if seccomp.lower() not in ("default", "unconfined"):
        out.append(loaded.resolve_path(("process", "seccomp"), seccomp))
    approval = loaded.policy.tools.approval
    if approval is not None and approval.strip():
        out.append(loaded.resolve_path(("tools", "approval"), approval.strip()))
    return out


def _read(path: Path) -> bytes | None:
    """A named file's bytes (bounded like its readers; None when it cannot be read)."""
    from ._policy_files import MAX_FILE_BYTES

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


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
