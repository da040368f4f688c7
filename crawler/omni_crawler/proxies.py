"""A rotating proxy pool that benches a proxy after repeated consecutive failures."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit


def label(url: str) -> str:
    """The proxy URL without credentials (for metrics and errors)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname}:{p.port}" if p.port else f"{p.scheme}://{p.hostname}"


@dataclass
class Proxy:
    """One proxy and its health."""

    url: str
    consecutive: int = 0
    failures: int = 0
    benched_until: float = 0.0


class NoProxy(Exception):
    """Every proxy is benched."""


class ProxyPool:
    """Round-robin over the proxies that are not benched."""

    def __init__(self, urls: list[str], fail_threshold: int, bench_secs: float, clock=time.monotonic):
        self.proxies = [Proxy(u) for u in urls]
        self.fail_threshold = max(1, fail_threshold)
        self.bench_secs = bench_secs
        self.clock = clock
        self._next = 0

    def __bool__(self) -> bool:
        return bool(self.proxies)

    def pick(self) -> Proxy:
        """The next healthy proxy; raises `NoProxy` when all are benched."""
        now = self.clock()
        n = len(self.proxies)
        for i in range(n):
            p = self.proxies[(self._next + i) % n]
            if p.benched_until <= now:
                self._next = (self._next + i + 1) % n
                return p
        raise NoProxy("every proxy is benched")

    def success(self, p: Proxy) -> None:
        """A request through `p` reached the target."""
        p.consecutive = 0

    def failure(self, p: Proxy) -> None:
        """A request through `p` failed below HTTP; benches it at the threshold."""
        p.consecutive += 1
        p.failures += 1
        if p.consecutive >= self.fail_threshold:
            p.benched_until = self.clock() + self.bench_secs
            p.consecutive = 0

    def snapshot(self) -> list[dict]:
        """Health per proxy, for metrics."""
        now = self.clock()
        return [{"label": label(p.url), "healthy": p.benched_until <= now, "failures": p.failures}
                for p in self.proxies]
