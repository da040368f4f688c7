"""Prometheus text metrics, kept by hand (a few counters and a latency histogram)."""

from __future__ import annotations

from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Counters by label tuple, rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = defaultdict(int)
        self.retries: dict[str, int] = defaultdict(int)
        self.refused: dict[str, int] = defaultdict(int)
        self.latency_buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)

    def observe(self, host: str, status: str, seconds: float) -> None:
        """Counts one finished request (status is the HTTP code or an error kind)."""
        self.requests[(host, status)] += 1
        self.latency_sum[host] += seconds
        self.latency_count[host] += 1
        b = self.latency_buckets[host]
        for i, le in enumerate(BUCKETS):
            if seconds <= le:
                b[i] += 1

    def render(self, proxies) -> str:
        """The exposition text; `proxies` is the proxy pool (for health gauges)."""
        out = [
            "# HELP omni_crawler_requests_total Fetches by host and outcome (HTTP status or error kind).",
            "# TYPE omni_crawler_requests_total counter",
        ]
        for (host, status), n in sorted(self.requests.items()):
            out.append(f'omni_crawler_requests_total{{host="{_esc(host)}",status="{_esc(status)}"}} {n}')
        out += ["# HELP omni_crawler_request_seconds Fetch latency by host.",
                "# TYPE omni_crawler_request_seconds histogram"]
        for host in sorted(self.latency_count):
            h = _esc(host)
            for le, n in zip(BUCKETS, self.latency_buckets[host]):
                out.append(f'omni_crawler_request_seconds_bucket{{host="{h}",le="{le}"}} {n}')
            out.append(f'omni_crawler_request_seconds_bucket{{host="{h}",le="+Inf"}} {self.latency_count[host]}')
            out.append(f'omni_crawler_request_seconds_sum{{host="{h}"}} {self.latency_sum[host]:.6f}')
            out.append(f'omni_crawler_request_seconds_count{{host="{h}"}} {self.latency_count[host]}')
        out += ["# HELP omni_crawler_retries_total Retries after connection errors or timeouts.",
                "# TYPE omni_crawler_retries_total counter"]
        for host, n in sorted(self.retries.items()):
            out.append(f'omni_crawler_retries_total{{host="{_esc(host)}"}} {n}')
        out += ["# HELP omni_crawler_refused_total Requests refused before fetching, by reason.",
                "# TYPE omni_crawler_refused_total counter"]
        for reason, n in sorted(self.refused.items()):
            out.append(f'omni_crawler_refused_total{{reason="{_esc(reason)}"}} {n}')
        out += ["# HELP omni_crawler_proxy_healthy 1 when the proxy is in rotation, 0 when benched.",
                "# TYPE omni_crawler_proxy_healthy gauge",
                "# HELP omni_crawler_proxy_failures_total Failed requests through each proxy.",
                "# TYPE omni_crawler_proxy_failures_total counter"]
        for p in proxies.snapshot():
            label = _esc(p["label"])
            out.append(f'omni_crawler_proxy_healthy{{proxy="{label}"}} {1 if p["healthy"] else 0}')
            out.append(f'omni_crawler_proxy_failures_total{{proxy="{label}"}} {p["failures"]}')
        return "\n".join(out) + "\n"
