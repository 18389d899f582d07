"""Images without a registry: recipes as data, tags by recipe hash, builds locked and idempotent."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

import tierlock.sandbox._images as images
from tierlock.sandbox._errors import SandboxError
from tierlock.sandbox._images import (
    BASE_RECIPE,
    ImageRecipe,
    build_image,
    ensure_image,
    resolve_image,
)


def test_tag_is_a_hash_of_the_recipe() -> None:
    tag = BASE_RECIPE.tag
    assert tag.startswith("tierlock-base:") and len(tag.split(":")[1]) == 12
    assert dataclasses.replace(BASE_RECIPE, packages=(*BASE_RECIPE.packages, "git")).tag != tag
    assert dataclasses.replace(BASE_RECIPE, suite="trixie").tag != tag
    assert dataclasses.replace(BASE_RECIPE).tag == tag


def test_resolve_image() -> None:
    assert resolve_image("tierlock-base") == BASE_RECIPE.tag
    assert resolve_image("base") == BASE_RECIPE.tag
    assert resolve_image(BASE_RECIPE.tag) == BASE_RECIPE.tag
    assert resolve_image("debian:bookworm-slim") == "debian:bookworm-slim"


def test_recipe_command_line_and_import_changes() -> None:
    args = BASE_RECIPE.mmdebstrap_args("/tmp/out.tar", "http://mirror/debian")
    assert args[:2] == ["mmdebstrap", "--variant=minbase"]
    assert "--include=bash,python3,coreutils,procps,curl,ca-certificates" in args
    assert args[-3:] == ["bookworm", "/tmp/out.tar", "http://mirror/debian"]
    changes = BASE_RECIPE.import_changes()
    assert "WORKDIR /workspace" in changes and "USER agent" in changes
    assert any(c.startswith("ENV PATH=/usr/local/sbin") for c in changes)
    assert f"LABEL tierlock.recipe={BASE_RECIPE.digest()}" in changes


class _FakeClient:
    """Pure-logic double for the lock test: the image exists once one import happened."""

    def __init__(self) -> None:
        self.imports = 0
        self.api = self

    def import_image(self, **kwargs: Any) -> None:
        self.imports += 1

    @property
    def images(self) -> Any:
        client = self

        class _Images:
            def get(self, tag: str) -> None:
                import docker.errors

                if client.imports == 0:
                    raise docker.errors.ImageNotFound(tag)

        return _Images()


def test_concurrent_builds_build_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    runs: list[int] = []
    gate = threading.Event()

    def fake_mmdebstrap(args: list[str], recipe: ImageRecipe, say: Any) -> None:
        gate.wait(0.5)  # hold the lock while the others queue up
        runs.append(1)

    monkeypatch.setattr(images, "_run_mmdebstrap", fake_mmdebstrap)
    monkeypatch.setattr(images.shutil, "which", lambda name: "/usr/bin/" + name)
    client = _FakeClient()
    recipe = dataclasses.replace(BASE_RECIPE, name="locktest")
    results: list[tuple[str, bool]] = []
    threads = [threading.Thread(target=lambda: results.append(
        build_image(client, recipe, progress=lambda _: None))) for _ in range(4)]  # type: ignore[arg-type]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(runs) == 1 and client.imports == 1
    assert sorted(built for _, built in results) == [False, False, False, True]


def test_unknown_recipe_is_one_line_error() -> None:
    with pytest.raises(SandboxError, match="unknown image recipe"):
        build_image(_FakeClient(), "nope")  # type: ignore[arg-type]


@pytest.mark.docker
def test_base_image_built_and_second_build_is_noop(docker_client: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    tag = ensure_image(docker_client)  # builds on first use (about a minute), else finds the tag
    assert tag == BASE_RECIPE.tag

    def must_not_run(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("mmdebstrap ran for an image that exists")

    monkeypatch.setattr(images, "_run_mmdebstrap", must_not_run)
    assert build_image(docker_client, "base") == (tag, False)
    attrs = docker_client.images.get(tag).attrs
    cfg = attrs["Config"]
    assert cfg["User"] == "agent" and cfg["WorkingDir"] == "/workspace"
    assert cfg["Labels"]["tierlock.project"] == "tierlock"
    assert cfg["Labels"]["tierlock.recipe"] == BASE_RECIPE.digest()
    out = docker_client.containers.run(
        tag, ["sh", "-c", "id; ls -ld /workspace | cut -d' ' -f1,3; for c in timeout bash python3 "
                          "curl ps; do command -v $c; done; test -s /etc/ssl/certs/ca-certificates.crt && echo ca"],
        remove=True, network_mode="none", labels={"tierlock.project": "tierlock"}).decode()
    assert "uid=1000(agent) gid=1000(agent)" in out
    assert "drwxr-xr-x agent" in out
    for name in ("timeout", "bash", "python3", "curl", "ps"):
        assert f"/bin/{name}\n" in out
    assert "/usr/bin/timeout\n" in out  # Inspect's tools call it by this path
    assert out.endswith("ca\n")


@pytest.mark.docker
def test_missing_foreign_image_is_never_pulled(docker_client: Any) -> None:
    with pytest.raises(SandboxError, match="never pulls"):
        ensure_image(docker_client, "example.invalid/nothing:1")
