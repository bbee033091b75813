"""Feed URLs added at run time: http(s) only, and never an internal address unless explicitly allowed."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_network

import pytest

from bot.errors import UrlRefused
from bot.urlguard import UrlPolicy, check_feed_url, system_resolver

DNS = {  # a fake resolver: tests never ask a real DNS server
    "news.example": ["93.184.215.14"],
    "dual.example": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "rebind.example": ["93.184.215.14", "10.0.0.5"],  # one public and one private answer
    "intranet.example": ["192.168.1.20"],
    "metadata.example": ["169.254.169.254"],
    "v6local.example": ["fe80::1%eth0"],
}


async def fake_resolve(host: str, port: int) -> Sequence[str]:
    if host not in DNS:
        raise OSError(f"[Errno -2] Name or service not known: {host}")
    return DNS[host]


@pytest.mark.parametrize("url", [
    "https://news.example/rss.xml",
    "http://news.example:8080/feed?x=1",
    "HTTPS://NEWS.EXAMPLE/rss",
    "https://dual.example/atom.xml",
    "https://93.184.215.14/rss",
    "  https://news.example/rss  ",
])
async def test_public_http_urls_are_accepted(url: str) -> None:
    """Public hosts over http or https pass, returned stripped."""
    assert await check_feed_url(url, resolve=fake_resolve) == url.strip()


@pytest.mark.parametrize(("url", "reason"), [
    ("file:///etc/passwd", "only http and https"),
    ("ftp://news.example/feed.xml", "only http and https"),
    ("javascript:alert(1)", "only http and https"),
    ("gopher://news.example:70/", "only http and https"),
    ("news.example/rss", "only http and https"),
    ("https:///rss", "no host"),
    ("https://user:pass@news.example/rss", "credentials"),
    ("http://[::1", "not a valid URL"),
    ("https://news.example:99999/", "not a valid URL"),
    ("https://" + "a" * 2_100 + ".example/", "longer than"),
], ids=["file", "ftp", "javascript", "gopher", "no-scheme", "no-host", "credentials", "bad-ipv6", "bad-port",
        "too-long"])
async def test_malformed_or_non_http_urls_are_refused(url: str, reason: str) -> None:
    """Other schemes, credentials and unparseable URLs are refused with a reason."""
    with pytest.raises(UrlRefused, match=reason):
        await check_feed_url(url, resolve=fake_resolve)


@pytest.mark.parametrize(("url", "kind"), [
    ("http://127.0.0.1:6379/", "loopback"),
    ("http://[::1]/feed", "loopback"),
    ("http://[::ffff:127.0.0.1]/feed", "loopback"),
    ("http://[2002:7f00:1::]/feed", "loopback"),
    ("http://10.1.2.3/feed", "private"),
    ("http://172.16.0.1/feed", "private"),
    ("http://192.168.0.1/feed", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://100.64.0.1/", "not a public address"),
    ("http://intranet.example/rss", "private"),
    ("http://metadata.example/", "link-local"),
    ("http://v6local.example/", "link-local"),
    ("http://rebind.example/rss", "private"),
], ids=lambda v: v if "/" not in v else v.split("/")[2])
async def test_internal_addresses_are_refused(url: str, kind: str) -> None:
    """Loopback, private, link-local and other internal addresses (literal or resolved) are refused."""
    with pytest.raises(UrlRefused, match=kind):
        await check_feed_url(url, resolve=fake_resolve)


async def test_unresolvable_host_is_refused() -> None:
    """A name that does not resolve is refused rather than fetched later."""
    with pytest.raises(UrlRefused, match=r"cannot resolve nowhere\.example"):
        await check_feed_url("https://nowhere.example/rss", resolve=fake_resolve)


@pytest.mark.parametrize("policy", [
    UrlPolicy(allow_private=True),
    UrlPolicy(allowed_hosts=frozenset({"intranet.example"})),
    UrlPolicy(allowed_networks=(ip_network("192.168.1.0/24"),)),
], ids=["allow-private", "allowed-host", "allowed-network"])
async def test_internal_address_is_accepted_when_explicitly_allowed(policy: UrlPolicy) -> None:
    """An operator can allow an intranet feed by policy."""
    assert await check_feed_url("http://intranet.example/rss", policy, resolve=fake_resolve)


async def test_allowed_network_does_not_open_other_internal_addresses() -> None:
    """Allowing one private network still refuses loopback."""
    policy = UrlPolicy(allowed_networks=(ip_network("192.168.1.0/24"),))
    with pytest.raises(UrlRefused, match="loopback"):
        await check_feed_url("http://127.0.0.1/", policy, resolve=fake_resolve)


@pytest.mark.parametrize("host", ["localhost", "127.1", "2130706433", "0x7f000001"])
async def test_system_resolver_refuses_loopback_spellings(host: str) -> None:
    """The real resolver (hosts file and numeric forms, no network) maps these to loopback: refused."""
    with pytest.raises(UrlRefused, match="loopback"):
        await check_feed_url(f"http://{host}:8080/feed.xml", resolve=system_resolver)
