"""A minimal Keystone v3 for running Tempest against a network API without an identity service.

It answers only what Tempest's pre-provisioned credentials need: version discovery and
`POST /v3/auth/tokens` with a password, returning a fixed token per user (so that the network
API's own token file can map it to a project and roles) and a catalog whose only entry is the
network service at the URL given. Nothing else of Keystone is implemented.

Usage: fake_keystone.py PORT NETWORK_URL USERS_JSON
USERS_JSON: [{"name": ..., "password": ..., "project": ..., "project_id": ..., "token": ...,
              "roles": ["admin"|"member", ...]}, ...]
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
NETWORK_URL = sys.argv[2]
with open(sys.argv[3], encoding="utf-8") as f:
    USERS = {u["name"]: u for u in json.load(f)}
BASE = f"http://127.0.0.1:{PORT}"
DOMAIN = {"id": "default", "name": "Default"}


def version():
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{BASE}/v3/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.identity-v3+json"}],
    }


def catalog():
    endpoints = [
        {"id": f"net-{i}", "interface": i, "region": "RegionOne", "region_id": "RegionOne",
         "url": NETWORK_URL}
        for i in ("public", "internal", "admin")
    ]
    identity = [
        {"id": f"id-{i}", "interface": i, "region": "RegionOne", "region_id": "RegionOne",
         "url": f"{BASE}/v3"}
        for i in ("public", "internal", "admin")
    ]
    return [
        {"id": "network", "type": "network", "name": "neutron", "endpoints": endpoints},
        {"id": "identity", "type": "identity", "name": "keystone", "endpoints": identity},
    ]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/") in ("", "/v3"):
            if self.path.rstrip("/") == "/v3":
                self.send(200, {"version": version()})
            else:
                self.send(300, {"versions": {"values": [version()]}})
            return
        self.send(404, {"error": {"code": 404, "message": "not found", "title": "Not Found"}})

    def do_POST(self):
        if self.path.rstrip("/") != "/v3/auth/tokens":
            self.send(404, {"error": {"code": 404, "message": "not found", "title": "Not Found"}})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            auth = json.loads(self.rfile.read(length))["auth"]
            pw = auth["identity"]["password"]["user"]
            user = USERS[pw["name"]]
            if pw["password"] != user["password"]:
                raise KeyError("password")
        except (KeyError, ValueError, TypeError):
            self.send(401, {"error": {"code": 401, "message": "The request you have made "
                                      "requires authentication.", "title": "Unauthorized"}})
            return
        token = {
            "methods": ["password"],
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "issued_at": "2026-01-01T00:00:00.000000Z",
            "audit_ids": ["fake"],
            "user": {"id": f"user-{user['name']}", "name": user["name"], "domain": DOMAIN,
                     "password_expires_at": None},
            "project": {"id": user["project_id"], "name": user["project"], "domain": DOMAIN},
            "roles": [{"id": f"role-{r}", "name": r} for r in user["roles"]],
            "is_domain": False,
            "catalog": catalog(),
        }
        self.send(201, {"token": token}, {"X-Subject-Token": user["token"]})


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
