"""Local servers for the tests: an origin with test routes, a flaky TCP server and a forward proxy."""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from omni_crawler.app import create_app
from omni_crawler.config import Settings

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


class Origin:
    """A threaded HTTP server whose routes record what they saw."""

    def __init__(self):
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.starts: list[float] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body: bytes, headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.do_GET()

            def do_GET(self):
                u = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(u.query).items()}
                with origin.lock:
                    origin.in_flight += 1
                    origin.max_in_flight = max(origin.max_in_flight, origin.in_flight)
                    origin.starts.append(time.monotonic())
                try:
                    self.route(u.path, q)
                finally:
                    with origin.lock:
                        origin.in_flight -= 1

            def route(self, path, q):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                if path == "/echo":
                    time.sleep(int(q.get("ms", "0")) / 1000)
                    doc = {"method": self.command, "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()},
                           "body": body.decode()}
                    self._send(200, json.dumps(doc).encode(), [("Content-Type", "application/json"),
                                                               ("X-Test", "a"), ("X-Test", "b")])
                elif path == "/big":
                    self._send(200, b"x" * int(q["n"]))
                elif path == "/chunked":
                    # No Content-Length: the cap must be enforced while reading.
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b"y" * 1024
                    for _ in range(int(q["n"]) // 1024):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                elif path == "/redirect":
                    self._send(302, b"", [("Location", q["to"])])
                elif path == "/setcookie":
                    self._send(200, b"set", [("Set-Cookie", f"sid={q['v']}; Path=/")])
                elif path == "/status":
                    self._send(int(q["code"]), b"status")
                else:
                    self._send(404, b"no such route")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Flaky:
    """Closes the first `drops` connections without answering, then answers 200 `ok`."""

    def __init__(self, drops: int):
        self.drops = drops
        self.connections = 0
        flaky = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                flaky.connections += 1
                if flaky.connections <= flaky.drops:
                    self.request.close()
                    return
                data = b""
                while b"\r\n\r\n" not in data:
                    part = self.request.recv(4096)
                    if not part:
                        return
                    data += part
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class ForwardProxy:
    """A minimal HTTP forward proxy (absolute-form requests) that counts what it relays."""

    def __init__(self):
        self.count = 0
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data = b""
                while b"\r\n\r\n" not in data:
                    part = self.request.recv(65536)
                    if not part:
                        return
                    data += part
                head, rest = data.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                u = urlsplit(target)
                kept = [l for l in lines[1:] if not l.lower().startswith(("connection:", "proxy-"))]
                n = next((int(l.split(":", 1)[1]) for l in kept
                          if l.lower().startswith("content-length:")), 0)
                while len(rest) < n:
                    rest += self.request.recv(65536)
                path = u.path + (f"?{u.query}" if u.query else "")
                out = f"{method} {path} {version}\r\n" + "\r\n".join(kept + ["Connection: close"])
                proxy.count += 1
                with socket.create_connection((u.hostname, u.port or 80)) as up:
                    up.sendall(out.encode("latin-1") + b"\r\n\r\n" + rest)
                    while True:
                        chunk = up.recv(65536)
                        if not chunk:
                            break
                        self.request.sendall(chunk)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.close()


@pytest.fixture
def make_client():
    """Builds the service with given settings and an httpx client talking to it in-process."""
    clients = []

    def make(**kw):
        kw.setdefault("allow", LOOPBACK)
        kw.setdefault("backoff_ms", 10)
        app = create_app(Settings(**kw))
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crawler",
                              timeout=30)
        clients.append((c, app))
        return c

    yield make
    # The httpx clients hold no sockets (ASGI transport); curl sessions die with the process.


async def fetch(client, *requests, headers=None):
    """POSTs a batch and returns the responses list."""
    r = await client.post("/fetch", json={"requests": list(requests)}, headers=headers or {})
    assert r.status_code == 200, r.text
    return r.json()["responses"]


def body(resp) -> bytes:
    return base64.b64decode(resp["body_b64"])
