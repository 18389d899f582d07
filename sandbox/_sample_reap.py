"""The model's leftover processes in a sample's sandbox: killed when its last command returns
(`process.background: forbid`), or listed in the transcript (`allow`); what the sample's setup
leaves running before the model first generates is the operator's and is kept."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ._docker import run_sync
from ._escape import escape_bytes
from ._evidence import ProcessSurvivors
from ._exec import run_exec
from ._reaper import INSIDE_COMMAND, kill_from_host, list_from_host, snapshot
from ._sample_context import model_has_acted, record_evidence
from ._translate import user_ids

if TYPE_CHECKING:
    from ._sample_box import SampleBox


async def reap(box: SampleBox, final: bool = False) -> None:
    """Kill every process of the model's uid left in the sandbox (see `_reaper`); under
    `background: allow`, list them in the transcript instead (`final`: list, then kill)."""
    ids = user_ids(box.policy.process.user)
    if ids is None or box.removed:
        return
    if box.policy.process.background == "allow":  # may keep running: on the record instead
        listed = await run_sync(list_from_host, box.init_pid, ids[0]) if box.init_pid else None
        if listed is not None and listed[0]:
            record_evidence(ProcessSurvivors(
                container=box.name, processes=[escape_bytes(c)[0] for c in listed[0]],
                more=listed[1],
            ))  # fmt: skip
        if not final:
            return
    if not final and not box.model_acted:
        box.model_acted = model_has_acted()
        if not box.model_acted:  # setup and preparation: what keeps running is the operator's
            if box.init_pid:
                box.operator = frozenset(await run_sync(snapshot, box.init_pid, ids[0]) or ())
            return
    killed = (
        await run_sync(kill_from_host, box.init_pid, ids[0], box.operator)
        if box.init_pid
        else None
    )
    if killed is None:  # the host cannot see the container's processes: from inside instead
        with contextlib.suppress(Exception):
            await run_sync(
                run_exec, box.client.api, box.container_id, INSIDE_COMMAND,
                user=box.policy.process.user, limit=4096, deadline=15,
            )  # fmt: skip
    elif killed:
        box.counters.survivors_killed += killed
