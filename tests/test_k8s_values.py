"""Policy → inspect-k8s-sandbox chart values (`tierlock policy k8s`), without a cluster.

Every shipped policy with containers and a hypothesis-generated set of policies translate to
values that validate against the `values.schema.json` of the installed (pinned) package and
keep the chart template's own rules; every policy field has a line in the report; what the chart
cannot express is refused with one line naming the field; golden files for the tool-restricted
and networked tiers were reviewed by hand (`TIERLOCK_UPDATE_GOLDEN=1` rewrites them).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tierlock.runner._cli_policy import policy as policy_group
from tierlock.sandbox import Policy, load_policy_file
from tierlock.sandbox._config import ServiceSpec
from tierlock.sandbox._k8s_chart import CHART_SCHEMA, chart_schema_path, check_against_chart
from tierlock.sandbox._k8s_report import INSPECT_K8S_OUTPUT_CAP, TREATMENTS, K8sRefused
from tierlock.sandbox._k8s_values import SAMPLE_NETWORK, k8s_values
from tierlock.tasks.networked._service import api_service

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "k8s"
SHIPPED = sorted((ROOT / "policies").glob("*.yaml")) + sorted(
    (ROOT / "policies" / "examples").glob("*.yaml")
)
SCHEMA = json.loads((files(CHART_SCHEMA[0]) / CHART_SCHEMA[1]).read_text())
META_FIELDS = {"name", "description", "tier", "extends", "unsafe"}
"""Fields about the policy, not permissions (the values carry name and digest as annotations)."""


def _pinned(requirement_prefix: str, group: list[str]) -> str:
    [req] = [r for r in group if r.startswith(requirement_prefix + "==")]
    return req.split("==", 1)[1]


# --- the pin and the schema's place ------------------------------------------------------------


def test_the_pinned_chart_version_is_the_one_installed_and_inspect_is_unchanged() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert version("inspect-k8s-sandbox") == _pinned("inspect-k8s-sandbox", extras["k8s"])
    assert "tierlock[k8s]" in extras["dev"]  # CI installs the dev extra, so it gets the chart
    assert version("inspect-ai") == _pinned("inspect-ai", project["dependencies"])


def test_the_schema_is_where_the_code_reads_it() -> None:
    path = chart_schema_path()
    assert path is not None and path.is_file()
    assert path.parent.name == "agent-env" and path.name == "values.schema.json"
    assert json.loads(path.read_text()) == SCHEMA
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    # what the translation relies on is still in this chart version's schema
    svc = SCHEMA["properties"]["services"]["patternProperties"][".*"]["properties"]
    for key in ("securityContext", "resources", "runtimeClassName", "networks", "networkIsolated"):
        assert key in svc
    for key in ("allowDomains", "allowDomainsPorts", "networks", "automountServiceAccountToken"):
        assert key in SCHEMA["properties"]


def test_the_report_knows_inspects_output_cap() -> None:
    from inspect_ai.util import SandboxEnvironmentLimits

    assert SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE == INSPECT_K8S_OUTPUT_CAP


# --- what every translation must satisfy -------------------------------------------------------


def _leaf_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    out: list[str] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if sub is not None and name != "capabilities":
            out += _leaf_fields(sub, f"{prefix}{name}.")
        elif (prefix + name) not in META_FIELDS:
            out.append(prefix + name)
    return out


POLICY_FIELDS = _leaf_fields(Policy)


def check_values(policy: Policy, values: dict[str, Any], report: list[Any]) -> None:
    """The schema, the chart template's own `fail` rules, Helm's null rule, and the policy's
    permissions as they must read in the values."""
    from k8s_sandbox._helm import validate_no_null_values

    jsonschema.Draft7Validator(SCHEMA).validate(values)
    jsonschema.Draft7Validator(SCHEMA).validate(_helm_merge(CHART_DEFAULTS, values))
    assert check_against_chart(values)
    validate_no_null_values(values, "translation")
    default = values["services"]["default"]
    for svc in values["services"].values():
        res = svc["resources"]
        assert res["limits"] == res["requests"] and set(res["limits"]) == {"memory", "cpu"}
        ctx = svc.get("securityContext")
        if ctx is not None:
            assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] != 0
            assert ctx["privileged"] is False
            assert ctx["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost", "Unconfined")
        assert svc["runtimeClassName"] == default["runtimeClassName"]
    assert values["automountServiceAccountToken"] is False
    ctx = default["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is policy.filesystem.read_only_root
    assert ctx["allowPrivilegeEscalation"] is (not policy.process.no_new_privileges)
    if policy.process.runtime == "runsc":
        assert default["runtimeClassName"] == "gvisor"
    mounts = {m["mountPath"] for m in default.get("volumeMounts", [])}
    assert mounts == {w.path for w in policy.filesystem.writable}
    mode = policy.network.mode
    allow_keys = {k for k in values if k.startswith("allow")}
    if mode == "none":
        assert not allow_keys and "networks" not in values and default["networkIsolated"] is True
    else:
        assert "networkIsolated" not in default
        assert values["networks"] == {SAMPLE_NETWORK: {}}
        assert all(s["networks"] == [SAMPLE_NETWORK] for s in values["services"].values())
    if mode == "internal":
        assert not allow_keys
    if mode == "allowlist":
        domains = values["allowDomains"]
        assert domains and len(domains) == len(set(domains))
        for d in domains:
            name = d.removeprefix("*.")
            assert "*" not in name and not _is_ip(name)
        for p in values.get("allowDomainsPorts", []):  # the template's `fail`s
            assert p["port"] not in (80, 443) and p["protocol"] == "TCP"
            assert p["domain"] in domains
    # nothing dropped silently: every permission field has a line
    fields = [t.field for t in report]
    assert all(t.treatment in TREATMENTS and t.treatment != "refused" for t in report)
    for f in POLICY_FIELDS:
        assert any(r == f or r.startswith(f + "[") or f.startswith(r + ".") for r in fields), f


CHART_DEFAULTS = yaml.safe_load((files(CHART_SCHEMA[0]) / CHART_SCHEMA[1]).parent.joinpath(
    "values.yaml").read_text())


def _helm_merge(base: Any, over: Any) -> Any:
    """Values as Helm merges a values file over the chart's: maps key by key, the rest replaced
    (Helm validates the merged values against the schema)."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _helm_merge(base.get(k), v) for k, v in over.items()}}
    return over


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --- shipped policies --------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_policy_translates_to_values_the_chart_accepts(path: Path) -> None:
    policy = load_policy_file(path).policy
    if policy.tier == "text-only":  # no container: nothing to run on a cluster
        with pytest.raises(K8sRefused, match=r"^tier: cannot run on Kubernetes"):
            k8s_values(policy)
        return
    services = {"api": api_service()} if "api" in policy.network.services else None
    values, report = k8s_values(policy, services)
    check_values(policy, values, report)


def _cli(*args: str) -> Any:
    return CliRunner().invoke(policy_group, ["k8s", *args])


def _normalised(text: str) -> str:
    """CLI output with what changes for reasons of its own replaced: the base image's recipe
    tag, the policy digest, and service files' contents (checked separately)."""
    text = re.sub(r"tierlock-base:[0-9a-f]{12}", "tierlock-base:<recipe tag>", text)
    text = re.sub(r"sha256:[0-9a-f]{64}", "sha256:<policy digest>", text)
    return re.sub(r"(TIERLOCK_FILE_DATA_\d+\n\s+value: )\S+", r"\1<base64>", text)


@pytest.mark.parametrize(
    ("policy", "task", "golden"),
    [
        ("policies/tool-restricted.yaml", None, "tool-restricted.yaml"),
        ("policies/networked.yaml", "tierlock.tasks.networked.safety", "networked.yaml"),
    ],
)
def test_golden_values(policy: str, task: str | None, golden: str) -> None:
    result = _cli(str(ROOT / policy), *(["--task", task] if task else []))
    assert result.exit_code == 0, result.output
    text = _normalised(result.stdout.replace(str(ROOT) + "/", ""))
    path = GOLDEN / golden
    if os.environ.get("TIERLOCK_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()
    assert "fields translated" in result.stderr
    values = yaml.safe_load(result.stdout)  # the report is comments: the output loads as values
    check_values(load_policy_file(ROOT / policy).policy, values, k8s_values(
        load_policy_file(ROOT / policy).policy, {"api": api_service()} if task else None)[1])
    if task:  # the service's files arrive as they are on Docker
        env = {e["name"]: e["value"] for e in values["services"]["api"]["env"]}
        for path_key, data_key in (("TIERLOCK_FILE_PATH_0", "TIERLOCK_FILE_DATA_0"),
                                   ("TIERLOCK_FILE_PATH_1", "TIERLOCK_FILE_DATA_1")):
            want = api_service().files[env[path_key]]
            assert base64.b64decode(env[data_key]).decode() == want


def test_out_writes_the_file_and_the_report_lines() -> None:
    with CliRunner().isolated_filesystem():
        result = _cli(str(ROOT / "policies/tool-restricted.yaml"), "--out", "v.yaml")
        assert result.exit_code == 0 and result.stdout == ""
        text = Path("v.yaml").read_text()
    assert "into v.yaml" in result.stderr
    assert "#   limits.pids: weaker:" in text and "#   process.runtime: stronger:" in text
    assert yaml.safe_load(text)["services"]["default"]["resources"]["limits"]["memory"] == "512Mi"


# --- refusals: one line naming the field -------------------------------------------------------

BASE = load_policy_file(ROOT / "policies/networked.yaml").policy


def _with(**sections: dict[str, Any]) -> Policy:
    data = BASE.model_dump(mode="json", exclude={"extends"})
    for section, update in sections.items():
        data[section] = {**data[section], **update}
    return Policy.model_validate(data)


REFUSALS = [
    ({"process": {"privileged": True}}, None, "process.privileged"),
    ({"process": {"namespaces": {"pid": "host"}}}, None, "process.namespaces.pid"),
    ({"process": {"namespaces": {"network": "host"}}}, None, "process.namespaces.network"),
    ({"process": {"devices": ["/dev/fuse"]}}, None, "process.devices"),
    ({"process": {"user": "0:0"}}, None, "process.user"),
    ({"process": {"user": "agent"}}, None, "process.user"),
    ({"filesystem": {"mounts": [{"source": "/srv", "target": "/m"}]}}, None, "filesystem.mounts"),
    ({"limits": {"memory": None}}, None, "limits.memory"),
    ({"limits": {"cpus": None}}, None, "limits.cpus"),
    ({"network": {"mode": "open"}}, None, "network.mode"),
    ({"network": {"allow": ["93.184.216.34"]}}, None, "network.allow[0]"),
    ({"network": {"allow": ["a.org", "[2606:4700::1]:443"]}}, None, "network.allow[1]"),
    ({"network": {"allow": ["metadata.google.internal"]}}, None, "network.allow[0]"),
    ({"network": {"allow": ["10.0.0.1.nip.io"]}}, None, "network.allow[0]"),
    ({"network": {"allow": ["*.co.uk"]}}, None, "network.allow[0]"),
    ({"network": {"allow": []}}, None, "network.allow"),
    ({"network": {"mode": "none", "services": []}}, {"api": api_service()}, "network.services"),
    ({"network": {"services": []}}, {"api": api_service()}, "network.services"),
    ({"network": {"services": ["Bad_Name"]}}, {"Bad_Name": api_service()}, "network.services"),
    ({"process": {"seccomp": "/x/.hidden"}}, None, "process.seccomp"),
    ({"process": {"runtime": "runsc"}}, None, None),  # translates: a control for the table
]


@pytest.mark.parametrize(("update", "services", "field"), REFUSALS, ids=[str(r[2]) for r in REFUSALS])
def test_what_the_chart_cannot_express_is_refused_naming_the_field(
    update: dict[str, Any], services: dict[str, ServiceSpec] | None, field: str | None
) -> None:
    policy = _with(**update)
    if field is None:
        check_values(policy, *k8s_values(policy, services))
        return
    with pytest.raises(K8sRefused) as e:
        k8s_values(policy, services)
    assert e.value.field == field
    assert str(e.value).startswith(f"{field}: cannot run on Kubernetes: ")
    assert "\n" not in str(e.value)


def test_a_gvisor_policy_is_never_given_another_runtime_class() -> None:
    policy = _with(process={"runtime": "runsc"})
    assert k8s_values(policy)[0]["services"]["default"]["runtimeClassName"] == "gvisor"
    for other in ("runc", "CLUSTER_DEFAULT", "kata"):
        with pytest.raises(K8sRefused, match=r"^process\.runtime: "):
            k8s_values(policy, runtime_class=other)
    values, report = k8s_values(BASE, runtime_class="CLUSTER_DEFAULT")  # runc asked: allowed
    assert values["services"]["default"]["runtimeClassName"] == "CLUSTER_DEFAULT"
    assert any(t.field == "process.runtime" and t.treatment == "same" for t in report)
    with pytest.raises(K8sRefused, match=r"^process\.runtime: "):
        k8s_values(BASE, runtime_class="Bad Class\n")


def test_a_bare_star_is_refused_even_past_the_model() -> None:
    """The model rejects `*`; the translation refuses it on its own too (defence in depth)."""
    net = BASE.network.model_copy(update={"allow": ["*"]})
    with pytest.raises(K8sRefused, match=r"^network\.allow\[0\]: "):
        k8s_values(BASE.model_copy(update={"network": net}))


def test_cli_refusal_is_one_line_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text(
        "extends: " + str(ROOT / "policies/networked.yaml") + "\nname: ip\n"
        "network: {allow: [93.184.216.34]}\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", "from tierlock.runner.cli import main; main()", "policy", "k8s",
         str(bad)], capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.splitlines() == [
        "tierlock: network.allow[0]: cannot run on Kubernetes: '93.184.216.34': the chart "
        "allows names, never addresses"
    ]


def test_a_task_without_services_adds_none_and_a_task_with_them_needs_a_policy_listing_them(
) -> None:
    result = _cli(str(ROOT / "policies/tool-restricted.yaml"), "--task",
                  "tierlock.tasks.tool_restricted.safety@tool_restricted_safety")
    assert result.exit_code == 0, result.output
    assert list(yaml.safe_load(result.stdout)["services"]) == ["default"]
    result = _cli(str(ROOT / "policies/examples/data-analysis.yaml"), "--task",
                  "tierlock.tasks.networked.safety")
    assert result.exit_code != 0 and result.stdout == ""  # the task refuses a lower tier's policy


def test_a_task_that_is_not_there_is_one_line() -> None:
    result = _cli(str(ROOT / "policies/networked.yaml"), "--task", "nosuch_task_file.py")
    assert result.exit_code != 0
    assert "nosuch_task_file.py" in str(result.exception)


# --- allow entries: the proxy's normalisation ----------------------------------------------------


def test_allow_entries_keep_the_proxys_normalisation_and_ports() -> None:
    policy = _with(network={"allow": ["A.Example.ORG", "b.example.org:8443", "a.example.org:443",
                                      "*.c.example.org", "b.example.org"],
                            "allow_subdomains": None})
    values, report = k8s_values(policy)
    assert values["allowDomains"] == ["a.example.org", "b.example.org", "c.example.org",
                                      "*.c.example.org"]
    assert values["allowDomainsPorts"] == [{"port": 8443, "protocol": "TCP",
                                           "domain": "b.example.org"}]
    by_field = {t.field: t for t in report}
    assert by_field["network.allow[0]"].treatment == "emulated"
    assert by_field["network.allow[1]"].treatment == "weaker"  # 80/443 open too, IP-pinned 8443
    assert by_field["network.egress_log"].treatment == "weaker"
    check_values(policy, values, report)


def test_allow_subdomains_become_exact_names() -> None:
    policy = _with(network={"allow": ["*.example.org:443"], "allow_subdomains": ["api", "www"]})
    values, _ = k8s_values(policy)
    assert values["allowDomains"] == ["api.example.org", "www.example.org"]
    assert "allowDomainsPorts" not in values


# --- generated policies ------------------------------------------------------------------------

_sizes = st.integers(min_value=6, max_value=4096).map(lambda n: f"{n}m")
_good_allow = ["a.org", "b.org:443", "*.c.org", "d.example.com:8443", "e.org:80", "f.org:22"]
_bad_allow = ["[2606:4700::1]:443", "1.1.1.1", "metadata.google.internal", "localhost", "*.com",
              "10.0.0.1.nip.io"]
_allow = st.sampled_from(_good_allow * 4 + _bad_allow)


def _rarely(rare: Any, usual: Any) -> st.SearchStrategy[Any]:
    """`usual` nine times in ten: most generated policies translate, the rest are refused."""
    return st.sampled_from([usual] * 9 + [rare])
generated = st.fixed_dictionaries(
    {
        "name": st.just("g"),
        "tier": st.sampled_from(["tool-restricted", "networked"]),
        "image": st.sampled_from(["tierlock-base", "registry.example/x:1"]),
        "network": st.fixed_dictionaries({
            "mode": st.sampled_from(["none", "internal", "allowlist", "allowlist", "open"]),
            "allow": st.lists(_allow, min_size=1, max_size=4),
            "allow_subdomains": st.one_of(st.none(), st.lists(st.sampled_from(["api", "w"]),
                                                               min_size=1, max_size=2)),
            "services": st.lists(st.sampled_from(["api", "db"]), max_size=2, unique=True),
        }),
        "filesystem": st.fixed_dictionaries({
            "read_only_root": st.booleans(),
            "writable": st.lists(st.fixed_dictionaries({
                "path": st.sampled_from(["/workspace", "/tmp", "/data", "/dev/shm"]),
                "size": st.one_of(_sizes, st.sampled_from(["4k", "5000b", "1g"]))}),
                max_size=3, unique_by=lambda w: w["path"]),
            "mounts": _rarely([{"source": "/srv", "target": "/m"}], []),
        }),
        "process": st.fixed_dictionaries({
            "user": st.sampled_from(["1000:1000", "1234", "+5:7", "1000:1000", "1234", "0", "root", "agent"]),
            "capabilities": st.fixed_dictionaries({
                "drop": st.sampled_from([["ALL"], [], ["NET_RAW"]]),
                "add": st.lists(st.sampled_from(["CHOWN", "cap_net_bind_service"]), max_size=2),
            }),
            "privileged": _rarely(True, False),
            "no_new_privileges": st.booleans(),
            "seccomp": st.sampled_from(["default", "unconfined", "profiles/p.json"]),
            "apparmor": st.sampled_from([None, "custom"]),
            "runtime": st.sampled_from(["runc", "runsc"]),
            "namespaces": st.fixed_dictionaries(
                {ns: _rarely("host", "private") for ns in ("ipc", "uts")}),
            "devices": _rarely(["/dev/fuse"], []),
            "init": st.booleans(),
            "background": st.sampled_from(["forbid", "allow"]),
        }),
        "limits": st.fixed_dictionaries({
            "memory": st.one_of(_sizes, _rarely(None, "512m")),
            "cpus": st.one_of(st.sampled_from([0.01, 0.5, 1.0, 2.5]), _rarely(None, 1.0)),
            "pids": st.one_of(st.none(), st.integers(1, 4096)),
            "output_bytes": st.sampled_from(["1k", "1m", "10m", "64m"]),
        }),
        "tools": st.fixed_dictionaries({"allow": st.lists(st.sampled_from(["bash", "python"]),
                                                          max_size=2, unique=True)}),
        "env": st.dictionaries(st.sampled_from(["A", "HOME"]), st.sampled_from(["1", "x y"])),
    }
).map(Policy.model_validate)


@settings(max_examples=int(os.environ.get("PROP_N", "200")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(generated, st.data(), st.sampled_from([None, "gvisor", "CLUSTER_DEFAULT"]))
def test_generated_policies_validate_or_are_refused_naming_a_field(
    policy: Policy, data: st.DataObject, runtime_class: str | None
) -> None:
    listed = sorted(policy.network.services)
    names = data.draw(st.lists(st.sampled_from([*listed, "db", "x"] if listed else ["db"]),
                               max_size=2, unique=True))
    services = {n: api_service().model_copy(update={"harden": n != "db"}) for n in names}
    try:
        values, report = k8s_values(policy, services, runtime_class=runtime_class)
    except K8sRefused as e:
        assert "\n" not in str(e)
        assert e.field.split("[")[0] in [*POLICY_FIELDS, "tier", "network.services"], e.field
        return
    check_values(policy, values, report)
    # a refusal was due for each of these, so none of them is present
    proc = policy.process
    assert not proc.privileged and not proc.devices and not policy.filesystem.mounts
    assert policy.network.mode != "open"
    assert all(getattr(proc.namespaces, n) == "private" for n in ("ipc", "uts"))
