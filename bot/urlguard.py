"""Checks a feed URL given at run time (an admin command, say) before the bot will ever fetch it.

Only http and https; no credentials in the URL; and every address the host resolves to must be public, so
the bot cannot be turned against loopback, private, link-local or other internal addresses (SSRF), unless
the operator allows them explicitly. Names are resolved here, off the event loop's thread.

This is a check at the time the URL is added; a name whose DNS answer later changes to an internal address
(DNS rebinding) is not caught by it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.errors import UrlRefused

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
MAX_URL = 2_000


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """What the operator explicitly allows beyond public addresses."""

    allow_private: bool = False  # loopback, private, link-local and the rest: e.g. an intranet feed
    allowed_hosts: frozenset[str] = frozenset()  # host names (lower case) allowed whatever they resolve to
    allowed_networks: tuple[Network, ...] = ()  # e.g. (ip_network("10.1.2.0/24"),)


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Every address `host` resolves to, via the system resolver (in a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def check_feed_url(url: str, policy: UrlPolicy = UrlPolicy(), resolve: Resolver = system_resolver) -> str:
    """The URL, stripped, if the bot may fetch it; `UrlRefused` saying why otherwise."""
    url = url.strip()
    if len(url) > MAX_URL:
        raise UrlRefused(f"URL longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as exc:
        raise UrlRefused(f"not a valid URL: {exc}") from None
    if parts.scheme.lower() not in {"http", "https"}:
        raise UrlRefused(f"only http and https feeds are allowed, not {parts.scheme or 'a relative URL'!r}")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise UrlRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("credentials in a feed URL are not allowed")
    if policy.allow_private or host in policy.allowed_hosts:
        return url
    for address in await _addresses(host, port, resolve):
        reason = _internal(address)
        if reason and not any(address in net for net in policy.allowed_networks):
            raise UrlRefused(f"{host} is {reason} ({address}); not allowed unless explicitly permitted")
    return url


async def _addresses(host: str, port: int, resolve: Resolver) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        answers = await resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise UrlRefused(f"cannot resolve {host}: {exc}") from None
    addresses = [ipaddress.ip_address(a.split("%")[0]) for a in answers]
    if not addresses:
        raise UrlRefused(f"cannot resolve {host}: no addresses")
    return addresses


def _internal(address: Address) -> str | None:
    """Why an address is not a public one, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return _internal(embedded) or None
    checks = (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
              ("link-local", address.is_link_local),
              ("private", address.is_private), ("multicast", address.is_multicast),
              ("reserved", address.is_reserved))
    for name, hit in checks:
        if hit:
            return f"a {name} address"
    return None if address.is_global else "not a public address"
