"""The provider's exec/read_file/write_file against Inspect's SandboxEnvironment contract, on the
real daemon, in one sandbox made by `sample_init` outside an eval."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from inspect_ai.util import OutputLimitExceededError
from inspect_ai.util._sandbox.environment import (
    SandboxUnavailableError,
    SandboxUserUnsupportedError,
)

from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._provider import TierlockSandboxEnvironment

pytestmark = pytest.mark.docker

POLICY = str(Path(__file__).resolve().parents[1] / "policies" / "tool-restricted.yaml")
T = TypeVar("T")


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(fn)


@pytest.fixture(scope="module")
def box(docker_client: Any) -> Iterator[TierlockSandboxEnvironment]:
    ensure_image(docker_client)

    async def init() -> TierlockSandboxEnvironment:
        envs = await TierlockSandboxEnvironment.sample_init("api-test", POLICY, {})
        env = envs["default"]
        assert isinstance(env, TierlockSandboxEnvironment)
        return env

    env = run(init)
    yield env

    async def done() -> None:
        await TierlockSandboxEnvironment.sample_cleanup("api-test", POLICY, {"default": env}, False)

    run(done)
    with pytest.raises(Exception, match="No such container"):
        docker_client.containers.get(env.container_id)


def ps(box: TierlockSandboxEnvironment) -> str:
    return run(lambda: box.exec(["ps", "-eo", "args"])).stdout


def test_exec_output_exit_code_stdin_cwd_env(box: TierlockSandboxEnvironment) -> None:
    r = run(lambda: box.exec(["sh", "-c", "echo out; echo err >&2; exit 3"]))
    assert (r.success, r.returncode, r.stdout, r.stderr) == (False, 3, "out\n", "err\n")
    r = run(lambda: box.exec(["cat"], input="hé\r\nllo"))
    assert r.stdout == "hé\r\nllo"
    r = run(lambda: box.exec(["wc", "-c"], input=b"\x00\xff" * 300_000))
    assert r.stdout.strip() == "600000"
    run(lambda: box.exec(["mkdir", "-p", "sub/dir"]))
    assert run(lambda: box.exec(["pwd"])).stdout.strip() == "/workspace"
    assert run(lambda: box.exec(["pwd"], cwd="sub/dir")).stdout.strip() == "/workspace/sub/dir"
    assert run(lambda: box.exec(["pwd"], cwd="/tmp")).stdout.strip() == "/tmp"
    r = run(lambda: box.exec(["sh", "-c", 'echo "$GREETING"'], env={"GREETING": "hi there"}))
    assert r.stdout == "hi there\n"
    r = run(lambda: box.exec(["no-such-program"]))
    assert not r.success and r.returncode == 127


def test_exec_user_is_the_policy_user_only(box: TierlockSandboxEnvironment) -> None:
    # the policy's user (1000, agent) names this sandbox's leased uid: 1000 + its slot
    uid = box.policy.process.user.split(":")[0]
    assert 1000 <= int(uid) < 1000 + 512
    assert run(lambda: box.exec(["id", "-u"], user="1000")).stdout.strip() == uid
    assert run(lambda: box.exec(["id", "-u"], user="agent")).stdout.strip() == uid
    assert run(lambda: box.exec(["id", "-u"])).stdout.strip() == uid
    with pytest.raises(SandboxUserUnsupportedError):
        run(lambda: box.exec(["id", "-u"], user="root"))


def test_timeout_kills_the_process(box: TierlockSandboxEnvironment) -> None:
    with pytest.raises(TimeoutError):
        run(lambda: box.exec(["sh", "-c", "sleep 37; echo late"], timeout=1))
    assert "sleep 37" not in ps(box)


def test_output_limit_raises_and_kills(box: TierlockSandboxEnvironment) -> None:
    with pytest.raises(OutputLimitExceededError) as info:
        run(lambda: box.exec(["sh", "-c", "while :; do echo yyyyyyyyyyyyyyyyyyyy; done"]))
    assert info.value.truncated_output and len(info.value.truncated_output) <= 1024**2
    assert "while :" not in ps(box)


def test_files_text_binary_large(box: TierlockSandboxEnvironment) -> None:
    run(lambda: box.write_file("deep/er/note.txt", "line1\r\nline2\n"))
    assert run(lambda: box.read_file("deep/er/note.txt")) == "line1\r\nline2\n"
    assert run(lambda: box.read_file("/workspace/deep/er/note.txt")) == "line1\r\nline2\n"
    blob = bytes(range(256)) * 4
    run(lambda: box.write_file("/tmp/blob.bin", blob))
    assert run(lambda: box.read_file("/tmp/blob.bin", text=False)) == blob
    big = os.urandom(20 * 1024**2)
    run(lambda: box.write_file("big.bin", big))
    assert run(lambda: box.read_file("big.bin", text=False)) == big
    owner = run(lambda: box.exec(["stat", "-c", "%u", "big.bin"])).stdout.strip()
    uid = run(lambda: box.exec(["id", "-u"])).stdout.strip()  # the sample's leased uid
    assert owner == uid and int(uid) >= 1000
    run(lambda: box.exec(["rm", "big.bin"]))


def test_file_errors(box: TierlockSandboxEnvironment) -> None:
    with pytest.raises(FileNotFoundError):
        run(lambda: box.read_file("missing.txt"))
    with pytest.raises(IsADirectoryError):
        run(lambda: box.read_file("/workspace"))
    with pytest.raises(IsADirectoryError):
        run(lambda: box.write_file("/tmp", "x"))
    with pytest.raises(PermissionError):
        run(lambda: box.write_file("/etc/evil.conf", "x"))
    with pytest.raises(PermissionError):
        run(lambda: box.write_file("/usr/new/dir/file", "x"))
    with pytest.raises(PermissionError):
        run(lambda: box.read_file("/etc/shadow"))


def test_calls_do_not_block_the_event_loop(box: TierlockSandboxEnvironment) -> None:
    """One exec waits for a file that a second, concurrent call writes: if the first blocked the
    event loop, the second could never run and the first would time out."""
    run(lambda: box.exec(["rm", "-f", "/tmp/go"]))

    async def both() -> str:
        result: dict[str, str] = {}

        async def waiter() -> None:
            r = await box.exec(["sh", "-c", "while [ ! -f /tmp/go ]; do sleep 0.05; done; echo seen"],
                               timeout=30)
            result["w"] = r.stdout

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(0.2)
            await box.write_file("/tmp/go", "go")
        return result["w"]

    assert run(both) == "seen\n"


def test_exec_in_removed_container_is_unavailable(docker_client: Any) -> None:
    async def scenario() -> None:
        envs = await TierlockSandboxEnvironment.sample_init("api-test", POLICY, {})
        env = envs["default"]
        assert isinstance(env, TierlockSandboxEnvironment)
        await TierlockSandboxEnvironment.sample_cleanup("api-test", POLICY, envs, False)
        with pytest.raises(SandboxUnavailableError):
            await env.exec(["true"])

    run(scenario)


DATA = Path(__file__).resolve().parent / "data" / "sandbox"


def test_seccomp_profile_file_is_applied_and_conforms(docker_client: Any) -> None:
    """A profile file (path relative to its policy) reaches Docker intact: the conformance check
    accepts the stored profile, and the profile's refusal of mkdir is in force."""
    policy = str(DATA / "seccomp-profile.yaml")

    async def scenario() -> tuple[Any, Any]:
        envs = await TierlockSandboxEnvironment.sample_init("api-test", policy, {})
        try:
            env = envs["default"]
            return (await env.exec(["mkdir", "/workspace/d"]),
                    await env.exec(["sh", "-c", "echo ok > /workspace/f && cat /workspace/f"]))
        finally:
            await TierlockSandboxEnvironment.sample_cleanup("api-test", policy, envs, False)

    mkdir, write = run(scenario)
    assert not mkdir.success and "Operation not permitted" in mkdir.stderr
    assert write.stdout == "ok\n"


def test_open_network_conforms_on_the_bridge(docker_client: Any) -> None:
    policy = str(DATA / "open-network.yaml")

    async def scenario() -> str:
        envs = await TierlockSandboxEnvironment.sample_init("api-test", policy, {})
        try:
            return (await envs["default"].exec(["ls", "/sys/class/net"])).stdout
        finally:
            await TierlockSandboxEnvironment.sample_cleanup("api-test", policy, envs, False)

    assert run(scenario).split() == ["eth0", "lo"]
