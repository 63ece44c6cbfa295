#!/usr/bin/env python3
"""Unmodified OpenStack clients against the real qswitch daemon (Neutron v2.0, no Keystone).

Drives networks, subnets and ports through openstacksdk (`auth_type='none'` with the
unversioned root as the endpoint, the `network_endpoint_override` form, and `admin_token`)
and through the `openstack` CLI (`--os-auth-type none --os-endpoint ...`): create, list,
show, update, delete, pagination with a small limit, name lookups, and the 409 of deleting
a network that still has ports.

Usage: test_clients.py QSWITCH_BINARY [OPENSTACK_CLI]
Starts `QSWITCH_BINARY serve --no-dataplane` on a free loopback port with a temporary
SQLite database (or the empty database at the URL in QSWITCH_TEST_DB, for example a
PostgreSQL one) and stops it at the end. Prints one line per check and a final
`N passed, N failed`; exits non-zero on any failure.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

import openstack
import openstack.exceptions

RESULTS = {"passed": 0, "failed": 0}


def check(name):
    """Runs the decorated function as one check, counting and printing its result."""

    def run(fn):
        try:
            fn()
        except Exception:  # noqa: BLE001 - every failure is reported, then counted
            RESULTS["failed"] += 1
            print(f"FAIL {name}")
            traceback.print_exc(file=sys.stdout)
        else:
            RESULTS["passed"] += 1
            print(f"ok   {name}")
        return fn

    return run


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daemon(binary, workdir):
    port = free_port()
    log = open(os.path.join(workdir, "qswitch.log"), "w")
    db = os.environ.get("QSWITCH_TEST_DB") or os.path.join(workdir, "q.db")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--db", db, "--no-dataplane"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/", timeout=1).read()
            return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"qswitch did not answer on {url}; see {log.name}")


def main():
    binary = sys.argv[1]
    cli = sys.argv[2] if len(sys.argv) > 2 else shutil.which("openstack")
    workdir = tempfile.mkdtemp(prefix="qs-neutron-")
    proc, url = start_daemon(binary, workdir)
    try:
        run_checks(url, cli)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


def run_checks(url, cli):
    conn = openstack.connect(auth_type="none", auth={"endpoint": url},
                             load_yaml_config=False, load_envvars=False)
    net = {}

    @check("sdk: create network, subnet and ports")
    def _():
        n = conn.network.create_network(name="sdk-net")
        assert n.status == "ACTIVE" and n.is_admin_state_up, n
        net["id"] = n.id
        s = conn.network.create_subnet(network_id=n.id, cidr="198.18.10.0/24", ip_version=4,
                                       name="sdk-sub")
        assert s.gateway_ip == "198.18.10.1", s
        assert s.allocation_pools == [{"start": "198.18.10.2", "end": "198.18.10.254"}], s
        p1 = conn.network.create_port(network_id=n.id, name="p1")
        assert p1.mac_address.startswith("fa:16:3e:"), p1
        assert p1.fixed_ips == [{"subnet_id": s.id, "ip_address": "198.18.10.2"}], p1.fixed_ips
        assert p1.status == "DOWN" and p1.is_port_security_enabled
        p2 = conn.network.create_port(network_id=n.id, name="p2",
                                      fixed_ips=[{"ip_address": "198.18.10.50"}])
        assert p2.fixed_ips[0]["ip_address"] == "198.18.10.50", p2.fixed_ips
        net["ports"] = [p1.id, p2.id]
        net["subnet"] = s.id

    @check("sdk: show, list and filter")
    def _():
        n = conn.network.get_network(net["id"])
        assert n.name == "sdk-net" and n.subnet_ids == [net["subnet"]], n
        ports = list(conn.network.ports(network_id=net["id"]))
        assert sorted(p.name for p in ports) == ["p1", "p2"], ports
        assert [s.id for s in conn.network.subnets(network_id=net["id"])] == [net["subnet"]]

    @check("sdk: update port and network")
    def _():
        p = conn.network.update_port(net["ports"][0], name="p1-renamed",
                                     device_owner="compute:nova", device_id="dev-1")
        assert (p.name, p.device_owner, p.device_id) == ("p1-renamed", "compute:nova", "dev-1")
        n = conn.network.update_network(net["id"], description="updated")
        assert n.description == "updated"

    @check("sdk: pagination with limit=1 returns every network once")
    def _():
        for name in ("page-a", "page-b", "page-c"):
            conn.network.create_network(name=name)
        names = [n.name for n in conn.network.networks(limit=1)]
        assert sorted(names) == ["page-a", "page-b", "page-c", "sdk-net"], names

    @check("sdk: name lookup (find_network) and 404 on a missing one")
    def _():
        assert conn.network.find_network("page-b").name == "page-b"
        assert conn.network.find_network("no-such-net") is None
        try:
            conn.network.get_network("11111111-1111-1111-1111-111111111111")
        except openstack.exceptions.ResourceNotFound:
            pass
        else:
            raise AssertionError("expected ResourceNotFound")

    @check("sdk: deleting a network with ports is a 409 ConflictException")
    def _():
        try:
            conn.network.delete_network(net["id"])
        except openstack.exceptions.ConflictException as e:
            assert e.status_code == 409
            assert "still in use" in str(e), str(e)
        else:
            raise AssertionError("expected ConflictException")

    @check("sdk: duplicate MAC is 409; IP in use is 409")
    def _():
        mac = conn.network.get_port(net["ports"][0]).mac_address
        for kwargs in ({"mac_address": mac}, {"fixed_ips": [{"ip_address": "198.18.10.50"}]}):
            try:
                conn.network.create_port(network_id=net["id"], **kwargs)
            except openstack.exceptions.ConflictException:
                pass
            else:
                raise AssertionError(f"expected 409 for {kwargs}")

    @check("sdk: delete ports, subnet and networks")
    def _():
        for p in net["ports"]:
            conn.network.delete_port(p)
        conn.network.delete_subnet(net["subnet"])
        for n in list(conn.network.networks()):
            conn.network.delete_network(n)
        assert list(conn.network.networks()) == []
        # ignore_missing=True swallows the 404.
        assert conn.network.delete_network(net["id"]) is None

    @check("sdk: network_endpoint_override and admin_token forms")
    def _():
        c2 = openstack.connect(auth_type="none", network_endpoint_override=url + "/",
                               load_yaml_config=False, load_envvars=False)
        n = c2.network.create_network(name="override")
        c3 = openstack.connect(auth_type="admin_token",
                               auth={"endpoint": url + "/v2.0", "token": "secret"},
                               load_yaml_config=False, load_envvars=False)
        assert [x.name for x in c3.network.networks()] == ["override"]
        c3.network.delete_network(n)

    def osc(*args, ok=True):
        cmd = [cli, "--os-auth-type", "none", "--os-endpoint", url, *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if ok and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} -> rc={r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    @check("cli: network create/list/show")
    def _():
        n = json.loads(osc("network", "create", "cli-net", "-f", "json").stdout)
        assert n["name"] == "cli-net" and n["status"] == "ACTIVE", n
        listed = json.loads(osc("network", "list", "-f", "json").stdout)
        assert [x["Name"] for x in listed] == ["cli-net"], listed
        shown = json.loads(osc("network", "show", "cli-net", "-f", "json").stdout)
        assert shown["id"] == n["id"]

    @check("cli: subnet create, port create/set/show/list")
    def _():
        osc("subnet", "create", "--network", "cli-net", "--subnet-range", "198.18.11.0/24",
            "cli-sub")
        p = json.loads(osc("port", "create", "--network", "cli-net", "cli-p1", "-f",
                           "json").stdout)
        assert p["mac_address"].startswith("fa:16:3e:"), p
        osc("port", "set", "--name", "cli-p1-renamed", "--device-owner", "compute:nova",
            "cli-p1")
        shown = json.loads(osc("port", "show", "cli-p1-renamed", "-f", "json").stdout)
        assert shown["device_owner"] == "compute:nova", shown
        assert shown["fixed_ips"][0]["ip_address"] == "198.18.11.2", shown
        listed = json.loads(osc("port", "list", "--network", "cli-net", "--long", "-f",
                                "json").stdout)
        assert [x["Name"] for x in listed] == ["cli-p1-renamed"], listed

    @check("cli: deleting a network in use fails with the 409 message")
    def _():
        r = osc("network", "delete", "cli-net", ok=False)
        assert r.returncode == 1, r
        assert "ConflictException: 409" in r.stderr and "still in use" in r.stderr, r.stderr

    @check("cli: delete port, subnet, network; show of a deleted one fails")
    def _():
        osc("port", "delete", "cli-p1-renamed")
        osc("subnet", "delete", "cli-sub")
        osc("network", "delete", "cli-net")
        r = osc("network", "show", "cli-net", ok=False)
        assert r.returncode == 1 and "No Network found for cli-net" in r.stderr, r.stderr


if __name__ == "__main__":
    sys.exit(main())
