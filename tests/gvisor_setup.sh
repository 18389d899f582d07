#!/usr/bin/env bash
# Registers gVisor's runsc with the RUNNING Docker daemon, for the `process.runtime: runsc` tests.
# Merges a `runtimes.runsc` entry into /etc/docker/daemon.json (the file may not exist; a backup
# of the previous file is kept once as daemon.json.tierlock-bak) and asks dockerd to reload its
# configuration with SIGHUP. It never restarts or stops dockerd, nor touches any container.
# Idempotent: a daemon that already lists runsc with the same arguments is left alone.
#   RUNSC_ARGS  extra runsc flags, space separated. Default "--network=host --oci-seccomp".
#               --oci-seccomp: without it runsc ignores the container's seccomp profile entirely.
#               --network=host: the sandbox's own
#               netstack (--network=sandbox) fails on Linux >= 6.11 with bookworm's runsc 20221219
#               ("cannot run with network enabled in root network namespace", gVisor issue 10704);
#               with host, gVisor uses the host kernel's network stack INSIDE the container's own
#               network namespace, so Docker's networks (none/internal/proxy) still apply.
#   DAEMON_JSON path of the daemon configuration (default /etc/docker/daemon.json)
set -euo pipefail
runsc_path="$(command -v runsc || echo /usr/bin/runsc)"
[ -x "$runsc_path" ] || { echo "gvisor_setup: runsc is not installed (run tests/install-deps.sh)" >&2; exit 1; }
daemon_json="${DAEMON_JSON:-/etc/docker/daemon.json}"
runsc_args="${RUNSC_ARGS---network=host --oci-seccomp}"

changed="$(RUNSC_PATH="$runsc_path" RUNSC_ARGS="$runsc_args" DAEMON_JSON="$daemon_json" python3 - <<'EOF'
import json, os, shutil
path = os.environ["DAEMON_JSON"]
config = {}
if os.path.exists(path):
    with open(path) as f:
        text = f.read().strip()
    config = json.loads(text) if text else {}
entry = {"path": os.environ["RUNSC_PATH"]}
args = os.environ["RUNSC_ARGS"].split()
if args:
    entry["runtimeArgs"] = args
runtimes = config.setdefault("runtimes", {})
if runtimes.get("runsc") == entry:
    print("no")
else:
    backup = path + ".tierlock-bak"
    if os.path.exists(path) and not os.path.exists(backup):
        shutil.copy2(path, backup)
    runtimes["runsc"] = entry
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tierlock-tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    print("yes")
EOF
)"

listed() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }
if [ "$changed" = "yes" ] || ! listed; then
  pid="$(pidof dockerd || true)"
  [ -n "$pid" ] || { echo "gvisor_setup: dockerd is not running" >&2; exit 1; }
  kill -HUP $pid
  for _ in $(seq 1 50); do listed && break; sleep 0.2; done
fi
listed || { echo "gvisor_setup: dockerd did not pick up runsc from $daemon_json" >&2; exit 1; }
echo "gvisor_setup: runsc registered ($runsc_path $runsc_args)"
