"""Safe downloads: address checks, redirects, size caps, timeouts, schemes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

import bot.net
from bot.net import (
    DownloadError,
    DownloadTooLarge,
    SafeResolver,
    UnsafeURL,
    is_public_address,
    make_download_session,
    safe_fetch,
)

BODY = b"hello image bytes"


class Origin:
    """A local server with a few behaviours; counts hits per path."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.url = ""
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] = self.hits.get(path, 0) + 1
        if path == "/ok":
            return web.Response(body=BODY, content_type="image/png")
        if path == "/loop":
            raise web.HTTPFound("/loop")
        if path == "/to-ok":
            raise web.HTTPFound("/ok")
        if path == "/to-other-loopback":
            raise web.HTTPFound(f"http://127.0.0.2:{self.port}/ok")
        if path == "/to-metadata":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        if path == "/to-ftp":
            raise web.HTTPFound("ftp://example.com/x")
        if path == "/big-chunked":
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for _ in range(100):
                await resp.write(b"x" * 1024)
            await resp.write_eof()
            return resp
        if path == "/big":
            return web.Response(body=b"y" * 10_000)
        if path == "/inflates":  # 100 KB of zeros, ~100 bytes on the wire
            resp = web.Response(body=b"\0" * 100_000)
            resp.enable_compression(web.ContentCoding.gzip)
            return resp
        if path == "/slow":
            await asyncio.sleep(2)
            return web.Response(body=BODY)
        return web.Response(status=404, text="nope")


@pytest_asyncio.fixture
async def origin() -> AsyncIterator[Origin]:
    srv = Origin()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", 0)
    await site.start()
    srv.port = int(runner.addresses[0][1])
    srv.url = f"http://127.0.0.1:{srv.port}"
    try:
        yield srv
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def loopback_1_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend 127.0.0.1 is a public server, so redirects from it exercise the per-hop check."""
    real = bot.net.is_public_address
    monkeypatch.setattr(bot.net, "is_public_address", lambda ip: ip == "127.0.0.1" or real(ip))


@pytest.mark.parametrize(
    ("ip", "public"),
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("2002:7f00:0001::1", False),
        ("not-an-ip", False),
    ],
)
def test_is_public_address(ip: str, public: bool) -> None:
    """Only globally routable unicast addresses count as public (IPv4-mapped IPv6 unwrapped)."""
    assert is_public_address(ip) is public


async def test_private_refused_by_default(origin: Origin, session: aiohttp.ClientSession) -> None:
    """A loopback URL is refused before any request is made."""
    with pytest.raises(UnsafeURL) as info:
        await safe_fetch(session, origin.url + "/ok", max_bytes=1000)
    assert info.value.user_message
    assert origin.hits == {}


async def test_hostname_resolving_to_loopback_refused(
    origin: Origin, session: aiohttp.ClientSession
) -> None:
    """A hostname (localhost) is resolved and refused when it maps to loopback."""
    with pytest.raises(UnsafeURL):
        await safe_fetch(session, f"http://localhost:{origin.port}/ok", max_bytes=1000)
    with pytest.raises(UnsafeURL):
        await safe_fetch(session, f"http://[::1]:{origin.port}/ok", max_bytes=1000)
    assert origin.hits == {}


async def test_private_allowed_when_asked(origin: Origin, session: aiohttp.ClientSession) -> None:
    """allow_private=True fetches from loopback and reports type and final URL."""
    got = await safe_fetch(session, origin.url + "/to-ok", max_bytes=1000, allow_private=True)
    assert got.data == BODY
    assert got.content_type == "image/png"
    assert got.final_url == origin.url + "/ok"


@pytest.mark.usefixtures("loopback_1_is_public")
async def test_redirect_to_refused_address(origin: Origin, session: aiohttp.ClientSession) -> None:
    """A redirect from an allowed host to a private or metadata address is refused at that hop."""
    with pytest.raises(UnsafeURL):
        await safe_fetch(session, origin.url + "/to-other-loopback", max_bytes=1000)
    with pytest.raises(UnsafeURL):
        await safe_fetch(session, origin.url + "/to-metadata", max_bytes=1000)
    assert origin.hits == {"/to-other-loopback": 1, "/to-metadata": 1}
    ok = await safe_fetch(session, origin.url + "/to-ok", max_bytes=1000)
    assert ok.data == BODY


async def test_redirect_to_bad_scheme(origin: Origin, session: aiohttp.ClientSession) -> None:
    """A redirect to a non-http(s) scheme is refused."""
    with pytest.raises(UnsafeURL):
        await safe_fetch(session, origin.url + "/to-ftp", max_bytes=1000, allow_private=True)


async def test_redirect_limit(origin: Origin, session: aiohttp.ClientSession) -> None:
    """A redirect loop stops after max_redirects hops."""
    with pytest.raises(DownloadError) as info:
        await safe_fetch(
            session, origin.url + "/loop", max_bytes=1000, allow_private=True, max_redirects=3
        )
    assert not isinstance(info.value, UnsafeURL)
    assert origin.hits["/loop"] == 4


async def test_size_cap_while_streaming(origin: Origin, session: aiohttp.ClientSession) -> None:
    """A chunked body with no Content-Length is cut off once it passes max_bytes."""
    with pytest.raises(DownloadTooLarge):
        await safe_fetch(session, origin.url + "/big-chunked", max_bytes=10_000, allow_private=True)
    got = await safe_fetch(
        session, origin.url + "/big-chunked", max_bytes=200_000, allow_private=True
    )
    assert len(got.data) == 100 * 1024


async def test_size_cap_from_content_length(origin: Origin, session: aiohttp.ClientSession) -> None:
    """A declared Content-Length above max_bytes is refused."""
    with pytest.raises(DownloadTooLarge):
        await safe_fetch(session, origin.url + "/big", max_bytes=9_999, allow_private=True)
    got = await safe_fetch(session, origin.url + "/big", max_bytes=10_000, allow_private=True)
    assert len(got.data) == 10_000


async def test_size_cap_counts_a_compressed_body_as_it_inflates(
    origin: Origin, session: aiohttp.ClientSession
) -> None:
    """A gzip body declaring a small Content-Length is refused once it inflates past max_bytes."""
    with pytest.raises(DownloadTooLarge):
        await safe_fetch(session, origin.url + "/inflates", max_bytes=10_000, allow_private=True)
    got = await safe_fetch(session, origin.url + "/inflates", max_bytes=100_000, allow_private=True)
    assert got.data == b"\0" * 100_000


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.png", "file:///etc/passwd", "gopher://x/", "not a url", "http://"]
)
async def test_bad_scheme_or_url(session: aiohttp.ClientSession, url: str) -> None:
    """Non-http(s) schemes and host-less URLs are refused."""
    with pytest.raises(UnsafeURL):
        await safe_fetch(session, url, max_bytes=1000)


async def test_non_2xx_is_download_error(origin: Origin, session: aiohttp.ClientSession) -> None:
    """A 404 answer raises DownloadError with a user-safe message."""
    with pytest.raises(DownloadError) as info:
        await safe_fetch(session, origin.url + "/missing", max_bytes=1000, allow_private=True)
    assert info.value.user_message == "The image could not be downloaded."


async def test_timeout(origin: Origin, session: aiohttp.ClientSession) -> None:
    """A slow server hits the timeout and raises DownloadError."""
    with pytest.raises(DownloadError):
        await safe_fetch(
            session, origin.url + "/slow", max_bytes=1000, allow_private=True, timeout=0.2
        )


async def test_safe_resolver_refuses_private_answers() -> None:
    """SafeResolver raises for hosts resolving to loopback unless private is allowed."""
    with pytest.raises(OSError):
        await SafeResolver().resolve("localhost", 80)
    answers = await SafeResolver(allow_private=True).resolve("localhost", 80)
    assert answers and all(a["hostname"] == "localhost" for a in answers)


async def test_download_session_blocks_rebinding(origin: Origin) -> None:
    """A make_download_session connector refuses a private address even if the pre-check passed."""
    async with make_download_session(allow_private=False) as guarded:
        with pytest.raises(DownloadError):
            await safe_fetch(
                guarded, f"http://localhost:{origin.port}/ok", max_bytes=1000, allow_private=True
            )
    assert origin.hits == {}
    async with make_download_session(allow_private=True) as open_session:
        got = await safe_fetch(
            open_session, f"http://localhost:{origin.port}/ok", max_bytes=1000, allow_private=True
        )
        assert got.data == BODY
