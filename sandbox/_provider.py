"""The `tierlock` Inspect sandbox provider: one container per sample, exactly as its policy says.

Use `Task(sandbox=("tierlock", "policies/x.yaml"))`, `--sandbox tierlock:policies/x.yaml`, or
`("tierlock", SandboxConfig(policy=..., services={...}))` for task sidecars.

Lifecycle of a sample (all Docker calls run in worker threads; the event loop never blocks):

1. `task_init`: load and lint the policy (`_sandbox_policy`; lint errors refuse to run), check
   what the Docker host can give it (`_host_check`: CPU count, runtimes...), remove leftovers of
   dead runs, build the image on first use; with `TIERLOCK_WARM_POOL` > 0, start the config's
   warm pool (`_warm_pool`: policies without a per-sample network or sidecars only).
2. `sample_init`: install the policy's `tools.approval` in front of the sample's tool approver
   (`_approval`), per-sample network (`internal`/`allowlist`, by `_network`), create the container
   from `_translate.container_settings`, read it back and check it against the policy
   (`_conformance`), start it, check the kernel's view of its PID 1 and of a command run as the
   model's are (`_sample_conform`), read back the effective limits (cgroups, tmpfs sizes: `_effective`), and record a
   `ConformanceRecord` in the transcript. A mismatch raises `SandboxError`: the sample ends before
   the model's first command. Anything created is removed on any failure (Inspect does not call
   `sample_cleanup` when `sample_init` raises).
   With a warm pool the sample takes a container made and checked the same way ahead of it,
   re-checked at the take (still running, unchanged, the same policy digest, seccomp profile and
   image; else discarded), renamed for the sample, and records its `ConformanceRecord` marked
   `pooled` with `checked_at`; the pool refills in the background within `max_sandboxes` and
   the samples still to come. A pooled container serves one sample and is removed after it.
   PID 1 (the keepalive) runs as `KEEPALIVE_USER`, a uid the model's cannot signal, so the model
   cannot stop its own container (and its cgroup evidence); the kernel check reads both PID 1 and
   a command exec'd as the policy's user.
3. `exec`/`read_file`/`write_file` through `docker exec` (`_running_sandbox`, see `_exec`), always
   explicitly as the policy's user (never the container's default user, which is the keepalive's);
   what a command leaves running is killed or listed (`_sample_reap`).
4. `sample_cleanup`: record a `ContainerEvidence` (and the network's evidence) in the transcript,
   then remove the container and the network. Events logged here land in the sample's `.eval`
   transcript: Inspect runs sample cleanup inside the sample's transcript context, before the
   sample is written (the tests read them back from the `.eval` file: test_sandbox_containment).
5. `task_cleanup` empties the warm pool (always, also on error, Ctrl-C and SIGTERM) and retries
   removals that failed; at process exit any sandbox still tracked, pooled ones included, is
   removed (`_warm_pool`, `_sample_box`); leftovers of crashed processes are found by label
   (`tierlock cleanup`, next start).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import TYPE_CHECKING, Any

import anyio
from inspect_ai.util import SandboxEnvironment, SandboxEnvironmentConfigType, sandboxenv
from pydantic import BaseModel

from . import _labels
from ._approval import apply_approval, read_approval
from ._cleanup import cleanup as cleanup_objects
from ._cleanup import remove_unused_egress
from ._config import SandboxConfig, require_fit
from ._docker import create_container, get_client_async, run_sync
from ._errors import display_path
from ._host_check import engine_refusal, require_host_fit
from ._images import ensure_image_async
from ._running_sandbox import RunningSandbox
from ._sample_box import SampleBox, as_user, lease_for, remove_box, retry_removals, track
from ._sample_conform import conform
from ._sample_context import sample_key
from ._sandbox_policy import LoadedSandboxPolicy, load_sandbox_policy, sandbox_config
from ._signals import install_termination_handler
from ._translate import container_settings
from ._tripwire import install_tripwire, tripwire_for
from ._warm_pool import drain, pool_key, pool_key_for, release, reserve, start_pool, take_for_sample
from ._warm_pool_demand import pool_size, poolable, set_default_limit

if TYPE_CHECKING:
    import docker

    from ._network import SampleNetwork


@sandboxenv(name="tierlock")
class TierlockSandboxEnvironment(RunningSandbox):
    """The `tierlock` sandbox provider: one policy-configured container per sample."""

    @classmethod
    def config_files(cls) -> list[str]:
        return []

    @classmethod
    def default_concurrency(cls) -> int | None:
        return 2 * (os.cpu_count() or 1)

    @classmethod
    def config_deserialize(cls, config: dict[str, Any]) -> BaseModel:
        return SandboxConfig.model_validate(config)

    @classmethod
    async def task_init(cls, task_name: str, config: SandboxEnvironmentConfigType | None) -> None:
        install_termination_handler()  # SIGTERM/SIGHUP end the eval like Ctrl-C
        cfg = sandbox_config(config)
        loaded = await run_sync(load_sandbox_policy, cfg.policy)
        require_fit(task_name, cfg, loaded.policy, display_path(loaded.path))  # no sidecar dropped
        client = await get_client_async()
        await run_sync(require_host_fit, loaded.path, client)  # what Docker would refuse
        await run_sync(cleanup_objects, client)  # leftovers of dead runs
        image = await ensure_image_async(client, loaded.policy.image)
        set_default_limit(cls.default_concurrency() or 1)
        if pool_size() and poolable(loaded.policy.network.mode, bool(cfg.services)):
            start_pool(pool_key(loaded.path, cfg), client, loaded, image, pool_size(), None)

    @classmethod
    async def sample_init(
        cls, task_name: str, config: SandboxEnvironmentConfigType | None, metadata: dict[str, str]
    ) -> dict[str, SandboxEnvironment]:
        cfg = sandbox_config(config)
        loaded = await run_sync(load_sandbox_policy, cfg.policy)
        if loaded.approval is not None:  # the sample's tool calls run in this context
            await run_sync(read_approval, loaded.approval)  # (file reads off the event loop)
            apply_approval(loaded.approval)
        tripwire = tripwire_for(loaded.policy)
        install_tripwire(tripwire)  # in front of every approver: sees each call before it runs
        client = await get_client_async()
        image = await ensure_image_async(client, loaded.policy.image)
        sample = sample_key()
        if cfg.services:  # never pooled: the sample's network and sidecars are its own
            box = None
            reserve()
        else:  # None: the sample makes its own, already counted in use
            key = pool_key(loaded.path, cfg)
            box = await take_for_sample(key, client, loaded, image, task_name, sample)
        if box is None:
            box = await cls._new_box(task_name, cfg, client, loaded, image, sample)
        box.tripwire = tripwire.attach(client, box.container_id)
        return {"default": cls(box)}

    @classmethod
    async def _new_box(
        cls,
        task_name: str,
        cfg: SandboxConfig,
        client: docker.DockerClient,
        loaded: LoadedSandboxPolicy,
        image: str,
        sample: str,
    ) -> SampleBox:
        """The sample's own container (and network), made, checked and recorded now (counted
        in use by the caller: `reserve`, `take_for_sample`; released when removed)."""
        labels = _labels.object_labels(
            role="default",
            task=task_name,
            sample=sample,
            policy_hash=loaded.policy.digest(),
            policy_name=loaded.policy.name,
        )
        lease = lease_for(loaded.policy)
        policy = as_user(loaded.policy, lease)
        name = f"tierlock-{_labels.run_id()}-{_labels.sanitize(sample, 40)}-{uuid.uuid4().hex[:6]}"
        box: SampleBox | None = None
        network: SampleNetwork | None = None
        try:
            if policy.network.mode in ("internal", "allowlist"):
                from ._network import create_sample_network

                network = await create_sample_network(
                    client, policy, dict(cfg.services), labels, policy_dir=loaded.policy_dir
                )
            settings = container_settings(
                policy,
                image=image,
                labels=labels,
                name=name,
                network=network.network if network else None,
                extra_env=network.env if network else None,
                policy_dir=loaded.policy_dir,
                sandbox=True,
            )
            try:
                container = await run_sync(create_container, client, settings)
            except Exception as e:
                raise engine_refusal(e, loaded.path, "create") or e from None
            track(container.id, True)
            box = SampleBox(client, container.id, name, loaded, policy, lease, network)
            box.on_removed = release
            await conform(box, image, container.attrs)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if box is not None:
                    await remove_box(box)
                else:
                    release()
                    lease.release()
                    if network is not None:
                        await network.teardown()
            raise
        return box

    @classmethod
    async def sample_cleanup(
        cls,
        task_name: str,
        config: SandboxEnvironmentConfigType | None,
        environments: dict[str, SandboxEnvironment],
        interrupted: bool,
    ) -> None:
        for env in environments.values():
            if isinstance(env, TierlockSandboxEnvironment):
                with anyio.CancelScope(shield=True):
                    await env._finish()

    @classmethod
    async def task_cleanup(
        cls, task_name: str, config: SandboxEnvironmentConfigType | None, cleanup: bool
    ) -> None:
        """Samples remove their own objects (even when interrupted); retry removals that failed,
        and drop the shared egress network once nothing uses it (the proxy recreates it on
        demand). Nothing else is touched: other evals may still be running samples."""
        await drain(pool_key_for(sandbox_config(config)))  # unused pooled ones, whatever `cleanup`
        if not cleanup:
            return
        client = await get_client_async()
        await retry_removals(client)
        with contextlib.suppress(Exception):
            await run_sync(remove_unused_egress, client)

    @classmethod
    async def cli_cleanup(cls, id: str | None) -> None:
        client = await get_client_async()
        if id is None:
            await run_sync(cleanup_objects, client)
        else:
            await run_sync(client.api.remove_container, id, force=True, v=True)
