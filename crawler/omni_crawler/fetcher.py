"""Fetching: batches run concurrently, capped and spaced per host, retried on connection errors,
with a cookie session per host, optional proxy rotation, redirects checked hop by hop, a body cap."""

from __future__ import annotations

import asyncio
import base64
import time
from urllib.parse import urljoin, urlsplit

from curl_cffi import CurlOpt
from curl_cffi.requests import AsyncSession
from curl_cffi.requests import exceptions as cx

from .config import Settings
from .metrics import Metrics
from .proxies import NoProxy, ProxyPool, label
from .safety import Refused, check_url

REDIRECTS = (301, 302, 303, 307, 308)
# curl decodes compressed bodies, so these would describe bytes the caller never sees.
DROPPED_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}
# Failures a retry cannot fix.
NOT_RETRYABLE = (cx.InvalidURL, cx.InvalidSchema, cx.MissingSchema, cx.ImpersonateError,
                 cx.InvalidHeader, cx.TooManyRedirects)


class FetchError(Exception):
    """A request that ended without an HTTP response; `kind` is a stable machine-readable code."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def host_key(url: str) -> str:
    """`host:port`, the unit of concurrency caps, politeness and cookie sessions."""
    p = urlsplit(url)
    port = p.port or (443 if p.scheme == "https" else 80)
    return f"{(p.hostname or '').lower()}:{port}"


class Fetcher:
    """Owns the per-host state (sessions, semaphores, politeness clocks) and the proxy pool."""

    def __init__(self, settings: Settings, metrics: Metrics):
        self.s = settings
        self.metrics = metrics
        self.pool = ProxyPool(settings.proxies, settings.proxy_fail_threshold, settings.proxy_bench_secs)
        self._sessions: dict[str, AsyncSession] = {}
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        """Closes every session."""
        for s in self._sessions.values():
            await s.close()
        self._sessions.clear()

    def _session(self, host: str) -> AsyncSession:
        # One session per host: its cookie jar never leaks cookies to another site.
        if host not in self._sessions:
            self._sessions[host] = AsyncSession(max_clients=self.s.per_host)
        return self._sessions[host]

    async def fetch_batch(self, requests: list[dict]) -> list[dict]:
        """Fetches every request concurrently; results come back in request order."""
        return list(await asyncio.gather(*(self.fetch_one(r) for r in requests)))

    async def fetch_one(self, r: dict) -> dict:
        """One request, as a response dict (with `error`/`error_kind` instead of a status on failure)."""
        started = time.monotonic()
        url = r["url"]
        host = host_key(url)
        out = {"url": url, "final_url": url, "status": 0, "headers": [], "body_b64": "", "elapsed_ms": 0}
        try:
            final_url, status, headers, body = await self._follow(r)
            out.update(final_url=final_url, status=status, headers=headers,
                       body_b64=base64.b64encode(body).decode("ascii"))
            outcome = str(status)
        except FetchError as e:
            out.update(error=str(e), error_kind=e.kind)
            outcome = e.kind
            if e.kind in ("refused", "too_large", "invalid"):
                self.metrics.refused[e.kind] += 1
        elapsed = time.monotonic() - started
        out["elapsed_ms"] = int(elapsed * 1000)
        self.metrics.observe(host, outcome, elapsed)
        return out

    async def _follow(self, r: dict):
        """Sends the request and follows redirects, checking every hop against the SSRF rule."""
        url = r["url"]
        method = (r.get("method") or "GET").upper()
        headers = dict(r.get("headers") or {})
        body = base64.b64decode(r["body_b64"]) if r.get("body_b64") else None
        timeout = (r.get("timeout_ms") or self.s.timeout_ms) / 1000
        impersonate = r.get("impersonate") or self.s.impersonate
        for _ in range(self.s.max_redirects + 1):
            try:
                pin = await check_url(url, self.s.allow)
            except Refused as e:
                raise FetchError("refused", str(e)) from e
            status, resp_headers, resp_body = await self._attempts(
                url, method, headers, body, timeout, impersonate, pin)
            location = next((v for k, v in resp_headers if k.lower() == "location"), None)
            if status not in REDIRECTS or not location:
                return url, status, resp_headers, resp_body
            nxt = urljoin(url, location)
            if host_key(nxt) != host_key(url):
                # Credentials are for the host they were given for.
                headers = {k: v for k, v in headers.items()
                           if k.lower() not in ("authorization", "cookie")}
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, body = "GET", None
            url = nxt
        raise FetchError("too_many_redirects", f"more than {self.s.max_redirects} redirects")

    async def _attempts(self, url, method, headers, body, timeout, impersonate, pin):
        """Tries once plus `retries` times on connection errors and timeouts, with backoff."""
        host = host_key(url)
        for attempt in range(self.s.retries + 1):
            proxy = None
            if self.pool:
                try:
                    proxy = self.pool.pick()
                except NoProxy as e:
                    raise FetchError("no_proxy", str(e)) from e
            try:
                async with self._slot(host):
                    result = await self._once(url, method, headers, body, timeout, impersonate,
                                              proxy.url if proxy else None, pin)
                if proxy:
                    self.pool.success(proxy)
                return result
            except NOT_RETRYABLE as e:
                raise FetchError("invalid", str(e)) from e
            except cx.RequestException as e:
                if proxy:
                    self.pool.failure(proxy)
                kind = "timeout" if isinstance(e, cx.Timeout) else "connect"
                if attempt >= self.s.retries:
                    via = f" via {label(proxy.url)}" if proxy else ""
                    raise FetchError(kind, f"{e}{via}") from e
                self.metrics.retries[host] += 1
                await asyncio.sleep(self.s.backoff_ms / 1000 * (2 ** attempt))
        raise AssertionError("unreachable: the loop returns or raises")

    def _slot(self, host: str):
        return _HostSlot(self, host)

    async def _once(self, url, method, headers, body, timeout, impersonate, proxy, pin):
        session = self._session(host_key(url))
        # Connections go to the addresses the SSRF check vetted, not to a second DNS answer
        # (`CURLOPT_RESOLVE`). An HTTP or socks5h proxy resolves the name itself and the entry is
        # unused; a socks4/socks5 proxy is handed the pinned address.
        # curl_cffi's AsyncSession takes curl options per session only. The session is this
        # host:port's alone and every pin set on it was vetted for that host:port, so two requests
        # racing here can only swap one checked address for another.
        if pin:
            session.curl_options = {CurlOpt.RESOLVE: pin.curl_resolve()}
        resp = await session.request(
            method, url, headers=headers, data=body, timeout=timeout, impersonate=impersonate,
            allow_redirects=False, proxy=proxy, stream=True)
        try:
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.s.max_bytes:
                raise FetchError("too_large", f"declared {declared} bytes > cap {self.s.max_bytes}")
            chunks, size = [], 0
            async for chunk in resp.aiter_content():
                size += len(chunk)
                if size > self.s.max_bytes:
                    raise FetchError("too_large", f"body exceeds cap {self.s.max_bytes} bytes")
                chunks.append(chunk)
        finally:
            await resp.aclose()
        kept = [[k, v] for k, v in resp.headers.multi_items()
                if v is not None and k.lower() not in DROPPED_HEADERS]
        return resp.status_code, kept, b"".join(chunks)


class _HostSlot:
    """Holds one of the host's concurrency slots and waits out the politeness delay."""

    def __init__(self, f: Fetcher, host: str):
        self.f, self.host = f, host
        self.sem = f._sems.setdefault(host, asyncio.Semaphore(f.s.per_host))

    async def __aenter__(self):
        await self.sem.acquire()
        try:
            delay = self.f.s.delay_ms / 1000
            if delay > 0:
                # Reserve the next start time under the lock, sleep outside it.
                async with self.f._lock:
                    now = time.monotonic()
                    start = max(now, self.f._next_start.get(self.host, 0.0))
                    self.f._next_start[self.host] = start + delay
                if start > now:
                    await asyncio.sleep(start - now)
        except BaseException:
            self.sem.release()
            raise
        return self

    async def __aexit__(self, *exc):
        self.sem.release()
