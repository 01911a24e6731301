#!/usr/bin/env bash
# The Debian package (make package, docs/operations.md) as an installer meets it, run by
# `make test` after the release build:
#   - its control data: the name, the dependencies dpkg-shlibdeps found, the configuration as a
#     conffile, maintainer scripts that parse;
#   - its files: binary, unit, configuration, man page, documentation, copyright, changelog;
#   - lintian finds no error and no warning;
#   - the systemd unit: systemd-analyze verifies it without a complaint, and rates its exposure
#     (systemd-analyze security) at most 4.0 of 10 ("OK");
#   - the man page renders and documents every command;
#   - the packaged command line with the packaged configuration, unpacked into a clean root and
#     run as an unprivileged user (nobody) with an empty /var/lib/pacsbridge in a private mount
#     and network namespace, with JOURNAL_STREAM set as systemd sets it: /api/health and
#     /api/ready answer, the first admin password (in its file, not in the output) opens the
#     API, and SIGTERM ends it with status 0.
# Not done here (no systemd as PID 1, no second machine): installing with dpkg into the real
# root (the postinst's adduser and systemctl calls) and starting the unit under systemd.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "package-test: $*" >&2
  exit 1
}

log=$(mktemp /tmp/pacsbridge-package-make.XXXXXX)
make --no-print-directory package >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; fail "make package failed"; }
rm -f "$log"
deb=build/release/pacsbridge_$(sed -n 's/^project(pacsbridge VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)_amd64.deb
[[ -f $deb ]] || fail "no package at $deb"
work=$(mktemp -d /tmp/pacsbridge-package.XXXXXX)
pid=""
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Control data.
[[ $(dpkg-deb -f "$deb" Package) == pacsbridge ]] || fail "Package is not pacsbridge"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in adduser libdcmtk17 libsoci-core4.0 libsoci-sqlite3-4.0 libcurl4 libspdlog1.10-fmt9 libargon2-1; do
  [[ $depends == *"$lib"* ]] || fail "Depends lacks $lib: $depends"
done
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/pacsbridge/pacsbridge.toml "$work/control/conffiles" || fail "the configuration is not a conffile"
for s in postinst prerm postrm; do
  sh -n "$work/control/$s" || fail "$s does not parse"
done

# Files.
dpkg-deb -c "$deb" >"$work/contents"
for f in ./usr/bin/pacsbridge ./lib/systemd/system/pacsbridge.service ./etc/pacsbridge/pacsbridge.toml \
  ./usr/share/man/man1/pacsbridge.1.gz ./usr/share/doc/pacsbridge/operations.md \
  ./usr/share/doc/pacsbridge/copyright ./usr/share/doc/pacsbridge/changelog.gz; do
  grep -q " $f\$" "$work/contents" || fail "the package lacks $f"
done

# lintian: nothing at all (it warns once that it runs as root: that line is not about us).
lintian --tag-display-limit 0 "$deb" 2>&1 | grep -v "running with root privileges" >"$work/lintian" || true
[[ ! -s $work/lintian ]] || fail "lintian: $(cat "$work/lintian")"

# Unpacked into a clean root.
root=$work/root
dpkg-deb -x "$deb" "$root"
chmod 0755 "$work"
# As the postinst leaves it: readable by root and the service's group only.
chown root:nogroup "$root/etc/pacsbridge/pacsbridge.toml"
chmod 0640 "$root/etc/pacsbridge/pacsbridge.toml"
unit=$work/pacsbridge.service
sed "s|/usr/bin/pacsbridge|$root/usr/bin/pacsbridge|" "$root/lib/systemd/system/pacsbridge.service" >"$unit"
verify=$(systemd-analyze verify --man=no "$unit" 2>&1) || fail "systemd-analyze verify: $verify"
[[ -z $verify ]] || fail "systemd-analyze verify: $verify"
exposure=$(systemd-analyze security --offline=true "$unit" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[[ -n $exposure ]] || fail "systemd-analyze security gave no exposure level"
awk -v e="$exposure" 'BEGIN { exit !(e <= 4.0) }' || fail "the unit's exposure is $exposure, above 4.0"

man -P cat -l "$root/usr/share/man/man1/pacsbridge.1.gz" >"$work/man" 2>/dev/null || fail "the man page does not render"
for cmd in serve echo nodes find retrieve send jobs receivers; do
  grep -qE "^ {7}$cmd\$|Subcommands: $cmd\$" "$work/man" || fail "the man page lacks the command $cmd"
done

# The service's command line with the packaged configuration, as the unit runs it (another
# user than root, JOURNAL_STREAM set), in namespaces of its own.
cat >"$work/run.sh" <<'SCRIPT'
set -euo pipefail
root=$1 out=$2
ip link set lo up
mount -t tmpfs tmpfs /var/lib
mkdir -m 0750 /var/lib/pacsbridge
chown nobody:nogroup /var/lib/pacsbridge
cd /var/lib/pacsbridge
JOURNAL_STREAM=8:4242 setpriv --reuid=nobody --regid=nogroup --clear-groups \
  "$root/usr/bin/pacsbridge" serve --config "$root/etc/pacsbridge/pacsbridge.toml" >"$out/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:8080/api/health >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$out/serve.log"; exit 1; }
  sleep 0.1
done
curl -sf http://127.0.0.1:8080/api/health | grep -q '"ok"' || { echo "health"; cat "$out/serve.log"; exit 1; }
curl -sf http://127.0.0.1:8080/api/ready | grep -q '"ready"' || { echo "ready"; cat "$out/serve.log"; exit 1; }
password=$(cat /var/lib/pacsbridge/initial-admin-password)
[[ $(stat -c %U:%a /var/lib/pacsbridge/initial-admin-password) == nobody:600 ]] || { echo "password file mode"; exit 1; }
curl -sf -u "admin:$password" http://127.0.0.1:8080/api/nodes >/dev/null || { echo "log-in"; exit 1; }
if grep -qF "$password" "$out/serve.log"; then echo "the password is in the output"; exit 1; fi
grep -q "initial-admin-password" "$out/serve.log" || { echo "no word of the password file"; exit 1; }
kill -TERM "$pid"
wait "$pid" || { echo "exit status $? after SIGTERM"; cat "$out/serve.log"; exit 1; }
SCRIPT
unshare --mount --net bash "$work/run.sh" "$root" "$work" || fail "the packaged service: $(tail -20 "$work/serve.log" 2>/dev/null)"
echo "package-test: $deb: control, files, lintian, unit (exposure $exposure), man page, packaged service: ok"
