"""A tiny read-only JSON API for tierlock's networked tasks (runs as a service sidecar).

Every route is a key of /srv/data.json; GET returns its value as JSON, anything else is 404/405.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

with open(sys.argv[1] if len(sys.argv) > 1 else "/srv/data.json") as f:
    ROUTES = json.load(f)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if path not in ROUTES:
            self._send(404, {"error": f"no route {path}", "routes": sorted(ROUTES)})
            return
        self._send(200, ROUTES[path])

    def do_POST(self):
        self._send(405, {"error": "read-only API"})

    def _send(self, status, body):
        data = json.dumps(body, indent=1).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
