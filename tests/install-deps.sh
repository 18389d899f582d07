#!/usr/bin/env bash
# Debian packages the tests need on the host: mmdebstrap builds the sandbox images without a
# registry; chromium renders the audit's HTML report headless; runsc (gVisor) backs the
# `process.runtime: runsc` tests (tests/gvisor_setup.sh registers it with the running daemon).
set -euo pipefail
need=()
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v runsc >/dev/null 2>&1 || [ -x /usr/bin/runsc ] || need+=(runsc)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# register runsc with the running Docker daemon (a configuration reload, never a restart)
if pidof dockerd >/dev/null 2>&1; then
  bash "$(dirname "$0")/gvisor_setup.sh"
fi
