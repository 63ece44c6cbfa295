#!/usr/bin/env bash
# The Neutron v2.0 client and differential tests, run by .ci/run after `cargo build`:
#  1. openstacksdk and python-openstackclient (pinned, from PyPI, in a venv under target/)
#     drive the real daemon (tests/neutron/test_clients.py);
#  2. the same request sequences go to qswitch and to the real Neutron started by
#     ../shared/tools/neutron-reference/start.sh, and the answers are compared
#     (tests/neutron/differential.py).
# Every process started here is stopped on exit, also on failure.
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

echo "== openstacksdk $SDK_VERSION and python-openstackclient $OSC_VERSION against qswitch"
"$VENV/bin/python" tests/neutron/test_clients.py "$BIN" "$VENV/bin/openstack"

REF="${NEUTRON_REFERENCE:-$ROOT/../shared/tools/neutron-reference}"
if [ ! -x "$REF/start.sh" ]; then
  echo "missing $REF/start.sh (the neutron-reference tool beside the clone)" >&2
  exit 1
fi
WORK="$(mktemp -d -t qs-neutron-diff.XXXXXX)"
NPID=""
QPID=""
cleanup() {
  [ -n "$QPID" ] && kill "$QPID" 2>/dev/null || true
  [ -n "$NPID" ] && "$REF/stop.sh" "$NPID" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

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

QPORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$BIN" serve --listen "127.0.0.1:$QPORT" --db "$WORK/q.db" --no-dataplane > "$WORK/qswitch.log" 2>&1 &
QPID=$!
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$QPORT/" && break
  sleep 0.1
done

echo "== differential: qswitch vs Neutron $(sed -n 's/^VERSION=//p' "$WORK/ref.env")"
python3 tests/neutron/differential.py "http://127.0.0.1:$QPORT" "$NURL"
