"""A command the kernel refuses to execute raises `PermissionError` (Inspect's sandbox contract),
while a command that ran and failed stays an ordinary result, and timeouts and output limits
keep their own errors.

The pure tests pin the classification (`_exec.exec_permission_error`); the Docker test drives
the provider's `exec` in a real tool-restricted sandbox.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from inspect_ai.util import OutputLimitExceededError

from tierlock.sandbox._exec import TIMEOUT_WRAPPER, exec_permission_error
from tierlock.sandbox._images import ensure_image
from tierlock.sandbox._provider import TierlockSandboxEnvironment

POLICY = str(Path(__file__).resolve().parents[1] / "policies" / "tool-restricted.yaml")


def refused(target: str, quotes: tuple[str, str] = ("\u2018", "\u2019")) -> bytes:
    """What GNU `timeout` (the wrapper) prints when it cannot execute `target`."""
    left, right = quotes
    line = f"{TIMEOUT_WRAPPER}: failed to run command {left}{target}{right}: Permission denied\n"
    return line.encode()


@pytest.mark.parametrize("quotes", [("\u2018", "\u2019"), ("'", "'")], ids=["utf8", "ascii"])
def test_the_wrappers_refusal_is_a_permission_error(quotes: tuple[str, str]) -> None:
    err = exec_permission_error(126, b"", refused("/etc/passwd", quotes), ["/etc/passwd", "-x"])
    assert isinstance(err, PermissionError)
    assert (err.errno, err.filename) == (errno.EACCES, "/etc/passwd")


@pytest.mark.parametrize(
    ("code", "stdout", "stderr", "cmd"),
    [
        # a shell that ran and could not execute the script it was given: the command's result
        (126, b"", b"sh: 1: /etc/passwd: Permission denied\n", ["sh", "-c", "/etc/passwd"]),
        # the model's own `timeout` inside its command, naming another program than cmd[0]
        (126, b"", refused("/etc/passwd"), ["/usr/bin/timeout", "5", "/etc/passwd"]),
        # not found is not a permission error (127, as Inspect's other sandboxes return it)
        (127, b"", refused("nope").replace(b"Permission denied", b"No such file or directory"),
         ["nope"]),
        (1, b"", refused("/etc/passwd"), ["/etc/passwd"]),  # another exit code
        (126, b"out\n", refused("/etc/passwd"), ["/etc/passwd"]),  # output: the command ran
        (126, b"", refused("/etc/passwd") + b"more\n", ["/etc/passwd"]),  # more than the line
        (126, b"", refused("/etc/passwd").rstrip(b"\n") + b" x\n", ["/etc/passwd"]),
        (None, b"", refused("/etc/passwd"), ["/etc/passwd"]),
        (126, b"", refused(""), []),
    ],
)
def test_anything_else_stays_a_result(
    code: int | None, stdout: bytes, stderr: bytes, cmd: list[str]
) -> None:
    assert exec_permission_error(code, stdout, stderr, cmd) is None


@pytest.fixture(scope="module")
def box(docker_client: Any) -> Iterator[TierlockSandboxEnvironment]:
    ensure_image(docker_client)

    async def init() -> TierlockSandboxEnvironment:
        envs = await TierlockSandboxEnvironment.sample_init("exec-permission", POLICY, {})
        env = envs["default"]
        assert isinstance(env, TierlockSandboxEnvironment)
        return env

    env = anyio.run(init)
    yield env

    async def done() -> None:
        await TierlockSandboxEnvironment.sample_cleanup(
            "exec-permission", POLICY, {"default": env}, False
        )

    anyio.run(done)


@pytest.mark.docker
def test_exec_of_a_file_that_is_not_executable_raises(box: TierlockSandboxEnvironment) -> None:
    async def check() -> None:
        for target in ("/etc/passwd", "/etc", "./notes.txt"):
            await box.write_file("notes.txt", "#!/bin/sh\necho ran\n")
            with pytest.raises(PermissionError) as info:
                await box.exec([target, "arg"])
            assert info.value.filename == target
        # the same refusal reported by a shell the command started is the command's result
        r = await box.exec(["sh", "-c", "./notes.txt"])
        assert (r.success, r.returncode) == (False, 126)
        assert "Permission denied" in r.stderr
        # executable, it runs; missing, it is exit 127 as before
        await box.exec(["chmod", "+x", "notes.txt"])
        r = await box.exec(["./notes.txt"])
        assert (r.success, r.stdout) == (True, "ran\n")
        r = await box.exec(["no-such-program"])
        assert (r.success, r.returncode) == (False, 127)
        # timeouts and output limits keep their errors
        with pytest.raises(TimeoutError):
            await box.exec(["sleep", "5"], timeout=1)
        with pytest.raises(OutputLimitExceededError):
            await box.exec(["sh", "-c", "head -c 3000000 /dev/zero"])
        await box.exec(["rm", "-f", "notes.txt"])

    anyio.run(check)
