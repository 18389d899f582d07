"""Tasks for the sandbox provider's tests; they call the sandbox directly, so no model is needed."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.solver import Generate, TaskState, solver
from inspect_ai.util import sandbox


@solver
def run_in_sandbox(cmd: list[str]):
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        result = await sandbox().exec(cmd)
        state.metadata["exec"] = {"code": result.returncode, "stdout": result.stdout,
                                  "stderr": result.stderr}
        return state

    return solve


@task
def whoami() -> Task:
    """Runs `id -u` and `ls /sys/class/net` in the sandbox (policy given with --sandbox)."""
    return Task(dataset=[Sample(input="whoami")],
                solver=run_in_sandbox(["sh", "-c", "id -u; ls /sys/class/net"]))


@task
def sleeper() -> Task:
    """Sleeps in the sandbox (for the crash-and-cleanup test)."""
    return Task(dataset=[Sample(input="sleep")], solver=run_in_sandbox(["sleep", "55"]))
