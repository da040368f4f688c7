"""SSRF guard: refuses URLs whose host resolves to a private, loopback or link-local address, and
pins the connection to the addresses it checked (so a second DNS answer cannot differ: rebinding)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class Refused(Exception):
    """The URL may not be fetched (bad scheme, unresolvable, or a non-public address)."""


@dataclass(frozen=True)
class Pin:
    """The addresses a host name was checked at: curl must connect to these and resolve nothing.

    Without it curl would resolve the name again, and a DNS server answering a public address to
    the check and a private one to curl (DNS rebinding) would get a request past the guard.
    """

    host: str
    port: int
    addrs: tuple

    def curl_resolve(self) -> list:
        """The `CURLOPT_RESOLVE` entry: `host:port:addr[,addr…]`, IPv6 in brackets."""
        spelled = ",".join(f"[{a}]" if a.version == 6 else str(a) for a in self.addrs)
        return [f"{self.host}:{self.port}:{spelled}"]


async def resolve(host: str, port: int) -> list:
    """Every address `host` resolves to (the system resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(i[4][0].split("%")[0]) for i in infos]


def _blocked(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return (
        addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_multicast
        or addr.is_reserved or addr.is_unspecified
        # Carrier-grade NAT (100.64/10) is not `is_private` but is not the public internet either.
        or (isinstance(addr, ipaddress.IPv4Address) and addr in ipaddress.ip_network("100.64.0.0/10"))
    )


async def check_url(url: str, allow: list) -> Pin | None:
    """Raises `Refused` unless every address `url`'s host resolves to is public or allow-listed;
    returns the checked addresses to pin the connection to (None for a literal IP address)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused(f"scheme {parts.scheme!r} is not http(s)")
    host = parts.hostname
    if not host:
        raise Refused("URL has no host")
    # curl looks names up in their ASCII (punycode) form; pin and resolve that same form, or an
    # internationalised name would miss the pin and curl would resolve it again on its own.
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError as e:
        raise Refused(f"invalid host name {host!r}: {e}") from e
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = True
    try:
        addrs = [ipaddress.ip_address(host)]
    except ValueError:
        literal = False
        try:
            addrs = await resolve(host, port)
        except OSError as e:
            raise Refused(f"cannot resolve {host}: {e}") from e
        if not addrs:
            raise Refused(f"cannot resolve {host}: no address")
    # Every address must pass: curl may connect to any of them.
    for a in addrs:
        if _blocked(a) and not any(a in net for net in allow if net.version == a.version):
            raise Refused(f"{host} resolves to non-public address {a} (allow it with --allow)")
    if literal:
        return None
    return Pin(host=host, port=port, addrs=tuple(dict.fromkeys(addrs)))
