"""`tierlock images build|list` and `tierlock cleanup`: the sandbox's Docker objects."""

from __future__ import annotations

import click

from tierlock.sandbox._cleanup import cleanup as cleanup_objects
from tierlock.sandbox._docker import connect
from tierlock.sandbox._images import build_image, image_exists, recipes


@click.group("images")
def images() -> None:
    """Sandbox images, built from Debian packages without a registry."""


@images.command("build")
@click.argument("names", nargs=-1)
@click.option("--force", is_flag=True, help="Rebuild even when the image exists.")
def images_build(names: tuple[str, ...], force: bool) -> None:
    """Build images (default: every recipe) unless their recipe-hash tag exists."""
    client = connect()
    selected = list(names) or [r.name for r in recipes()]
    for name in selected:
        tag, built = build_image(client, name, force=force,
                                 progress=lambda line: click.echo(f"  {line}", err=True))
        click.echo(f"{tag} {'built' if built else 'up to date'}")


@images.command("list")
def images_list() -> None:
    """Every recipe, its tag, and whether Docker has it."""
    client = connect()
    for r in recipes():
        state = "present" if image_exists(client, r.tag) else "missing"
        click.echo(f"{r.tag}\t{r.suite}\t{state}")


@click.command("cleanup")
@click.option("--all", "include_live", is_flag=True,
              help="Also remove objects of runs that are still running.")
@click.option("--run", default=None, help="Only this run id's objects.")
def cleanup_command(include_live: bool, run: str | None) -> None:
    """Remove sandbox containers, networks and volumes left by crashed runs (found by label)."""
    report = cleanup_objects(connect(), run=run, include_live=include_live)
    for c in report.containers:
        click.echo(f"removed container {c}")
    for n in report.networks:
        click.echo(f"removed network {n}")
    for v in report.volumes:
        click.echo(f"removed volume {v}")
    click.echo(f"{report.removed} removed, {report.kept_live} belonging to live runs kept")
    for e in report.errors:
        click.echo(f"tierlock: could not remove {e}", err=True)
    if report.errors:
        raise click.exceptions.Exit(1)
