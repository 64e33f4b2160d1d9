"""Access layer: bearer tokens with scopes and a namespace pattern, checked by the routes."""

import fnmatch
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from starlette.requests import Request

from .errors import Forbidden, Unauthorized
from .names import ascii_int
from .store import Store

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
PREFIX = "pd"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="persistd"'}
_CACHE_LIMIT = 10_000  # verified tokens kept per process; far above any real deployment


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_required(mode: str, host: str) -> bool:
    """Whether requests need a token; refuses `off` on a host reachable from other machines."""
    if mode == "off" and not is_loopback(host):
        raise RuntimeError(
            f"PERSISTD_AUTH=off is refused on host {host!r}: the records would be open to "
            "the network. Create a token with `persistd token create`, or bind 127.0.0.1."
        )
    return mode == "on" or (mode == "auto" and not is_loopback(host))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(text: str) -> list[Scope]:
    """`read,write` → ["read", "write"]; ValueError names an unknown scope."""
    scopes: list[Scope] = []
    for part in (p.strip() for p in text.split(",")):
        if part not in SCOPES:
            raise ValueError(f"unknown scope {part!r}; choose from {', '.join(SCOPES)}")
        if part not in scopes:
            scopes.append(part)
    if not scopes:
        raise ValueError("at least one scope is needed")
    return scopes


@dataclass(frozen=True, slots=True)
class Principal:
    """What a verified token may do."""

    token_id: int
    scopes: frozenset[str]
    namespace: str  # a glob pattern, like bot-* or *

    def allows_namespace(self, namespace: str) -> bool:
        return fnmatch.fnmatchcase(namespace, self.namespace)

    def has(self, scope: Scope) -> bool:
        # admin implies read and write; read and write are independent of each other.
        return scope in self.scopes or "admin" in self.scopes


class Authenticator:
    """Verifies bearer tokens against the tokens table, caching answers for a short TTL.

    The cache keeps the hot path at one database round trip (the record's own); a revoked token
    stops working within `ttl` seconds in every process. Refused tokens are cached too, so a
    flood of bad tokens cannot keep the lookups busy.
    """

    def __init__(self, store: Store, *, ttl: float) -> None:
        self._store = store  # a small store of its own: lookups never queue behind records
        self._ttl = ttl
        self._cache: dict[str, tuple[Principal | None, float]] = {}

    async def close(self) -> None:
        await self._store.close()

    async def verify(self, header: str | None) -> Principal:
        """The principal of an `Authorization: Bearer ...` header; Unauthorized otherwise."""
        if not header:
            raise Unauthorized("this request needs a bearer token", _CHALLENGE)
        kind, _, token = header.partition(" ")
        token = token.strip()
        if kind.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be `Bearer <token>`", _CHALLENGE)
        key = _digest(token)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            principal = cached[0]
        else:
            principal = await self._lookup(token)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = (principal, now + self._ttl)
        if principal is None:
            raise Unauthorized("the token is invalid or revoked", _CHALLENGE)
        return principal

    async def _lookup(self, token: str) -> Principal | None:
        prefix, _, rest = token.partition("_")
        token_id, _, secret = rest.partition("_")
        number = ascii_int(token_id)
        if prefix != PREFIX or number is None or number >= 2**63 or not secret:
            return None
        row = await self._store.token(number)
        if row is None or not hmac.compare_digest(row[0], _digest(secret)):
            return None
        return Principal(int(token_id), frozenset(row[1]), row[2])


async def require(request: Request, scope: Scope, namespace: str | None = None) -> Principal | None:
    """Check the request's token for `scope` on `namespace`; None when auth is off."""
    auth: Authenticator | None = request.app.state.auth
    if auth is None:
        return None
    principal = await auth.verify(request.headers.get("authorization"))
    if not principal.has(scope):
        raise Forbidden(f"this token lacks the {scope!r} scope")
    if namespace is not None:
        require_namespaces(principal, [namespace])
    return principal


def require_namespaces(principal: Principal | None, namespaces: Iterable[str]) -> None:
    """Forbidden unless the principal may use every one of `namespaces` (any when auth is off)."""
    if principal is None:
        return
    refused = sorted(n for n in set(namespaces) if not principal.allows_namespace(n))
    if refused:
        raise Forbidden(f"this token is not valid for namespace {refused[0]!r}")


Counts = list[tuple[str, int]]


def visible(principal: Principal | None, namespaces: Counts) -> Counts:
    """The namespaces a principal may see (all of them when auth is off)."""
    if principal is None:
        return namespaces
    return [row for row in namespaces if principal.allows_namespace(row[0])]


# ---- token management (the CLI's cold path) ----


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str | None
    scopes: list[str]
    namespace: str
    created_at: datetime
    revoked_at: datetime | None


async def create_token(store: Store, scopes: list[Scope], namespace: str, name: str | None) -> str:
    """Store a new token's hash and return the token itself (shown once, never stored)."""
    secret = secrets.token_urlsafe(32)
    token_id = await store.create_token(name, _digest(secret), list(scopes), namespace)
    return f"{PREFIX}_{token_id}_{secret}"


async def list_tokens(store: Store) -> list[TokenInfo]:
    """Every token, revoked ones included, without secrets."""
    return [TokenInfo(r[0], r[1], list(r[2]), r[3], r[4], r[5]) for r in await store.tokens()]


async def revoke_token(store: Store, token_id: int) -> bool:
    """Mark a token revoked; False when there is no active token with that id."""
    return await store.revoke_token(token_id)
