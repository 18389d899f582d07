"""Policy → values of inspect-k8s-sandbox's `agent-env` Helm chart, in one place.

`k8s_values(policy, services)` is the only code that turns a tierlock `Policy` (and the task's
service sidecars) into the chart's values: the image, a non-root `securityContext`, resources
with limits equal to requests, the runtime class (gVisor unless told otherwise, as the chart
does), no service-account token, writable paths as size-capped memory `emptyDir`s, and the
network: `none` isolates the pod (no `allow*` at all), `internal` puts the sandbox and its
services on one chart network, `allowlist` adds `allowDomains`/`allowDomainsPorts` with the
egress proxy's own parser and refusals (`_allow`, `_lint_network`). Beside the values comes the
per-field report (`_k8s_report`); what the chart cannot express safely is refused, naming the
field.
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any

from ._allow import DEFAULT_PORTS, effective_allow, is_ip, parse_allow_entry
from ._images import resolve_image
from ._k8s_report import FieldTreatment, outside_values, quantity, refuse
from ._lint_network import allow_entry_problem
from ._policy import BASE_IMAGE, Policy
from ._sidecar_policy import service_policy
from ._sidecars import _FILES_SCRIPT, MAX_FILE_BYTES
from ._translate import KEEPALIVE_COMMAND, normalize_capability, user_ids

if TYPE_CHECKING:
    from ._config import ServiceSpec

GVISOR_CLASS = "gvisor"
"""The chart's default RuntimeClass name (gVisor's runsc)."""
CLUSTER_DEFAULT = "CLUSTER_DEFAULT"
"""The chart's magic runtime class: leave `runtimeClassName` unset (the node's default)."""
SAMPLE_NETWORK = "sample"
"""The chart network the sandbox and its services share in `internal` and `allowlist` modes."""
_K8S_NAME = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_NUMERIC_USER = re.compile(r"\+?[0-9]{1,10}(:\+?[0-9]{1,10})?")
_RUNTIME_CLASS = re.compile(r"^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?$")


def k8s_values(
    policy: Policy,
    services: dict[str, ServiceSpec] | None = None,
    *,
    runtime_class: str | None = None,
) -> tuple[dict[str, Any], list[FieldTreatment]]:
    """The chart's values for `policy` (and the task's `services`), and how each policy field is
    enforced there. Raises `K8sRefused` (one line naming the field) for what cannot be."""
    if policy.tier == "text-only":
        raise refuse("tier", "text-only starts no container; there is nothing to run on a cluster")
    report: list[FieldTreatment] = []
    services = dict(services or {})
    default = _container(policy, resolve_image(policy.image), report, sandbox=True)
    default["runtimeClassName"] = _runtime_class(policy, runtime_class, report)
    if policy.env:
        default["env"] = [{"name": k, "value": v} for k, v in policy.env.items()]
    report.append(
        FieldTreatment(
            "env",
            "weaker",
            "the exact environment, plus the chart's AGENT_ENV (the release's name) and the "
            "kubelet's KUBERNETES_SERVICE_HOST/PORT (the API server; no token is mounted)",
        )
    )
    values: dict[str, Any] = {
        "global": {"nameOverride": "", "fullnameOverride": ""},
        "services": {"default": default},
        "automountServiceAccountToken": False,
        "annotations": {
            "tierlock/policy": policy.name,
            "tierlock/policy-digest": f"sha256:{policy.digest()}",
        },
    }
    _network(policy, values, services, report)
    for name, spec in sorted(services.items()):
        values["services"][name] = _service(policy, name, spec, default["runtimeClassName"])
    report += outside_values(policy)
    return values, sorted(report, key=lambda t: t.field)


def _container(
    policy: Policy, image: str, report: list[FieldTreatment], *, sandbox: bool
) -> dict[str, Any]:
    """A chart service running `image` under `policy`'s user, kernel hardening, limits and
    writable paths (the report is filled for the sandbox only)."""
    note = report.append if sandbox else (lambda _: None)
    fs, limits = policy.filesystem, policy.limits
    out: dict[str, Any] = {
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(KEEPALIVE_COMMAND),
        "workingDir": fs.workdir,
        "dnsRecord": False,
        "securityContext": _security_context(policy, note),
    }
    note(
        FieldTreatment(
            "image",
            "emulated",
            f"{image} is pulled by the nodes: push it to a registry they reach and pin it by "
            "digest (the Docker backend never pulls)",
        )
    )
    if limits.memory is None:
        raise refuse("limits.memory", "a pod without a memory limit can take its node's memory")
    if limits.cpus is None:
        raise refuse("limits.cpus", "a pod without a CPU limit can take its node's CPUs")
    amounts = {"memory": quantity(limits.memory), "cpu": f"{max(1, round(limits.cpus * 1000))}m"}
    out["resources"] = {"requests": dict(amounts), "limits": dict(amounts)}
    note(FieldTreatment("limits.memory", "same", f"{amounts['memory']}, limit = request; no swap"))
    note(FieldTreatment("limits.cpus", "same", f"{amounts['cpu']}, limit = request (CFS quota)"))
    if policy.filesystem.mounts:
        raise refuse("filesystem.mounts", "host paths are never mounted into a cluster's pods")
    volumes, mounts = [], []
    for i, w in enumerate(fs.writable):
        name = f"writable-{i}"
        volumes.append({"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": quantity(w.size)}})
        mounts.append({"name": name, "mountPath": w.path})
    if volumes:
        out["volumes"], out["volumeMounts"] = volumes, mounts
    note(
        FieldTreatment(
            "filesystem.writable",
            "weaker",
            "memory emptyDirs with sizeLimit: a tmpfs of that size where the kubelet sizes "
            "memory volumes (SizeMemoryBackedVolumes), else eviction after the cap is passed; "
            "world-writable (0777), not owned by the user; nodev/nosuid are not set",
        )
    )
    note(FieldTreatment("filesystem.read_only_root", "same", "readOnlyRootFilesystem"))
    note(FieldTreatment("filesystem.mounts", "same", "none"))
    note(FieldTreatment("filesystem.workdir", "same", f"workingDir {fs.workdir}"))
    return out


def _security_context(policy: Policy, note: Any) -> dict[str, Any]:
    proc = policy.process
    if proc.privileged:
        raise refuse("process.privileged", "a privileged pod owns its node")
    for ns in ("network", "pid", "ipc", "uts", "userns"):
        if getattr(proc.namespaces, ns) == "host":
            raise refuse(f"process.namespaces.{ns}", "the chart never shares a node's namespace")
    if proc.devices:
        raise refuse("process.devices", "the chart passes no host device into a pod")
    ids = user_ids(proc.user) if _NUMERIC_USER.fullmatch(proc.user) else None
    if ids is None:
        raise refuse("process.user", f"{proc.user[:40]!r} is not uid[:gid]; Kubernetes takes "
                     "numbers")
    uid, gid = ids
    if uid == 0:
        raise refuse("process.user", "root; the pod keeps runAsNonRoot: true")
    drop = sorted({normalize_capability(c) for c in proc.capabilities.drop})
    add = sorted({normalize_capability(c) for c in proc.capabilities.add})
    ctx: dict[str, Any] = {
        "runAsUser": uid,
        "runAsGroup": gid,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": not proc.no_new_privileges,
        "privileged": False,
        "readOnlyRootFilesystem": policy.filesystem.read_only_root,
        "capabilities": {"drop": drop, **({"add": add} if add else {})},
        "seccompProfile": _seccomp(proc.seccomp, note),
    }
    note(
        FieldTreatment(
            "process.user",
            "weaker",
            f"runAsUser {uid}, runAsGroup {gid}{'' if ':' in proc.user else ' (no group named: the uid)'}"
            ", runAsNonRoot; the keepalive (PID 1) runs as "
            "this user too, so the model can end its own container (restarted empty)",
        )
    )
    note(FieldTreatment("process.capabilities", "same", f"drop {drop}, add {add}"))
    note(FieldTreatment("process.no_new_privileges", "same", "allowPrivilegeEscalation: "
                        f"{str(not proc.no_new_privileges).lower()}"))
    note(FieldTreatment("process.privileged", "same", "privileged: false"))
    for ns in ("network", "pid", "uts"):
        note(FieldTreatment(f"process.namespaces.{ns}", "same", "the pod's own"))
    note(
        FieldTreatment(
            "process.namespaces.ipc",
            "weaker",
            "the pod's own, but with the runtime's writable /dev/shm and SysV IPC, which the "
            "Docker backend removes (ipc none, IPC limits zeroed)",
        )
    )
    note(FieldTreatment("process.devices", "same", "none"))
    return ctx


def _seccomp(value: str, note: Any) -> dict[str, str]:
    field = "process.seccomp"
    if value == "default":
        note(FieldTreatment(field, "weaker", "RuntimeDefault: the container runtime's profile, "
                            "not tierlock's own (runsc applies it only with --oci-seccomp)"))
        return {"type": "RuntimeDefault"}
    if value == "unconfined":
        note(FieldTreatment(field, "same", "Unconfined, as the policy says"))
        return {"type": "Unconfined"}
    name = value.replace("\\", "/").rsplit("/", 1)[-1]
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", name) or name.startswith("."):
        raise refuse(field, f"profile file name {name[:40]!r} cannot be a node's profile name")
    profile = f"tierlock/{name}"
    note(FieldTreatment(field, "emulated", f"Localhost {profile}: install the file under the "
                        "kubelet's seccomp directory on every node"))
    return {"type": "Localhost", "localhostProfile": profile}


def _runtime_class(
    policy: Policy, runtime_class: str | None, report: list[FieldTreatment]
) -> str:
    field, wanted = "process.runtime", policy.process.runtime
    if runtime_class is not None and runtime_class != CLUSTER_DEFAULT and not (
        _RUNTIME_CLASS.fullmatch(runtime_class)
    ):
        raise refuse(field, f"runtime class {runtime_class[:40]!r} is not a Kubernetes name")
    chosen = runtime_class or GVISOR_CLASS
    if wanted == "runsc" and chosen != GVISOR_CLASS:
        raise refuse(field, f"the policy asks for gVisor (runsc), not runtime class {chosen!r}")
    report.append(
        FieldTreatment(
            "masked paths (not a policy field)",
            "emulated" if chosen == GVISOR_CLASS else "weaker",
            "gVisor's /proc and /sys are its own, not the host's"
            if chosen == GVISOR_CLASS
            else "the runtime's default masked paths, without tierlock's (/proc/cmdline, "
            "/proc/config.gz, powercap)",
        )
    )
    if wanted == "runsc":
        report.append(FieldTreatment(field, "same", "runtimeClassName gvisor"))
    elif chosen == GVISOR_CLASS:
        report.append(FieldTreatment(field, "stronger", "runtimeClassName gvisor (the chart's "
                                     "default), not runc"))
    else:
        report.append(FieldTreatment(field, "same", f"runtime class {chosen} (asked for runc)"))
    return chosen


def _network(
    policy: Policy,
    values: dict[str, Any],
    services: dict[str, ServiceSpec],
    report: list[FieldTreatment],
) -> None:
    net, default = policy.network, values["services"]["default"]
    mode = net.mode
    if mode == "open":
        raise refuse("network.mode", "open has no audited form on a cluster; use allowlist")
    if services and mode == "none":
        raise refuse("network.services", f"the task runs {', '.join(sorted(services))} but mode "
                     "is none")
    for name, spec in services.items():
        if name not in net.services:
            raise refuse("network.services", f"the task's service {name!r} is not listed")
        if name == "default" or not _K8S_NAME.fullmatch(name):
            raise refuse("network.services", f"{name[:40]!r} is not a Kubernetes service name")
        for path, content in spec.files.items():
            if not path.startswith("/") or len(content.encode()) > MAX_FILE_BYTES:
                raise refuse("network.services", f"service {name!r}: file {path[:60]!r}")
    subdomains = net.allow_subdomains
    report.append(FieldTreatment("network.allow_subdomains", "same", "unset" if subdomains is None
                                 else f"wildcards stand for {len(subdomains)} name(s) each"))
    if mode != "allowlist":
        report.append(FieldTreatment("network.allow", "same", f"no allow* values (mode {mode})"))
    if mode == "none":
        default["networkIsolated"] = True
        report.append(FieldTreatment("network.mode", "same", "none: the pod is network-isolated "
                                     "(no ingress, every egress denied; loopback works)"))
        report.append(FieldTreatment("network.services", "same", "none (mode none)"))
        return
    values["networks"] = {SAMPLE_NETWORK: {}}
    default["networks"] = [SAMPLE_NETWORK]
    report.append(FieldTreatment("network.mode", "emulated", f"{mode}: Cilium policies; the "
                                 f"sandbox and its services share network {SAMPLE_NETWORK!r}"))
    report.append(
        FieldTreatment(
            "network.services",
            "weaker" if mode == "allowlist" and services else "same",
            "reachable by name; services get the sandbox's egress allow-list too (the chart's "
            "egress policy covers every pod of the release)"
            if mode == "allowlist" and services
            else "reachable by name on the sample network",
        )
    )
    if mode == "allowlist":
        _allowlist(policy, values, report)


def _allowlist(policy: Policy, values: dict[str, Any], report: list[FieldTreatment]) -> None:
    domains: list[str] = []
    ports: list[dict[str, Any]] = []
    for i, entry in effective_allow(policy.network.allow, policy.network.allow_subdomains):
        field = f"network.allow[{i}]"
        try:
            rule = parse_allow_entry(entry)
        except ValueError as e:
            raise refuse(field, str(e)) from None
        name = rule.domain.lstrip(".")
        if is_ip(name) or name == "*" or not name:
            raise refuse(field, f"{entry[:60]!r}: the chart allows names, never addresses")
        why = allow_entry_problem(entry)
        if why is not None:
            raise refuse(field, why)
        names = [name, f"*.{name}"] if rule.wildcard else [name]
        for n in names:
            if n not in domains:
                domains.append(n)
        extra = [p for p in rule.ports if p not in DEFAULT_PORTS]
        for p in extra:
            spec = {"port": p, "protocol": "TCP", "domain": name}
            if spec not in ports:
                ports.append(spec)
        notes = []
        if set(rule.ports) != set(DEFAULT_PORTS):
            notes.append("ports 80 and 443 open to it whatever the entry's port")
        if extra:
            notes.append(f"port {', '.join(map(str, extra))} is IP-pinned, without the "
                         "SNI/Host check")
        if rule.wildcard:
            notes.append("names more than one label below it are refused (Cilium's *)")
        report.append(FieldTreatment(field, "weaker" if notes else "emulated",
                                     f"{entry}: allowDomains " + (", ".join(notes) or
                                     "(SNI on 443, Host on 80, as the proxy checks)")))
    if not domains:
        raise refuse("network.allow", "mode allowlist with nothing to allow; use internal")
    values["allowDomains"] = domains
    if ports:
        values["allowDomainsPorts"] = ports
    report.append(FieldTreatment("network.egress_log", "weaker", "no request log: the proxy's "
                                 "record of every request (which the audit reads) is absent; "
                                 "Hubble flow logs, if the cluster keeps them, are its nearest"))


def _service(policy: Policy, name: str, spec: ServiceSpec, runtime: str) -> dict[str, Any]:
    """A task's sidecar as a chart service: the sandbox's hardening (`service_policy`), its
    files written by the same shell prelude as on Docker, a DNS record, a readiness probe."""
    want = service_policy(policy, spec)
    image = resolve_image(spec.image or BASE_IMAGE)
    out = _container(want, image, [], sandbox=False)
    if not spec.harden:  # as on Docker: only the limits, and a /tmp
        del out["securityContext"]
        out["volumes"] = [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}]
        out["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    env = dict(spec.env)
    for i, (path, content) in enumerate(spec.files.items()):
        env[f"TIERLOCK_FILE_PATH_{i}"] = path
        env[f"TIERLOCK_FILE_DATA_{i}"] = base64.b64encode(content.encode()).decode()
    env["TIERLOCK_NFILES"] = str(len(spec.files))
    out.update(
        command=["sh", "-c", _FILES_SCRIPT, "tierlock-service", *spec.command],
        runtimeClassName=runtime,
        dnsRecord=True,
        env=[{"name": k, "value": v} for k, v in env.items()],
        networks=[SAMPLE_NETWORK],
    )
    if spec.port is not None:
        out["readinessProbe"] = {"tcpSocket": {"port": spec.port}, "periodSeconds": 1}
    return out

