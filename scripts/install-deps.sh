#!/usr/bin/env bash
# Installs the Debian packages PACS Bridge needs to build, run and test. Idempotent: packages
# already present are skipped and `apt-get update` runs at most once per call.
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config clang-14 git
  libdcmtk-dev libcpp-httplib-dev zlib1g-dev libcurl4-openssl-dev libssl-dev nlohmann-json3-dev
  libsoci-dev libsoci-sqlite3-4.0 libsoci-postgresql4.0 libpq-dev libboost-dev libsqlite3-dev
  libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev libexpected-dev libgtest-dev
  libhowardhinnant-date-dev tzdata libcsv-dev libargon2-dev
  libre2-dev  # routing rules on untrusted header values: linear-time regular expressions
  libarchive-dev  # series downloads as ZIP, streamed
  python3 python3-yaml)  # python3-yaml: docs/openapi.yaml becomes the served JSON at configure time
# Peers and tools used by the end-to-end tests and benchmarks.
TEST_PKGS=(dcmtk orthanc orthanc-dicomweb curl python3 iproute2 util-linux procps openssl
  orthanc-postgresql  # bench/scale.sh: Orthanc on PostgreSQL beside us, the anchor of ingest at scale
  chromium  # chromium: the web UI's browser tests (driven by playwright-core from npm)
  python3-prometheus-client  # its parser reads GET /metrics in the metrics test
  postgresql-15  # the PostgreSQL index: tests run initdb and pg_ctl in temp directories (no service)
  sqlite3  # the backup test makes SQLite's online backup as docs/operations.md tells admins to
  help2man lintian  # make package: the man page from --help-all; the package test's lintian run
  clang-format-14 clang-tidy-14)  # scripts/lint.sh: the project's format and static checks

want=("${BUILD_PKGS[@]}")
[ "${1:-}" = "--test" ] && want+=("${TEST_PKGS[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm build the web UI (ui/, from a committed lock file). A machine may have them
# from another source already (then the Debian packages are not wanted: they would conflict).
if ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "missing packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Orthanc's package would start a system-wide daemon; the tests start their own instances.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
fi
trap '[ $made_policy = 1 ] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
