# shellcheck shell=bash
# Sourced by the bench/*.sh scripts after they set $here (this directory).
# Sets $root and $bench_name (the script's file name, first word of its messages).
: "${here:?bench/lib.sh: set here before sourcing}"

root="$(cd "$here/.." && pwd)"
bench_name="${0##*/}"

bench_isolated() { [ "$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}')" = "lo" ]; }

# Everything that opens a socket runs inside a private network namespace that has only
# loopback: unless already there, re-executes the script through scripts/in-netns.sh.
# Usage: bench_enter_netns "$@"
bench_enter_netns() {
  if ! bench_isolated; then
    if [ -n "${PACSBENCH_NETNS_TRIED:-}" ]; then
      echo "$bench_name: still not in a private network namespace after scripts/in-netns.sh" >&2
      exit 2
    fi
    export PACSBENCH_NETNS_TRIED=1
    exec "$root/scripts/in-netns.sh" "$0" "$@"
  fi
  ip link set lo up 2>/dev/null || true
}

# Usage: bench_need_tools "Debian packages to suggest" TOOL...
bench_need_tools() {
  local packages="$1" missing=() tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "$bench_name: missing tools: ${missing[*]} (Debian: $packages)" >&2
    exit 2
  fi
}

# Replaces the shell with the Python driver: bench_exec_driver DRIVER.py "$@"
# The interpreter itself, not a wrapper such as a pyenv shim that would stay in between and
# swallow SIGTERM/SIGINT meant for the driver (which stops its processes and cleans up).
bench_exec_driver() {
  local driver="$1" python="${BENCH_PYTHON:-}"
  shift
  if [ -z "$python" ]; then
    python=/usr/bin/python3
    [ -x "$python" ] || python="$(command -v python3)"
  fi
  export PYTHONDONTWRITEBYTECODE=1
  exec "$python" "$here/$driver" --root "$root" "$@"
}
