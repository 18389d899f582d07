"""The policy model: every permission a tier's containers get, and nothing else.

Field names here are the policy file format (YAML). Unknown keys are errors everywhere.
Defaults are the strict ones: no network, read-only root, non-root user, all capabilities
dropped, no-new-privileges, Docker's default seccomp profile, memory and pids limits.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from ._allow import is_label, parse_allow_entry
from ._bounds import bounded
from ._units import ByteSize, Duration, parse_count, parse_number

Tier = Literal["text-only", "tool-restricted", "networked"]
TIERS: tuple[Tier, ...] = ("text-only", "tool-restricted", "networked")
"""The tiers, least permissive first."""

NetworkMode = Literal["none", "internal", "allowlist", "open"]
NETWORK_MODES: tuple[NetworkMode, ...] = ("none", "internal", "allowlist", "open")
"""Network modes, least permissive first."""

BASE_IMAGE = "tierlock-base"
"""The project's base image; resolved to a tag derived from its recipe (see sandbox images)."""

ToolName = Literal["bash", "python"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_allow_entry(entry: str) -> str:
    """An `allow` entry, lower-cased: `example.org`, `*.example.org` or an IP address, optionally
    with `:port` (`[::1]:8080` for IPv6). Parsed by `_allow.parse_allow_entry`, which the egress
    proxy uses too."""
    parse_allow_entry(entry)
    return entry.strip().lower()


AllowEntry = Annotated[str, AfterValidator(check_allow_entry)]
"""A domain the egress proxy lets through, validated and lower-cased."""


def _check_label(value: str) -> str:
    text = value.strip().lower()
    if not is_label(text):
        raise ValueError(f"{value!r} is not one DNS label; write e.g. api or www")
    return text


SubdomainLabel = Annotated[str, AfterValidator(_check_label)]
"""One DNS label under a wildcard allow entry."""


class NetworkPolicy(_Strict):
    """What the sandbox can reach."""

    mode: NetworkMode = Field(
        default="none",
        description="none: loopback only; internal: a per-sample network with the task's "
        "services; allowlist: internal plus an audited egress proxy to `allow`; open: bridge "
        "networking (networked tier only, always warned about)",
    )
    allow: list[AllowEntry] = Field(
        default_factory=list,
        description="Domains the egress proxy lets through: `example.org`, `*.example.org`, "
        "optionally with `:port` (default ports 80 and 443)",
    )
    allow_subdomains: list[SubdomainLabel] | None = Field(
        default=None,
        description="The only labels a wildcard entry stands for: `*.example.org` with `[api, "
        "www]` allows api.example.org and www.example.org and no other name (unset: every name "
        "below the domain, which lets the model send data out in the names it looks up)",
    )
    services: list[str] = Field(
        default_factory=list,
        description="Names of task-defined service sidecars the sandbox may reach",
    )


class WritablePath(_Strict):
    """A writable tmpfs mounted over a read-only root, with a size cap."""

    path: str = Field(description="Absolute path inside the container")
    size: Annotated[ByteSize, AfterValidator(bounded("filesystem.writable.size"))] = Field(
        description="Size cap with a binary unit, e.g. 64m or 64MiB (4k to 1t)"
    )


class Mount(_Strict):
    """A host path bound into the container."""

    source: str = Field(description="Host path")
    target: str = Field(description="Absolute path inside the container")
    mode: Literal["ro", "rw"] = Field(default="ro", description="ro (default) or rw")


class FilesystemPolicy(_Strict):
    """Root filesystem, writable paths and mounts."""

    read_only_root: bool = Field(
        default=True, description="Mount the image read-only; only `writable` paths take writes"
    )
    writable: list[WritablePath] = Field(
        default_factory=lambda: [
            WritablePath(path="/workspace", size=64 * 1024**2),
            WritablePath(path="/tmp", size=64 * 1024**2),
        ],
        description="tmpfs mounts with size caps; the only writable places when the root is "
        "read-only",
    )
    mounts: list[Mount] = Field(default_factory=list, description="Host bind mounts")
    workdir: str = Field(
        default="/workspace", description="Working directory of every command (absolute)"
    )


class Capabilities(_Strict):
    """Linux capabilities: what to drop and what to add back."""

    drop: list[str] = Field(
        default_factory=lambda: ["ALL"], description="Capabilities removed (`ALL`: every one)"
    )
    add: list[str] = Field(
        default_factory=list,
        description="Capabilities added back, e.g. NET_BIND_SERVICE (dangerous ones are lint "
        "errors)",
    )


HostNamespace = Literal["private", "host"]


class Namespaces(_Strict):
    """Whether the container shares a namespace with the host (`host`) or not (`private`)."""

    network: HostNamespace = Field(
        default="private", description="`host` shares the host's network stack (lint error)"
    )
    pid: HostNamespace = Field(
        default="private", description="`host` lets the sandbox see host processes (lint error)"
    )
    ipc: HostNamespace = Field(
        default="private", description="`host` shares host shared memory (lint error)"
    )
    uts: HostNamespace = Field(
        default="private", description="`host` shares the host name (lint error)"
    )
    userns: HostNamespace = Field(
        default="private", description="`host` opts out of Docker's user-namespace remapping (lint error)"
    )


class ProcessPolicy(_Strict):
    """Who the processes run as and what the kernel lets them do."""

    user: str = Field(
        default="1000:1000", description="uid:gid or user name; never root by default"
    )
    capabilities: Capabilities = Field(
        default_factory=Capabilities, description="Linux capabilities (see below)"
    )
    no_new_privileges: bool = Field(
        default=True, description="setuid binaries cannot raise privileges (`false`: lint error)"
    )
    privileged: bool = Field(
        default=False, description="Docker's privileged mode: every device and capability "
        "(lint error)",
    )
    seccomp: str = Field(
        default="default",
        description="`default` (tierlock's own profile, `sandbox/seccomp/tierlock-default.json`), "
        "`unconfined`, or the path of a profile file",
    )
    apparmor: str | None = Field(
        default=None, description="AppArmor profile; null keeps Docker's default"
    )
    runtime: Literal["runc", "runsc"] = Field(
        default="runc", description="OCI runtime: `runc`, or gVisor's `runsc` where installed"
    )
    namespaces: Namespaces = Field(
        default_factory=Namespaces, description="Host namespaces shared (see below)"
    )
    devices: list[str] = Field(
        default_factory=list, description="Host devices passed in (`/dev/x[:/dev/y[:rwm]]`)"
    )
    init: bool = Field(default=True, description="Run an init process as PID 1 (reaps zombies)")
    background: Literal["forbid", "allow"] = Field(
        default="forbid",
        description="`forbid`: every process a command starts is killed when the sandbox's last "
        "running command returns; `allow`: they may keep running, and each command's survivors "
        "are listed in the transcript",
    )

    @field_validator("user", mode="before")
    @classmethod
    def _numeric_user(cls, v: object) -> object:
        """`user: 1000` (a YAML number) means uid 1000."""
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


_GO_INT = re.compile(r"[+-]?[0-9]+")


def numeric_id(text: str) -> int | None:
    """A uid/gid of `process.user` as Docker reads it (Go's `strconv.Atoi`: optional sign, ASCII
    digits, so `+0` and `-0` are 0); None for a name."""
    return int(text) if _GO_INT.fullmatch(text) else None


Cpus = Annotated[float, BeforeValidator(parse_number), AfterValidator(bounded("limits.cpus"))]
Pids = Annotated[int, BeforeValidator(parse_count), AfterValidator(bounded("limits.pids"))]


class Limits(_Strict):
    """Resource limits. Each must be a real limit: zero, negative, "unlimited" and values out of
    range (`sandbox._bounds.BOUNDS`) are errors; a null memory, CPU or pids limit is a lint
    error (`unsafe` can downgrade it, with a reason)."""

    memory: Annotated[ByteSize, AfterValidator(bounded("limits.memory"))] | None = Field(
        default=512 * 1024**2, description="Memory limit (swap included), e.g. 512m; at least 6m"
    )
    cpus: Cpus | None = Field(default=1.0, description="CPUs, e.g. 0.5; at least 0.01")
    pids: Pids | None = Field(default=256, description="Most processes at once; at least 1")
    command_timeout: Annotated[Duration, AfterValidator(bounded("limits.command_timeout"))] = Field(
        default=60.0, description="Per-command timeout, e.g. 60s; 1s to 7d"
    )
    output_bytes: Annotated[ByteSize, AfterValidator(bounded("limits.output_bytes"))] = Field(
        default=1024**2, description="Per-command output cap, e.g. 1m; 1k to 1g"
    )
    sample_time: Annotated[Duration, AfterValidator(bounded("limits.sample_time"))] = Field(
        default=600.0, description="Wall time per sample, e.g. 10m; 1s to 7d"
    )


class ToolsPolicy(_Strict):
    """Which Inspect tools the tier exposes, and an optional approval policy."""

    allow: list[ToolName] = Field(default_factory=list, description="Tools the model gets: bash, python (none in text-only)")
    approval: str | None = Field(
        default=None, description="Path of an Inspect approval policy file (per-call rules)"
    )


class Unsafe(_Strict):
    """An explicit, reasoned downgrade of named lint errors to warnings."""

    allow: list[str] = Field(description="Lint rule ids to downgrade to warnings")
    reason: str = Field(min_length=20, description="Why; recorded with every run that uses it")


class Policy(_Strict):
    """A tier's sandbox policy: the single source of every permission its containers get."""

    name: str = Field(min_length=1, description="The policy's name (in logs and the ledger)")
    description: str = Field(default="", description="Free text for people")
    tier: Tier = Field(
        description="The tier this policy is for: text-only, tool-restricted or networked; lint "
        "checks the policy against what its tier may grant"
    )
    extends: str | None = Field(
        default=None, description="Path of a parent policy (relative to this file); fields override"
    )
    image: str = Field(
        default=BASE_IMAGE,
        description="`tierlock-base` (built offline from Debian packages by `tierlock images "
        "build`), or an image already loaded into Docker (name:tag or sha256 id; never pulled)",
    )
    network: NetworkPolicy = Field(
        default_factory=NetworkPolicy, description="What the sandbox can reach (see below)"
    )
    filesystem: FilesystemPolicy = Field(
        default_factory=FilesystemPolicy, description="Root, writable paths, mounts (see below)"
    )
    process: ProcessPolicy = Field(
        default_factory=ProcessPolicy, description="User, capabilities, seccomp… (see below)"
    )
    limits: Limits = Field(default_factory=Limits, description="Resource limits (see below)")
    tools: ToolsPolicy = Field(
        default_factory=ToolsPolicy, description="Tools and approval (see below)"
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="The exact environment of the sandbox; the host environment is never passed",
    )
    unsafe: Unsafe | None = Field(
        default=None,
        description="Downgrade named lint errors to warnings, with a reason (see below)",
    )

    @field_validator("env", mode="before")
    @classmethod
    def _env_values_are_strings(cls, v: object) -> object:
        if isinstance(v, dict):
            bad = [k for k, val in v.items() if not isinstance(val, str | int | float)]
            if bad:
                raise ValueError(f"env values must be strings (see {bad[0]})")
            return {str(k): str(val) for k, val in v.items()}
        return v

    def digest(self) -> str:
        """SHA-256 of the effective policy (after `extends`); recorded with every container."""
        data = self.model_dump(mode="json", exclude={"extends"})
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()
