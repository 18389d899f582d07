"""`tierlock init DIR`: an editable copy of the shipped default campaign and policies.

Installed from a wheel, the shipped campaign and policies live inside site-packages, where a user
should not edit them. `init` writes, into DIR:

- `campaign.yaml`: the default campaign, named after DIR, its policies pointing at the copies
  below (`policies/<tier>.yaml`) and its tasks at the installed tasks by module name
  (`tierlock.tasks.text_only.safety@text_only_safety`), comments kept;
- `policies/*.yaml` and `policies/examples/*.yaml`: the shipped policies, byte for byte (their
  `extends` paths are relative, so the copies extend each other).

Existing files are never overwritten without `--force`; nothing else in DIR is touched.

`tierlock init task NAME --tier T` writes a standalone task folder instead (`_init_task`): `init`
is a group whose only subcommand is `task`; anything else is the DIR form.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import yaml

import tierlock.tasks
from tierlock.sandbox import TIERS, TierlockError
from tierlock.tasks._policy import POLICY_DIR

from ._campaign import DEFAULT_CAMPAIGN
from ._campaign_file import load_campaign
from ._init_task import folder_name, task_folder

CAMPAIGN_FILE = "campaign.yaml"
POLICIES = "policies"
TASKS_DIR = Path(tierlock.tasks.__file__).resolve().parent
TASKS_PACKAGE = "tierlock.tasks"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def shipped_policies() -> list[Path]:
    """The shipped policy files (the tiers', then the examples'), relative to their folder."""
    files = sorted(POLICY_DIR.glob("*.yaml")) + sorted((POLICY_DIR / "examples").glob("*.yaml"))
    if not files:
        raise TierlockError(f"no shipped policies in {POLICY_DIR} (a broken install?)")
    return [f.relative_to(POLICY_DIR) for f in files]


def task_module(file: Path) -> str | None:
    """`tierlock.tasks.x.y` for an installed task file, None for a file outside the package."""
    try:
        rel = file.resolve().relative_to(TASKS_DIR)
    except ValueError:
        return None
    return ".".join((TASKS_PACKAGE, *rel.with_suffix("").parts))


def _replace_value(text: str, key: str, old: str, new: str) -> str:
    """`key: old` (plain or quoted, maybe after `- `, maybe a trailing comment) → `key: new`."""
    pattern = re.compile(
        rf"^(\s*(?:-\s+)?{key}:\s*)(['\"]?){re.escape(old)}\2([ \t]*(?:#.*)?)$", re.MULTILINE
    )
    out, count = pattern.subn(lambda m: f"{m.group(1)}{new}{m.group(3)}", text)
    if count == 0:
        raise TierlockError(f"{DEFAULT_CAMPAIGN}: cannot find '{key}: {old}' to rewrite (a bug)")
    return out


def campaign_copy(name: str) -> str:
    """The shipped default campaign's text, named `name`, its policies `policies/...` and its
    tasks the installed modules. Checked by parsing the result."""
    campaign = load_campaign(DEFAULT_CAMPAIGN)
    text = DEFAULT_CAMPAIGN.read_text(encoding="utf-8")
    text = _replace_value(text, "name", campaign.name, name)
    expected: list[tuple[str, list[str]]] = []
    for tier in campaign.tiers:
        policy = campaign.policy_path(tier).relative_to(POLICY_DIR.resolve()).as_posix()
        new_policy = f"{POLICIES}/{policy}"
        text = _replace_value(text, "policy", tier.policy, new_policy)
        tasks = []
        for spec in tier.tasks:
            file = campaign.task_file(spec)
            module = task_module(file) if file is not None else None
            _, at, task_name = spec.task.partition("@")
            new_task = spec.task if module is None else module + at + task_name
            if new_task != spec.task:
                text = _replace_value(text, "task", spec.task, new_task)
            tasks.append(new_task)
        expected.append((new_policy, tasks))
    data = yaml.safe_load(text)
    got = [(t["policy"], [x["task"] for x in t["tasks"]]) for t in data["tiers"]]
    if data.get("name") != name or got != expected:
        raise TierlockError(f"{DEFAULT_CAMPAIGN}: the rewritten copy does not match (a bug)")
    header = (
        "# Written by `tierlock init` from tierlock's default campaign: the policies are the copies\n"
        "# in policies/ (edit them), the tasks are tierlock's installed tasks, named by module.\n"
    )
    return header + text


def campaign_name(directory: Path) -> str:
    """The copy's campaign name: the directory's name when it is a valid one (runs of the copy
    and of the shipped default then have different run ids)."""
    name = directory.resolve().name
    return name if _NAME.fullmatch(name) and name != "default" else "my-campaign"


def write_files(files: dict[Path, str], force: bool) -> None:
    """Write every file, refusing (one line, nothing written) when one exists and not `force`."""
    existing = [p for p in files if p.exists() or p.is_symlink()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise TierlockError(f"{existing[0]} already exists{more}; use --force to overwrite")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():  # --force replaces the link itself, never the file it points to
            path.unlink()
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path}")


@click.command("init", hidden=True)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files of a previous init.")
def init_dir_command(directory: Path, force: bool) -> None:
    """Write an editable copy of the default campaign and the shipped policies into DIRECTORY
    (created if needed): DIRECTORY/campaign.yaml runs the installed tasks under the copied
    DIRECTORY/policies/*.yaml. Existing files are kept unless --force."""
    files: dict[Path, str] = {
        directory / CAMPAIGN_FILE: campaign_copy(campaign_name(directory)),
    }
    for rel in shipped_policies():
        files[directory / POLICIES / rel] = (POLICY_DIR / rel).read_text(encoding="utf-8")
    write_files(files, force)
    policies = shlex.quote(str(directory / POLICIES))
    campaign = shlex.quote(str(directory / CAMPAIGN_FILE))
    click.echo(f"next: tierlock policy check {policies} && tierlock run {campaign}")


@click.command("task")
@click.argument("name", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--tier", required=True, type=click.Choice(list(TIERS)), help="The tier the task is for."
)
@click.option("--force", is_flag=True, help="Overwrite files of a previous init task.")
def init_task_command(name: Path, tier: str, force: bool) -> None:
    """Write a standalone, runnable task folder NAME/ for TIER: task.py (public API only), its
    samples, a policy extending the tier's installed one, a campaign and check.sh."""
    if name.exists() and not name.is_dir():
        raise TierlockError(f"{name} exists and is not a directory")
    files = {name / rel: text for rel, text in task_folder(folder_name(name), tier).items()}
    write_files(files, force)
    (name / "check.sh").chmod(0o755)
    folder = shlex.quote(str(name))
    click.echo(
        f"next: tierlock policy check {folder}/policy.yaml && "
        f"tierlock run {folder}/campaign.yaml --model tierlock/diligent"
    )


class InitGroup(click.Group):
    """`init task ...` goes to the `task` subcommand; anything else is `init DIR`, run in a
    context of its own named `init` (so its usage and errors read `tierlock init ...`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args:  # `tierlock init`: the DIR form's "missing argument" usage error
            init_dir_command.make_context(ctx.info_name, [], parent=ctx.parent)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        protected = getattr(ctx, "_protected_args", None)  # click >= 8.2; before: public
        args = [*(ctx.protected_args if protected is None else protected), *ctx.args]
        if args and args[0] in self.commands:
            return super().invoke(ctx)
        with init_dir_command.make_context(ctx.info_name, args, parent=ctx.parent) as sub:
            return init_dir_command.invoke(sub)


@click.group(
    "init",
    cls=InitGroup,
    no_args_is_help=False,
    subcommand_metavar="DIRECTORY | task NAME --tier TIER",
    context_settings={"ignore_unknown_options": True},
)
def init_command() -> None:
    """Start something of your own.

    \b
    tierlock init DIRECTORY [--force]
        an editable copy of the default campaign and the shipped policies
        (DIRECTORY/campaign.yaml runs the installed tasks under DIRECTORY/policies/*.yaml)
    tierlock init task NAME --tier TIER [--force]
        a standalone task folder NAME/ for a tier (text-only, tool-restricted, networked):
        task.py, samples, policy.yaml extending the tier's, campaign.yaml, check.sh

    Existing files are kept unless --force.
    """


init_command.add_command(init_task_command)


@click.group("task")
def task_group() -> None:
    """Writing tasks: `tierlock init task NAME --tier T` starts one."""


@task_group.command("reference")
def task_reference() -> None:
    """Print the task authoring reference (Markdown), generated from the public API
    (tierlock.tasks, SandboxConfig, ServiceSpec); `tasks/REFERENCE.md` is this output."""
    from tierlock.tasks._reference import authoring_reference

    click.echo(authoring_reference(), nl=False)
