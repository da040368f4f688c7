"""The service against local servers: batching, caps, politeness, retries, proxies, safety."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import Flaky, ForwardProxy, body, fetch
from omni_crawler import safety


async def test_batch_keeps_order_and_runs_concurrently(make_client, origin):
    c = make_client(per_host=8)
    delays = [300, 10, 200, 50, 100]
    t0 = time.monotonic()
    res = await fetch(c, *({"url": f"{origin.url}/echo?ms={d}"} for d in delays))
    elapsed = time.monotonic() - t0
    assert [json.loads(body(r))["path"] for r in res] == [f"/echo?ms={d}" for d in delays]
    assert all(r["status"] == 200 and "error" not in r for r in res)
    # Sequential would take >= 660 ms; concurrent takes about the longest (300 ms).
    assert elapsed < 0.6, elapsed
    assert res[0]["final_url"] == res[0]["url"]
    # Repeated headers survive as separate pairs; decoded-body framing headers are dropped.
    hs = res[0]["headers"]
    assert [v for k, v in hs if k.lower() == "x-test"] == ["a", "b"]
    assert not any(k.lower() == "content-length" for k, _ in hs)


async def test_method_headers_and_body_are_forwarded(make_client, origin):
    c = make_client()
    [r] = await fetch(c, {"url": f"{origin.url}/echo", "method": "POST",
                          "headers": {"Authorization": "Bearer t0k", "Content-Type": "application/json"},
                          "body_b64": base64.b64encode(b'{"a":1}').decode()})
    doc = json.loads(body(r))
    assert doc["method"] == "POST"
    assert doc["body"] == '{"a":1}'
    assert doc["headers"]["authorization"] == "Bearer t0k"
    # Impersonation gives a browser User-Agent by default.
    assert "Mozilla" in doc["headers"]["user-agent"]


async def test_per_host_concurrency_cap(make_client, origin):
    c = make_client(per_host=2)
    other = type(origin)()
    try:
        res = await fetch(c, *({"url": f"{origin.url}/echo?ms=150"} for _ in range(6)),
                          {"url": f"{other.url}/echo?ms=150"})
        assert all(r["status"] == 200 for r in res)
        assert origin.max_in_flight == 2
        # Another host is not held back by the first host's cap.
        assert other.starts[0] - origin.starts[0] < 0.1
    finally:
        other.close()


async def test_politeness_delay_spaces_request_starts(make_client, origin):
    c = make_client(per_host=4, delay_ms=150)
    res = await fetch(c, *({"url": f"{origin.url}/echo"} for _ in range(4)))
    assert all(r["status"] == 200 for r in res)
    gaps = [b - a for a, b in zip(origin.starts, origin.starts[1:])]
    # Starts are reserved 150 ms apart; the server sees them with some scheduling jitter.
    assert len(gaps) == 3 and min(gaps) >= 0.1 and sum(gaps) >= 0.42, gaps


async def test_retries_connection_errors_then_succeeds(make_client):
    flaky = Flaky(drops=2)
    try:
        c = make_client(retries=2)
        [r] = await fetch(c, {"url": f"{flaky.url}/x"})
        assert r["status"] == 200 and body(r) == b"ok", r
        assert flaky.connections == 3
        m = (await c.get("/metrics")).text
        port = flaky.url.rsplit(":", 1)[1]
        assert f'omni_crawler_retries_total{{host="127.0.0.1:{port}"}} 2' in m
    finally:
        flaky.close()


async def test_gives_up_after_the_retries(make_client):
    flaky = Flaky(drops=10)
    try:
        c = make_client(retries=1)
        [r] = await fetch(c, {"url": f"{flaky.url}/x"})
        assert r["status"] == 0 and r["error_kind"] == "connect", r
        assert flaky.connections == 2
    finally:
        flaky.close()


async def test_http_errors_are_returned_not_retried(make_client, origin):
    c = make_client(retries=3)
    [r] = await fetch(c, {"url": f"{origin.url}/status?code=503"})
    assert r["status"] == 503 and "error" not in r
    assert len(origin.starts) == 1


async def test_cookies_are_kept_per_host(make_client, origin):
    c = make_client()
    other = type(origin)()
    try:
        await fetch(c, {"url": f"{origin.url}/setcookie?v=abc"})
        [same, elsewhere] = await fetch(c, {"url": f"{origin.url}/echo"}, {"url": f"{other.url}/echo"})
        assert json.loads(body(same))["headers"].get("cookie") == "sid=abc"
        assert "cookie" not in json.loads(body(elsewhere))["headers"]
    finally:
        other.close()


async def test_proxies_rotate_and_a_dead_one_is_benched(make_client, origin):
    p1, p2 = ForwardProxy(), ForwardProxy()
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{dead.getsockname()[1]}"
    dead.close()  # nothing listens there: connections are refused
    try:
        c = make_client(proxies=[p1.url, p2.url])
        res = await fetch(c, *({"url": f"{origin.url}/echo"} for _ in range(4)))
        assert all(r["status"] == 200 for r in res)
        assert (p1.count, p2.count) == (2, 2)

        c = make_client(proxies=[dead_url, p1.url], proxy_fail_threshold=2, retries=2, per_host=1)
        for _ in range(4):
            [r] = await fetch(c, {"url": f"{origin.url}/echo"})
            assert r["status"] == 200, r
        m = (await c.get("/metrics")).text
        assert f'omni_crawler_proxy_healthy{{proxy="{dead_url}"}} 0' in m
        assert f'omni_crawler_proxy_healthy{{proxy="{p1.url}"}} 1' in m
        assert f'omni_crawler_proxy_failures_total{{proxy="{dead_url}"}} 2' in m
    finally:
        p1.close()
        p2.close()


async def test_ssrf_private_addresses_are_refused(make_client, origin):
    c = make_client(allow=[])
    urls = [f"{origin.url}/echo", f"http://localhost:{origin.port}/echo", "http://10.1.2.3/",
            "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://192.168.0.1/",
            "file:///etc/passwd"]
    res = await fetch(c, *({"url": u} for u in urls))
    for u, r in zip(urls, res):
        assert r["status"] == 0 and r["error_kind"] == "refused", (u, r)
    assert origin.starts == []  # nothing was sent
    m = (await c.get("/metrics")).text
    assert 'omni_crawler_refused_total{reason="refused"} 7' in m


async def test_ssrf_redirect_to_a_private_address_is_refused(make_client, origin):
    c = make_client(allow=[ipaddress.ip_network("127.0.0.1/32")])
    [ok, bad] = await fetch(
        c,
        {"url": f"{origin.url}/redirect?to=/echo"},
        {"url": f"{origin.url}/redirect?to=http://127.0.0.2:{origin.port}/echo"})
    assert ok["status"] == 200 and ok["final_url"] == f"{origin.url}/echo"
    assert bad["error_kind"] == "refused" and "127.0.0.2" in bad["error"]


async def test_connections_go_to_the_checked_address(make_client, origin, monkeypatch):
    # `pinned.test` is not in any DNS (RFC 6761): only the guard's resolver knows it. curl can
    # reach the origin under that name only by connecting to the address the guard checked.
    async def resolve(host, port):
        assert host == "pinned.test"
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(safety, "resolve", resolve)
    c = make_client(allow=[ipaddress.ip_network("127.0.0.1/32")])
    [r] = await fetch(c, {"url": f"http://pinned.test:{origin.port}/echo"})
    assert r["status"] == 200, r
    assert json.loads(body(r))["headers"]["host"] == f"pinned.test:{origin.port}"


async def test_dns_rebinding_cannot_reach_a_refused_address(make_client, origin, monkeypatch):
    # The guard is told a public address (1.2.3.4: unreachable from a test machine); the system
    # resolver, which curl would ask again, says 127.0.0.1 for `localhost`, where the origin
    # listens. curl connects to the checked address only, so the request fails to connect and
    # the origin sees nothing.
    async def resolve(host, port):
        return [ipaddress.ip_address("1.2.3.4")]

    monkeypatch.setattr(safety, "resolve", resolve)
    c = make_client(allow=[], retries=0, timeout_ms=1500)
    [r] = await fetch(c, {"url": f"http://localhost:{origin.port}/echo"})
    assert r["status"] == 0 and r["error_kind"] in ("connect", "timeout"), r
    assert origin.starts == []


async def test_size_cap(make_client, origin):
    c = make_client(max_bytes=4096)
    res = await fetch(c, {"url": f"{origin.url}/big?n=4096"}, {"url": f"{origin.url}/big?n=5000"},
                      {"url": f"{origin.url}/chunked?n=8192"})
    assert res[0]["status"] == 200 and len(body(res[0])) == 4096
    assert res[1]["error_kind"] == "too_large"
    assert res[2]["error_kind"] == "too_large"


async def test_token_is_required_when_configured(make_client, origin):
    c = make_client(token="s3cret")
    req = {"requests": [{"url": f"{origin.url}/echo"}]}
    assert (await c.post("/fetch", json=req)).status_code == 401
    assert (await c.post("/fetch", json=req, headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await c.get("/metrics")).status_code == 401
    ok = await c.post("/fetch", json=req, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["responses"][0]["status"] == 200
    assert (await c.get("/healthz")).status_code == 200


async def test_batch_size_is_capped(make_client, origin):
    c = make_client(max_batch=2)
    r = await c.post("/fetch", json={"requests": [{"url": f"{origin.url}/echo"}] * 3})
    assert r.status_code == 413


async def test_metrics_count_requests_by_host_and_status(make_client, origin):
    c = make_client()
    await fetch(c, {"url": f"{origin.url}/echo"}, {"url": f"{origin.url}/status?code=404"})
    m = (await c.get("/metrics")).text
    h = f"127.0.0.1:{origin.port}"
    assert f'omni_crawler_requests_total{{host="{h}",status="200"}} 1' in m
    assert f'omni_crawler_requests_total{{host="{h}",status="404"}} 1' in m
    assert f'omni_crawler_request_seconds_count{{host="{h}"}} 2' in m


def test_cli_serves_on_loopback_with_flags(origin):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {**os.environ, "TEST_CRAWLER_TOKEN": "tok"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "omni_crawler", "--port", str(port), "--allow", "127.0.0.0/8",
         "--token-env", "TEST_CRAWLER_TOKEN", "--max-bytes", "10"], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        req = urllib.request.Request(
            f"{base}/fetch", method="POST",
            data=json.dumps({"requests": [{"url": f"{origin.url}/big?n=5"},
                                          {"url": f"{origin.url}/big?n=50"}]}).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer tok"})
        res = json.loads(urllib.request.urlopen(req, timeout=10).read())["responses"]
        assert res[0]["status"] == 200 and res[1]["error_kind"] == "too_large"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_internationalised_names_are_pinned_in_their_ascii_form(monkeypatch):
    # curl looks up `xn--bcher-kva.example`, not `bücher.example`: a pin under the Unicode name
    # would never match and curl would resolve the name again itself.
    asked = []

    async def resolve(host, port):
        asked.append(host)
        return [ipaddress.ip_address("1.2.3.4")]

    monkeypatch.setattr(safety, "resolve", resolve)
    pin = await safety.check_url("http://bücher.example:8080/x", [])
    assert asked == ["xn--bcher-kva.example"]
    assert pin.curl_resolve() == ["xn--bcher-kva.example:8080:1.2.3.4"]
