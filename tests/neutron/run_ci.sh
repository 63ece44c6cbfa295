#!/usr/bin/env bash
# The Neutron v2.0 client and differential tests, run by .ci/run after `cargo build`:
#  1. openstacksdk and python-openstackclient (pinned, from PyPI, in a venv under target/)
#     drive the real daemon (tests/neutron/test_clients.py);
#  2. the same request sequences go to qswitch and to the real Neutron started by
#     ../shared/tools/neutron-reference/start.sh, and the answers are compared
#     (tests/neutron/differential.py).
# Both run twice: on the embedded SQLite store and on PostgreSQL (a private server started here,
# tests/tools/private_pg.sh). Every process started here is stopped on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/debug/qswitch"
[ -x "$BIN" ] || { echo "missing $BIN: run cargo build first" >&2; exit 1; }

SDK_VERSION=4.22.0
OSC_VERSION=10.5.0
VENV="$TARGET/neutron-clients"
if ! "$VENV/bin/python" -c "import openstack" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "openstacksdk==$SDK_VERSION" "python-openstackclient==$OSC_VERSION"
fi

WORK="$(mktemp -d -t qs-neutron-diff.XXXXXX)"
NPID=""
QPIDS=()
. tests/tools/private_pg.sh
cleanup() {
  for p in "${QPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$NPID" ] && "$REF/stop.sh" "$NPID" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  pg_stop
}
trap cleanup EXIT
pg_start

echo "== openstacksdk $SDK_VERSION and python-openstackclient $OSC_VERSION against qswitch (SQLite)"
"$VENV/bin/python" tests/neutron/test_clients.py "$BIN" "$VENV/bin/openstack"
echo "== openstacksdk $SDK_VERSION and python-openstackclient $OSC_VERSION against qswitch (PostgreSQL)"
CLIENTS_DB="$(pg_database clients)"
QSWITCH_TEST_DB="$CLIENTS_DB" "$VENV/bin/python" tests/neutron/test_clients.py "$BIN" "$VENV/bin/openstack"

REF="${NEUTRON_REFERENCE:-$ROOT/../shared/tools/neutron-reference}"
if [ ! -x "$REF/start.sh" ]; then
  echo "missing $REF/start.sh (the neutron-reference tool beside the clone)" >&2
  exit 1
fi
echo "== starting the real Neutron (neutron-reference; a fresh install takes about 2 minutes)"
export NEUTRON_REF_VENV="${NEUTRON_REF_VENV:-$TARGET/neutron-ref-venv}"
# With Neutron's QoS service plugin and ML2's qos extension driver (a copy of the tool with its
# configuration changed), so that QoS policies and `qos_policy_id` compare too.
cp -r "$REF" "$WORK/neutron-reference"
REF="$WORK/neutron-reference"
sed -i -e 's/^service_plugins =.*/service_plugins = qos/' \
  -e 's/^extension_drivers = port_security$/extension_drivers = port_security,qos/' \
  "$REF/neutron.conf.in"
grep -q '^service_plugins = qos' "$REF/neutron.conf.in"
grep -q '^extension_drivers = port_security,qos' "$REF/neutron.conf.in"
"$REF/start.sh" > "$WORK/ref.env"
cat "$WORK/ref.env"
NURL="$(sed -n 's/^URL=//p' "$WORK/ref.env")"
NPID="$(sed -n 's/^PID=//p' "$WORK/ref.env")"

# Starts `qswitch serve --no-dataplane` on database $1 (log qswitch-$2.log) and sets QURL once it
# answers. Not in a subshell, so that its pid reaches the cleanup.
start_qswitch() {
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$BIN" serve --listen "127.0.0.1:$port" --db "$1" --no-dataplane > "$WORK/qswitch-$2.log" 2>&1 &
  QPIDS+=($!)
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
  QURL="http://127.0.0.1:$port"
}
start_qswitch "$WORK/q.db" sqlite
QURL_SQLITE=$QURL
DIFF_DB="$(pg_database differential)"
start_qswitch "$DIFF_DB" postgres
QURL_PG=$QURL

NVERSION="$(sed -n 's/^VERSION=//p' "$WORK/ref.env")"
echo "== differential: qswitch (SQLite) vs Neutron $NVERSION"
python3 tests/neutron/differential.py "$QURL_SQLITE" "$NURL"
echo "== differential: qswitch (PostgreSQL) vs Neutron $NVERSION"
python3 tests/neutron/differential.py "$QURL_PG" "$NURL"
