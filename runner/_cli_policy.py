"""`tierlock policy ...`: check, show, diff and describe policy files."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from tierlock.sandbox import (
    RULES,
    LoadedPolicy,
    Policy,
    PolicyError,
    Problem,
    check_ladder,
    describe_network,
    diff_policies,
    has_errors,
    lint_policy,
    load_policy_file,
)
from tierlock.sandbox._docker import connect
from tierlock.sandbox._errors import SandboxError, display_path
from tierlock.sandbox._host_check import HostFacts, host_facts, host_problems
from tierlock.sandbox._translate import docker_settings

from ._cli_policy_k8s import k8s as k8s_command


def show_docker_settings(loaded: LoadedPolicy) -> dict[str, Any]:
    """The Docker settings the policy translates to (printed by `tierlock policy show`)."""
    policy_dir = loaded.defined_in(("process", "seccomp")).parent
    return docker_settings(loaded.policy, policy_dir=policy_dir)


def _echo_problems(problems: list[Problem]) -> None:
    for p in problems:
        click.echo(str(p))


@click.group("policy")
def policy() -> None:
    """Check, show and compare sandbox policy files."""


@policy.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--ladder",
    is_flag=True,
    help="Also check the files as a tier ladder, ordered by tier (several policies of one tier "
    "are alternatives, each checked against the next tier's); a folder gives its own *.yaml, "
    "not its subfolders' (name policies/examples to include it).",
)
@click.option(
    "--no-host",
    is_flag=True,
    help="Skip the checks against the Docker host (CPU count, runtimes, AppArmor, kernel "
    "limits support, bind-mount sources); they are skipped with a note when Docker is not "
    "reachable.",
)
@click.pass_context
def check(ctx: click.Context, paths: tuple[Path, ...], ladder: bool, no_host: bool) -> None:
    """Load and lint policy files (a directory: every *.yaml below it; with --ladder, the
    *.yaml directly in it), then check them against the Docker host (what Docker would refuse,
    or run with less than the policy says); print every error and warning. Exit 1 if any
    error. Errors also go to standard error, unless both outputs go to the same place."""
    files = _policy_files(paths, recursive=not ladder)
    if not files:
        raise click.UsageError(f"no *.yaml files in {', '.join(map(str, paths))}")
    problems: list[Problem] = []
    loaded_files: list[LoadedPolicy] = []
    if ladder:
        problems = check_ladder(files, by_tier=True)
    for f in files:
        try:
            loaded = load_policy_file(f)
        except PolicyError as e:
            if not ladder:
                problems += [p for p in e.problems if p not in problems]  # a shared parent once
            continue
        loaded_files.append(loaded)
        if not ladder:
            problems += lint_policy(loaded.policy, source=loaded)
    facts = None if no_host else _host_facts()
    if facts is not None:
        for loaded in loaded_files:
            problems += [
                p for p in host_problems(loaded.policy, facts, loaded) if p not in problems
            ]
    _echo_problems(problems)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    noun = "file" if len(files) == 1 else "files"
    what = f"ladder of {len(files)} {noun}" if ladder else f"{len(files)} {noun}"
    verdict = "FAILED" if errors else "ok"
    click.echo(f"{verdict}: {what} checked, {errors} error(s), {warnings} warning(s)")
    if errors and not _same_output():
        for p in problems:
            if p.severity == "error":
                click.echo(f"tierlock: {p}", err=True)
    ctx.exit(1 if has_errors(problems) else 0)


def _policy_files(paths: tuple[Path, ...], *, recursive: bool) -> list[Path]:
    """The files to check, each once, in the order named (a folder's files sorted)."""
    out: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        found = sorted(p.rglob("*.yaml") if recursive else p.glob("*.yaml")) if p.is_dir() else [p]
        if p.is_dir():  # a task folder's campaign.yaml sits beside its policy: not a policy
            found = [f for f in found if not _is_campaign(f)]
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def _is_campaign(file: Path) -> bool:
    """Whether a regular file parses as a campaign (`tiers:` and no `tier:` at the top)."""
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) if file.is_file() else None
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "tiers" in data and "tier" not in data


def _same_output() -> bool:
    """Whether standard output and standard error go to the same terminal, file or pipe
    (`2>&1`): the errors already printed on standard output are then not repeated."""
    try:
        out, err = os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False
    return (out.st_dev, out.st_ino) == (err.st_dev, err.st_ino)


def _host_facts() -> HostFacts | None:
    """The Docker host's facts, or None (with a note on stderr) when Docker is not reachable."""
    try:
        return host_facts(connect(timeout=10))
    except SandboxError as e:
        click.echo(f"tierlock: note: host checks skipped: {e}", err=True)
        return None


def effective_yaml(policy: Policy) -> str:
    """The effective policy as YAML (valid as a policy file itself)."""
    data = policy.model_dump(mode="json", exclude={"extends"})
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@policy.command("show")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def show(file: Path) -> None:
    """Print the effective policy of FILE after `extends`, as YAML."""
    loaded = load_policy_file(file)
    chain = " ← ".join(display_path(f) for f in loaded.files)
    click.echo(f"# effective policy of {chain}")
    click.echo(f"# digest sha256:{loaded.policy.digest()}")
    if loaded.policy.unsafe:
        click.echo(f"# UNSAFE: {loaded.policy.unsafe.reason}")
    click.echo(effective_yaml(loaded.policy), nl=False)
    click.echo("# Docker settings this policy translates to:")
    for line in yaml.safe_dump(show_docker_settings(loaded), sort_keys=False).splitlines():
        click.echo(f"#   {line}")
    click.echo("# Networking:")
    for line in describe_network(loaded.policy):
        click.echo(f"#   {line}")


@policy.command("reference")
def reference() -> None:
    """Print the reference of every policy field (Markdown), generated from the policy model;
    `policies/REFERENCE.md` is this output."""
    from tierlock.sandbox._reference import policy_reference

    click.echo(policy_reference(), nl=False)


@policy.command("diff")
@click.argument("a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(dir_okay=False, path_type=Path))
def diff(a: Path, b: Path) -> None:
    """List every permission B grants that A does not, and the reverse."""
    pa, pb = load_policy_file(a).policy, load_policy_file(b).policy
    b_only, a_only = diff_policies(pa, pb)
    for title, items in ((f"granted by {b} only", b_only), (f"granted by {a} only", a_only)):
        click.echo(f"{title}:")
        for item in items:
            click.echo(f"  + {item}")
        if not items:
            click.echo("  (nothing)")


@policy.command("schema")
def schema() -> None:
    """Print the JSON Schema of policy files (for editor validation and completion)."""
    s = Policy.model_json_schema()
    out = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **s,
        "title": "tierlock sandbox policy",
    }
    click.echo(json.dumps(out, indent=2))


@policy.command("rules")
def rules() -> None:
    """List the lint rules (ids are what `unsafe.allow` names)."""
    for r in RULES:
        cis = f" (CIS {r.cis})" if r.cis else ""
        fixed = "" if r.downgradable or r.severity != "error" else " [cannot be downgraded]"
        click.echo(f"{r.id:24} {r.severity:8} {r.summary}{cis}{fixed}")


policy.add_command(k8s_command)  # tierlock policy k8s (runner/_cli_policy_k8s.py)
