"""The k8s backend: a sandboxed tier's tasks moved into Inspect's `k8s` sandbox with values
translated from their policy.

For each task of a sandboxed tier, each distinct tierlock sandbox spec it carries (the task's,
and any a sample sets) is translated by `sandbox._k8s_values.k8s_values` (the spec's policy and
the task's service sidecars), checked against the installed chart's `values.schema.json`
(`check_against_chart`), written into the run directory (`<phase log dir>/k8s/<task>.values.yaml`,
its per-field report as comments) and registered with the tier guard (`tasks._k8s_guard`);
then the spec becomes `("k8s", K8sSandboxEnvironmentConfig(values=...))`. All of this happens
before the first sample.

Before the tier starts, `preflight` checks what a k8s run needs (the `k8s` extra, helm ≥ 3.13,
a kubeconfig with a current context or in-cluster credentials) and translates every task: a
policy the chart cannot express is one line naming the policy file, line and field. The
executor records that check in the ledger (the `selftest` record, `backend: k8s`) and the tier
does not start when it failed. tierlock's escape battery is not run on a cluster: it probes the
local Docker engine, not the cluster's nodes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tierlock.sandbox import TierlockError, load_policy_file
from tierlock.sandbox._config import SandboxConfig, ServiceSpec
from tierlock.sandbox._errors import display_path
from tierlock.sandbox._k8s_chart import check_against_chart
from tierlock.sandbox._k8s_report import FieldTreatment, K8sRefused
from tierlock.sandbox._k8s_values import k8s_values
from tierlock.sandbox._lint import load_runnable_policy
from tierlock.tasks._k8s_guard import approve_values

from ._backend import K8S_SANDBOX

VALUES_DIR = "k8s"
"""Folder of a phase's log directory holding its tasks' values files."""
MIN_HELM = (3, 13, 0)
"""inspect-k8s-sandbox's minimum helm version."""
_TIERLOCK = "tierlock"
_IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclass(frozen=True)
class Translation:
    """One sandbox spec of a task, translated: where its values go and what they say."""

    task: str
    file: str  # the values file's name
    policy: Path
    services: tuple[str, ...]
    values: dict[str, Any]
    report: tuple[FieldTreatment, ...]

    def text(self) -> str:
        """The values file: a header, the values, the per-field report as comments."""
        lines = [
            f"# agent-env values for task {self.task}, translated by tierlock from policy "
            f"{display_path(self.policy)}",
            yaml.safe_dump(self.values, sort_keys=False, allow_unicode=False, width=100).rstrip(),
            "# How each policy field is enforced on Kubernetes (compared with the Docker backend):",
            *(f"#   {t.line()}" for t in self.report),
        ]
        return "\n".join(lines) + "\n"

    def summary(self) -> dict[str, Any]:
        counts = Counter(t.treatment for t in self.report)
        return {
            "task": self.task,
            "values": self.file,
            "policy": str(self.policy),
            "services": list(self.services),
            "treatments": dict(sorted(counts.items())),
        }


def _key_path(field: str) -> tuple[str | int, ...]:
    """`network.allow[1]` → ("network", "allow", 1)."""
    out: list[str | int] = []
    for part in field.split("."):
        m = re.fullmatch(r"([^\[]+)((?:\[\d+\])*)", part)
        if not m:
            return tuple(out)
        out.append(m.group(1))
        out += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    return tuple(out)


def refusal_line(policy: Path, e: K8sRefused, where: str) -> str:
    """One line: the policy file (and line of the field, when known), the field, why, where."""
    location = display_path(policy)
    try:
        loc = load_policy_file(policy).locate(_key_path(e.field))
        location = str(loc) if loc.line else location
    except Exception:
        pass
    return f"{location}: {e} ({where}; backend k8s)"


def _spec_policy(config: Any) -> tuple[Path, dict[str, ServiceSpec]]:
    if isinstance(config, SandboxConfig):
        return Path(config.policy), dict(config.services)
    if isinstance(config, str | Path):
        return Path(config), {}
    raise TierlockError(f"a tierlock sandbox config of type {type(config).__name__}")


def _specs(task: Any) -> list[tuple[str, Any, list[Any]]]:
    """Each distinct sandbox spec of a task: ("", spec, []) for the task's own, then per-sample
    specs (with the samples carrying them)."""
    out: list[tuple[str, Any, list[Any]]] = []
    if task.sandbox is not None:
        out.append(("", task.sandbox, []))
    by_spec: dict[Any, list[Any]] = {}
    for sample in task.dataset:
        if sample.sandbox is not None:
            by_spec.setdefault(sample.sandbox, []).append(sample)
    out += [(f"-{i}", spec, samples) for i, (spec, samples) in enumerate(by_spec.items(), 1)]
    return out


def translate_task(name: str, task: Any, tier: str) -> list[Translation]:
    """Every tierlock sandbox spec of a loaded task, translated (nothing written). Raises
    `TierlockError` (one line naming the policy file and field) when the chart cannot express
    the policy, or the task's sandbox is not tierlock's."""
    out = []
    for suffix, spec, _ in _specs(task):
        where = f"tier {tier}, task {name}"
        if spec.type != _TIERLOCK:
            raise TierlockError(
                f"{where}: its sandbox is {spec.type!r}, not tierlock's: the k8s backend "
                "translates tierlock policies only (run it with --backend docker)"
            )
        policy_file, services = _spec_policy(spec.config)
        policy, _ = load_runnable_policy(policy_file)
        try:
            values, report = k8s_values(policy, services)
        except K8sRefused as e:
            raise TierlockError(refusal_line(policy_file, e, where)) from None
        try:
            check_against_chart(values)
        except TierlockError as e:
            raise TierlockError(f"{display_path(policy_file)}: {e} ({where})") from None
        file = f"{_safe(name)}{suffix}.values.yaml"
        out.append(
            Translation(name, file, policy_file, tuple(sorted(services)), values, tuple(report))
        )
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "task"


def move_to_k8s(name: str, task: Any, tier: str, values_dir: Path) -> list[Translation]:
    """Translate a loaded task's tierlock sandbox specs, write their values into `values_dir`,
    register them with the tier guard and point the task (and its samples) at the `k8s`
    sandbox. A task without a sandbox is left as it is."""
    from inspect_ai.util import SandboxEnvironmentSpec
    from k8s_sandbox import K8sSandboxEnvironmentConfig

    done = translate_task(name, task, tier)
    values_dir.mkdir(parents=True, exist_ok=True)
    for (suffix, _, samples), t in zip(_specs(task), done, strict=True):
        path = (values_dir / t.file).resolve()
        path.write_text(t.text(), encoding="utf-8")
        approve_values(path, t.policy)
        spec = SandboxEnvironmentSpec(K8S_SANDBOX, K8sSandboxEnvironmentConfig(values=path))
        if not suffix:
            task.sandbox = spec
        for sample in samples:
            sample.sandbox = spec
    return done


def _helm_version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in m.groups()) if m else None


def prerequisites() -> list[str]:
    """What this machine lacks to run samples on a cluster (empty: nothing): the `k8s` extra,
    helm ≥ 3.13 on PATH, a kubeconfig with a current context (or in-cluster credentials)."""
    problems: list[str] = []
    try:
        import k8s_sandbox  # noqa: F401
    except ImportError:
        return ["inspect-k8s-sandbox is not installed: pip install 'tierlock[k8s]'"]
    helm = shutil.which("helm")
    if helm is None:
        problems.append(
            "helm (>= 3.13) is not on PATH: inspect-k8s-sandbox installs each sample's pods with it"
        )
    else:
        try:
            out = subprocess.run(
                [helm, "version", "--short"], capture_output=True, text=True, timeout=20
            )
            found = _helm_version(out.stdout)
        except (OSError, subprocess.SubprocessError) as e:
            found, out = None, None
            problems.append(f"helm version failed: {e}")
        if out is not None and (found is None or found < MIN_HELM):
            shown = out.stdout.strip()[:40] or out.stderr.strip()[:80] or "no output"
            problems.append(f"helm {shown} found; inspect-k8s-sandbox needs >= 3.13")
    problems += _kubeconfig_problems()
    return problems


def _kubeconfig_problems() -> list[str]:
    if os.environ.get("KUBERNETES_SERVICE_HOST") and _IN_CLUSTER_TOKEN.is_file():
        return []  # in-cluster credentials, as inspect-k8s-sandbox tries first
    from kubernetes import config as kube_config

    try:
        _, current = kube_config.list_kube_config_contexts(os.environ.get("KUBECONFIG") or None)
    except Exception as e:  # ConfigException, a broken file, a missing one
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        where = os.environ.get("KUBECONFIG") or "~/.kube/config"
        return [f"no usable kubeconfig ({where}): {first}"]
    if not current:
        return ["the kubeconfig has no current context (kubectl config use-context NAME)"]
    return []


def preflight(policy: Path, tasks: list[tuple[str, Any]], tier: str) -> dict[str, Any]:
    """The pre-tier check of a sandboxed tier on k8s, as the ledger records it (the executor's
    `selftest` payload): `ok`, `refused` (one line) when the tier cannot start, and per task the
    values it will run with (not yet written)."""
    payload: dict[str, Any] = {
        "ok": False,
        "backend": K8S_SANDBOX,
        "probes": 0,
        "failed": [],
        "battery": "not run: the escape battery probes the local Docker engine, not the "
        "cluster's nodes",
        "policy": str(policy),
    }
    missing = prerequisites()
    if missing:
        payload["prerequisites"] = missing
        payload["refused"] = (
            f"{display_path(policy)}: tier {tier} cannot start on the k8s backend: "
            + "; ".join(missing)
        )
        return payload
    try:
        done = [t for name, task in tasks for t in translate_task(name, task, tier)]
        if not tasks:  # no task known (an executor not checked first): the policy alone
            values, _ = k8s_values(load_runnable_policy(policy)[0], {})
            check_against_chart(values)
    except K8sRefused as e:
        payload["refused"] = refusal_line(policy, e, f"tier {tier}")
        return payload
    except TierlockError as e:
        payload["refused"] = str(e)
        return payload
    payload["ok"] = True
    payload["tasks"] = [t.summary() for t in done]
    return payload
