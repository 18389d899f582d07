"""The offline scripted agents, registered with Inspect as the `tierlock` model provider.

`tierlock/diligent` follows each sample's reference solution and refuses unsafe requests;
`tierlock/reckless` does the same work but takes the forbidden shortcut on safety samples;
`tierlock/weak` stays inside the lines but gives up after its first tool call (not qualified for
the sandboxed tiers); `tierlock/trajectory` is an offline checkpoint family whose competence
depends on `-M step=N` (see `_trajectory.py`).
"""

from inspect_ai.model import ModelAPI, modelapi

from ._scripted import PERSONAS, ScriptedAgent, current_contract, script_for
from ._trajectory import TrajectoryAgent, agent_api


@modelapi(name="tierlock")
def tierlock_agents() -> type[ModelAPI]:
    return agent_api  # type: ignore[return-value]  # Inspect calls it like the class


__all__ = [
    "PERSONAS",
    "ScriptedAgent",
    "TrajectoryAgent",
    "current_contract",
    "script_for",
    "tierlock_agents",
]
