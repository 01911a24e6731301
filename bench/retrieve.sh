#!/usr/bin/env bash
# Retrieve benchmark: C-GET and C-MOVE from Orthanc, DCMTK (getscu, movescu + storescp) vs PACS
# Bridge's retrieve jobs, alternating, in one run. Usage and variables: bench/retrieve.sh --help.
# Everything that opens a socket runs inside a private network namespace that has only
# loopback: the script re-executes itself through scripts/in-netns.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

isolated() { [ "$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}')" = "lo" ]; }

if ! isolated; then
  if [ -n "${PACSBENCH_NETNS_TRIED:-}" ]; then
    echo "retrieve.sh: still not in a private network namespace after scripts/in-netns.sh" >&2
    exit 2
  fi
  export PACSBENCH_NETNS_TRIED=1
  exec "$root/scripts/in-netns.sh" "$0" "$@"
fi
ip link set lo up 2>/dev/null || true

missing=()
for tool in getscu movescu storescp storescu Orthanc python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "retrieve.sh: missing tools: ${missing[*]} (Debian: dcmtk, orthanc, python3)" >&2
  exit 2
fi

# The interpreter itself, not a wrapper that would stay in between and swallow SIGTERM/SIGINT
# meant for the driver (which stops its servers and cleans up).
python="${BENCH_PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python="$(command -v python3)"; fi
fi
export PYTHONDONTWRITEBYTECODE=1
exec "$python" "$here/retrieve.py" --root "$root" "$@"
