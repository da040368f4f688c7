"""Service settings and their command-line flags."""

from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass, field


@dataclass
class Settings:
    """Everything the service can be configured with."""

    host: str = "127.0.0.1"
    port: int = 8700
    # The environment variable holding the shared token; unset or empty = no token required.
    token_env: str = "OMNI_CRAWLER_TOKEN"
    token: str | None = None
    per_host: int = 4
    delay_ms: int = 0
    retries: int = 2
    backoff_ms: int = 200
    proxies: list[str] = field(default_factory=list)
    proxy_fail_threshold: int = 3
    proxy_bench_secs: float = 60.0
    allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    max_bytes: int = 16 * 1024 * 1024
    max_batch: int = 256
    max_redirects: int = 5
    timeout_ms: int = 30_000
    impersonate: str = "chrome"


def parser() -> argparse.ArgumentParser:
    """The command line of `python -m omni_crawler`."""
    p = argparse.ArgumentParser(prog="omni_crawler", description=__doc__)
    d = Settings()
    p.add_argument("--host", default=d.host, help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=d.port)
    p.add_argument("--token-env", default=d.token_env,
                   help="environment variable holding the shared bearer token (unset = no auth)")
    p.add_argument("--per-host", type=int, default=d.per_host, help="concurrent requests per host")
    p.add_argument("--delay-ms", type=int, default=d.delay_ms,
                   help="minimum gap between request starts to one host")
    p.add_argument("--retries", type=int, default=d.retries,
                   help="retries after a connection error or timeout")
    p.add_argument("--backoff-ms", type=int, default=d.backoff_ms,
                   help="first retry backoff; doubles per retry")
    p.add_argument("--proxy", action="append", default=[], dest="proxies",
                   help="proxy URL (repeatable; rotated)")
    p.add_argument("--proxy-fail-threshold", type=int, default=d.proxy_fail_threshold,
                   help="consecutive failures before a proxy is benched")
    p.add_argument("--proxy-bench-secs", type=float, default=d.proxy_bench_secs)
    p.add_argument("--allow", action="append", default=[],
                   help="CIDR exempt from the private-address refusal (repeatable)")
    p.add_argument("--max-bytes", type=int, default=d.max_bytes, help="response body size cap")
    p.add_argument("--max-batch", type=int, default=d.max_batch, help="requests per /fetch call")
    p.add_argument("--max-redirects", type=int, default=d.max_redirects)
    p.add_argument("--timeout-ms", type=int, default=d.timeout_ms, help="default per-request timeout")
    p.add_argument("--impersonate", default=d.impersonate, help="curl_cffi browser profile")
    return p


def from_args(argv: list[str] | None = None) -> Settings:
    """Parses flags (and reads the token from the named environment variable)."""
    ns = parser().parse_args(argv)
    if ns.per_host < 1:
        raise SystemExit("--per-host must be at least 1")
    try:
        allow = [ipaddress.ip_network(c, strict=False) for c in ns.allow]
    except ValueError as e:
        raise SystemExit(f"--allow: {e}") from e
    token = os.environ.get(ns.token_env, "").strip() or None
    return Settings(
        host=ns.host, port=ns.port, token_env=ns.token_env, token=token, per_host=ns.per_host,
        delay_ms=ns.delay_ms, retries=ns.retries, backoff_ms=ns.backoff_ms, proxies=ns.proxies,
        proxy_fail_threshold=ns.proxy_fail_threshold, proxy_bench_secs=ns.proxy_bench_secs,
        allow=allow, max_bytes=ns.max_bytes, max_batch=ns.max_batch,
        max_redirects=ns.max_redirects, timeout_ms=ns.timeout_ms, impersonate=ns.impersonate,
    )
