"""A result's bytes from its `document_url`, fetched as the place named is trusted (SSRF, docs/security.md).

The name is resolved once and every address checked: loopback, private, link-local and other
non-public ranges are refused unless the host is allow-listed. The connection goes to an address
that was checked (the URL's host is replaced by it, the Host header and TLS name kept), so a second
DNS answer cannot move it. One deadline covers resolving, connecting, the headers and the body; the
body is counted in the bytes that travel (identity only: nothing is inflated); redirects are not
followed. Why a fetch failed is logged, without the target's answer; the caller learns only that it did.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpx
import structlog

log = structlog.get_logger()
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], Awaitable[list[str]]]


class Refused(Exception):
    """Why a fetch was not made or not kept, in our words (never the target's)."""


def public(address: IPAddress) -> bool:
    """Reachable on the internet: not loopback, private, link-local, shared (CGNAT), multicast, reserved
    or unspecified, nor an IPv6 form carrying such an IPv4 address (mapped, 6to4)."""
    if isinstance(address, ipaddress.IPv6Address) and (inner := address.ipv4_mapped or address.sixtofour):
        return public(inner)
    return address.is_global and not (address.is_multicast or address.is_reserved)


def literal(host: str) -> IPAddress | None:
    """The address a host is, if it is one rather than a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def host_key(host: str) -> str:
    """A host as the allow-list compares it: a name in lower case without its final dot, an address
    in its short form."""
    return str(address) if (address := literal(host)) else host.lower().rstrip(".")


def permitted(host: str, addresses: Iterable[str], allowed: frozenset[str]) -> list[IPAddress]:
    """The addresses a fetch from `host` may connect to. An allow-listed host may be anywhere; any other
    must resolve to public addresses only: a name with one private answer is refused whole."""
    checked = [ipaddress.ip_address(a) for a in addresses]
    if not checked:
        raise Refused("no address")
    if host_key(host) in allowed:
        return checked
    if refused := [a for a in checked if not public(a)]:
        raise Refused(f"{refused[0]} is not a public address and the host is not allow-listed")
    return checked


async def resolve(host: str, port: int) -> list[str]:
    """The host's addresses (the system resolver); an address is its own answer."""
    if address := literal(host):
        return [str(address)]
    answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in answers))


class DocumentFetcher:
    """GETs a document_url under the rules above; one per service."""

    def __init__(self, allowed_hosts: Iterable[str], max_bytes: int, deadline_seconds: float,
                 resolver: Resolve = resolve):
        self.allowed = frozenset(host_key(h) for h in allowed_hosts)
        self.max_bytes = max_bytes
        self.deadline = deadline_seconds
        self.resolve = resolver
        # A transport of our own: no proxy from the environment (it would resolve the name again), and no
        # connection kept (one made for a TLS name must not serve another name on the same address).
        # Each step has the whole deadline too: `fetch` holds them all to it.
        transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
        self.http = httpx.AsyncClient(transport=transport, timeout=deadline_seconds, follow_redirects=False)

    async def fetch(self, url: str) -> bytes | None:
        """The document's bytes, or None when they could not be had (why is logged)."""
        try:
            target = httpx.URL(url)
            async with asyncio.timeout(self.deadline):
                return await self._get(target)
        except Refused as exc:
            why = str(exc)
        except TimeoutError:
            why = f"no complete answer within {self.deadline} s"
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
            why = type(exc).__name__  # the message may quote what the target sent
        log.warning("document fetch failed", host=host_of(url), why=why)
        return None

    async def _get(self, url: httpx.URL) -> bytes:
        if url.scheme not in ("http", "https"):
            raise Refused("not http or https")
        host = url.raw_host.decode("ascii")  # a name in its IDNA form
        port = url.port or {"http": 80, "https": 443}[url.scheme]
        *others, last = permitted(host, await self.resolve(host, port), self.allowed)
        for address in others:
            try:
                return await self._get_from(url, host, address)
            except httpx.ConnectError:
                continue  # the next address, within the same deadline
        return await self._get_from(url, host, last)

    async def _get_from(self, url: httpx.URL, host: str, address: IPAddress) -> bytes:
        """GET `url` from `address`, as if its name had led there."""
        request = self.http.build_request(
            "GET", url.copy_with(host=str(address)),
            headers={"host": url.netloc.decode("ascii"), "accept-encoding": "identity"},
            extensions={"sni_hostname": host} if url.scheme == "https" and not literal(host) else {})
        answer = await self.http.send(request, stream=True)
        try:
            if answer.status_code != 200:
                raise Refused(f"answered {answer.status_code}")
            if answer.headers.get("content-encoding", "identity").strip().lower() != "identity":
                raise Refused("a content-encoding other than identity")  # asked for none: it would inflate
            declared = answer.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise Refused(f"declares more than {self.max_bytes} bytes")
            body = bytearray()
            async for chunk in answer.aiter_raw():
                body += chunk
                if len(body) > self.max_bytes:
                    raise Refused(f"more than {self.max_bytes} bytes")
            return bytes(body)
        finally:
            await answer.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()


def host_of(url: str) -> str:
    """The URL's host for a log line (a path or query may carry a token)."""
    try:
        return httpx.URL(url).host
    except (httpx.InvalidURL, ValueError):
        return "(not a URL)"
