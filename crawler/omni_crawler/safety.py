"""SSRF guard: refuses URLs whose host resolves to a private, loopback or link-local address."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class Refused(Exception):
    """The URL may not be fetched (bad scheme, unresolvable, or a non-public address)."""


def _blocked(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return (
        addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_multicast
        or addr.is_reserved or addr.is_unspecified
        # Carrier-grade NAT (100.64/10) is not `is_private` but is not the public internet either.
        or (isinstance(addr, ipaddress.IPv4Address) and addr in ipaddress.ip_network("100.64.0.0/10"))
    )


async def check_url(url: str, allow: list) -> None:
    """Raises `Refused` unless every address `url`'s host resolves to is public or allow-listed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused(f"scheme {parts.scheme!r} is not http(s)")
    host = parts.hostname
    if not host:
        raise Refused("URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addrs = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise Refused(f"cannot resolve {host}: {e}") from e
        addrs = [ipaddress.ip_address(i[4][0].split("%")[0]) for i in infos]
    # Every address must pass: curl may connect to any of them.
    for a in addrs:
        if _blocked(a) and not any(a in net for net in allow if net.version == a.version):
            raise Refused(f"{host} resolves to non-public address {a} (allow it with --allow)")
