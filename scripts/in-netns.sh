#!/usr/bin/env bash
# Runs a command inside a private network namespace that has only loopback, so that test peers
# binding every interface stay private and no lookup or packet can leave the machine.
# Already isolated (only `lo` present)? Then the command runs as it is. (/sys/class/net is not
# re-mounted by unshare, so the check asks the kernel through `ip`.)
set -euo pipefail
if [ "$(ip -o link show | awk -F': ' '{print $2}')" = "lo" ]; then
  ip link set lo up 2>/dev/null || true
  exec "$@"
fi
if [ "$(id -u)" != 0 ]; then
  echo "in-netns.sh: needs root to create a private network namespace (unshare -n)" >&2
  exit 2
fi
exec unshare -n bash -c 'ip link set lo up && exec "$@"' bash "$@"
