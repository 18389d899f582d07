"""Sandbox images without a registry: Debian packages → `mmdebstrap` → `docker import`.

A recipe is data (name, Debian suite, packages, customize steps, image config). Its image is tagged
`tierlock-<name>:<hash12>` where the hash covers the whole recipe, so a changed recipe builds a new
image and an unchanged one is found by tag (a second build is a no-op). Builds hold a file lock,
so parallel samples, tests and processes never build the same image twice. `SOURCE_DATE_EPOCH` is
fixed per recipe, which makes `mmdebstrap` output reproducible for a given mirror state.

The project's own recipes are defined here, as data: the sandbox base image and the egress proxy's
image (`_proxy` owns the squid configuration it runs). Other code may add recipes with
`register_recipe`; `_proxy` imports this module, never the reverse.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import SandboxError
from ._labels import PROJECT, PROJECT_LABEL
from ._policy import BASE_IMAGE

if TYPE_CHECKING:
    import docker

__all__ = [
    "BASE_IMAGE",
    "BASE_RECIPE",
    "PROXY_RECIPE",
    "ImageRecipe",
    "build_image",
    "ensure_image",
    "ensure_image_async",
    "get_recipe",
    "image_exists",
    "recipes",
    "register_recipe",
    "resolve_image",
]

RECIPE_FORMAT = 1
"""Bumped when the way recipes are turned into images changes (part of every hash)."""

MIRROR_ENV = "TIERLOCK_DEBIAN_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageRecipe:
    """How to bootstrap one image from Debian packages."""

    name: str
    """Short name: the image is `tierlock-<name>`."""
    suite: str = "bookworm"
    variant: str = "minbase"
    packages: tuple[str, ...] = ()
    customize: tuple[str, ...] = ()
    """Shell steps run on the host after install (mmdebstrap `--customize-hook`; `$1` is the root)."""
    user: str = "root"
    workdir: str = "/"
    env: tuple[tuple[str, str], ...] = (("PATH", SYSTEM_PATH),)
    cmd: tuple[str, ...] = ("sleep", "infinity")
    source_date_epoch: int = 1700000000
    exclude: tuple[str, ...] = field(
        default=(
            "/usr/share/doc/*",
            "/usr/share/man/*",
            "/usr/share/info/*",
            "/usr/share/locale/*",
        )
    )

    def digest(self) -> str:
        """SHA-256 of the recipe (and the recipe format)."""
        data = {"format": RECIPE_FORMAT, **asdict(self)}
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def repository(self) -> str:
        return f"tierlock-{self.name}"

    @property
    def tag(self) -> str:
        """`tierlock-<name>:<hash12>`."""
        return f"{self.repository}:{self.digest()[:12]}"

    def labels(self) -> dict[str, str]:
        return {
            PROJECT_LABEL: PROJECT,
            "tierlock.image": self.name,
            "tierlock.recipe": self.digest(),
            "tierlock.suite": self.suite,
        }

    def import_changes(self) -> list[str]:
        """Dockerfile instructions applied by `docker import --change`."""
        changes = [f"WORKDIR {self.workdir}", f"USER {self.user}"]
        changes += [f"ENV {k}={v}" for k, v in self.env]
        changes += [f"LABEL {k}={v}" for k, v in sorted(self.labels().items())]
        changes.append(f"CMD {json.dumps(list(self.cmd))}")
        return changes

    def mmdebstrap_args(self, output: str, mirror: str) -> list[str]:
        """The `mmdebstrap` command line that writes the root filesystem tarball to `output`."""
        args = ["mmdebstrap", f"--variant={self.variant}", "--mode=auto", "--format=tar"]
        if self.packages:
            args.append("--include=" + ",".join(self.packages))
        args += [f"--dpkgopt=path-exclude={p}" for p in self.exclude]
        args += [f"--customize-hook={step}" for step in self.customize]
        args.append('--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*')
        args += [self.suite, output, mirror]
        return args


BASE_RECIPE = ImageRecipe(
    name="base",
    suite="bookworm",
    packages=("bash", "python3", "coreutils", "procps", "curl", "ca-certificates"),
    customize=(
        'chroot "$1" groupadd --gid 1000 agent',
        'chroot "$1" useradd --uid 1000 --gid 1000 --create-home --home-dir /home/agent '
        "--shell /bin/bash agent",
        'mkdir -p "$1/workspace" && chown 1000:1000 "$1/workspace" && chmod 0755 "$1/workspace"',
        'test -x "$1/usr/bin/timeout"',
    ),
    user="agent",
    workdir="/workspace",
)
"""The sandbox base image: `tierlock-base` in policies."""

PROXY_RECIPE = ImageRecipe(
    name="proxy",
    suite="bookworm",
    # squid 5.7 built with OpenSSL (peeks at the TLS SNI of CONNECT tunnels), and openssl to
    # make the throwaway certificate an SslBump port needs even when it never bumps
    packages=("squid-openssl", "openssl"),
    customize=('test -x "$1/usr/sbin/squid"',),
    user="proxy",
    cmd=("squid", "-N", "-f", "/etc/squid/squid.conf"),
)
"""The egress proxy image `tierlock-proxy`: Debian's squid, built like the base image. The proxy
sidecar runs `_proxy.PROXY_START` in it."""

_RECIPES: dict[str, ImageRecipe] = {r.name: r for r in (BASE_RECIPE, PROXY_RECIPE)}
_recipes_lock = threading.Lock()


def register_recipe(recipe: ImageRecipe) -> ImageRecipe:
    """Add (or replace) a recipe; policies then name it as `tierlock-<name>`."""
    with _recipes_lock:
        _RECIPES[recipe.name] = recipe
    return recipe


def recipes() -> list[ImageRecipe]:
    """Every known recipe."""
    with _recipes_lock:
        return list(_RECIPES.values())


def get_recipe(name: str) -> ImageRecipe | None:
    """The recipe for `base`, `tierlock-base` or `tierlock-base:<hash>`, if there is one."""
    short = name.split(":", 1)[0]
    short = short.removeprefix("tierlock-")
    recipe = _RECIPES.get(short)
    if recipe is None:
        return None
    if ":" in name and name != recipe.tag and not name.startswith(recipe.repository + ":"):
        return None
    return recipe


def resolve_image(name: str) -> str:
    """The tag a policy's `image` means: recipe names become their recipe-hash tag."""
    recipe = get_recipe(name)
    if recipe is not None and (":" not in name or name == recipe.tag):
        return recipe.tag
    return name


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    """Whether the daemon has an image with this tag (or id)."""
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _lock_dir() -> Path:
    """A private directory for lock files: ours, not a symlink, writable by nobody else (in a
    shared /tmp another user could otherwise plant a symlink that root then opens)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    d = Path(base) / "tierlock-locks"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise SandboxError(f"{d} is not a directory private to this user; remove it")
    return d


@contextmanager
def _build_lock(recipe: ImageRecipe) -> Iterator[None]:
    """An exclusive lock per recipe hash, across threads and processes."""
    path = _lock_dir() / f"image-{recipe.name}-{recipe.digest()[:12]}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _default_progress(line: str) -> None:
    import structlog

    if structlog.is_configured():  # tierlock's CLI: its console, --log-format, --log-file
        structlog.get_logger("tierlock.images").info("image_build", step=line)
        return
    print(f"tierlock: {line}", file=sys.stderr, flush=True)


def build_image(
    client: docker.DockerClient,
    recipe: ImageRecipe | str = BASE_RECIPE,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> tuple[str, bool]:
    """Build a recipe's image unless its tag exists; returns (tag, built). Blocking.

    Raises `SandboxError` (one line) when mmdebstrap is missing or fails.
    """
    if isinstance(recipe, str):
        found = get_recipe(recipe)
        if found is None:
            known = ", ".join(sorted(_RECIPES))
            raise SandboxError(f"unknown image recipe {recipe!r} (known: {known})")
        recipe = found
    say = progress or _default_progress
    tag = recipe.tag
    if not force and image_exists(client, tag):
        return tag, False
    with _build_lock(recipe):
        if not force and image_exists(client, tag):  # another builder finished first
            return tag, False
        if shutil.which("mmdebstrap") is None:
            raise SandboxError(
                f"image {tag} is missing and mmdebstrap is not installed to build it "
                "(apt-get install mmdebstrap)"
            )
        mirror = os.environ.get(MIRROR_ENV, DEFAULT_MIRROR)
        say(
            f"building image {tag} from Debian {recipe.suite} ({mirror}); this takes about a minute"
        )
        with tempfile.TemporaryDirectory(prefix="tierlock-image-") as tmp:
            tarball = os.path.join(tmp, "rootfs.tar")
            _run_mmdebstrap(recipe.mmdebstrap_args(tarball, mirror), recipe, say)
            say(f"importing {tag} into Docker")
            repo, _, version = tag.partition(":")
            try:
                client.api.import_image(
                    src=tarball, repository=repo, tag=version, changes=recipe.import_changes()
                )
            except Exception as e:
                raise SandboxError(f"docker import of {tag} failed: {e}") from None
        if not image_exists(client, tag):
            raise SandboxError(f"docker import of {tag} reported success but the tag is missing")
        say(f"built image {tag}")
        return tag, True


def _run_mmdebstrap(args: list[str], recipe: ImageRecipe, say: Progress) -> None:
    env = {
        **os.environ,
        "SOURCE_DATE_EPOCH": str(recipe.source_date_epoch),
        "LC_ALL": "C.UTF-8",
    }
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    tail: list[str] = []
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.rstrip()
        if not line:
            continue
        tail = [*tail[-19:], line]
        if line.startswith(("I: ", "E: ", "W: ")):
            say(f"mmdebstrap: {line[3:]}")
    if proc.wait() != 0:
        last = next((t for t in reversed(tail) if t.startswith("E: ")), tail[-1] if tail else "")
        raise SandboxError(
            f"mmdebstrap failed for image tierlock-{recipe.name} (exit {proc.returncode}): {last}"
        )


def ensure_image(
    client: docker.DockerClient, name: str = BASE_IMAGE, *, progress: Progress | None = None
) -> str:
    """The tag to run for `name`, building a recipe image on first use. Blocking.

    `name` is a recipe (`base`), a project image (`tierlock-base`) or any other image, which
    must already exist (nothing is ever pulled).
    """
    recipe = get_recipe(name)
    if recipe is not None and (":" not in name or name == recipe.tag):
        tag, _ = build_image(client, recipe, progress=progress)
        return tag
    if not image_exists(client, name):
        raise SandboxError(
            f"image {name!r} is not present in Docker and tierlock never pulls; build or load it "
            "first, or use tierlock-base"
        )
    return name


async def ensure_image_async(
    client: docker.DockerClient, name: str = BASE_IMAGE, *, progress: Progress | None = None
) -> str:
    """`ensure_image` in a worker thread (the event loop never blocks on a build)."""
    from ._docker import run_sync

    return await run_sync(ensure_image, client, name, progress=progress)
