"""OpenID Connect sign-in: the authorization-code flow with PKCE, state and nonce.

authlib builds the pieces of the protocol (the PKCE S256 challenge, the
authorization URL); joserfc (authlib's JOSE library) verifies the ID token's
signature against the provider's JWKS. Any OIDC issuer works: its discovery
document (`/.well-known/openid-configuration`) gives the endpoints.

`validate_id_token` is pure (token, keys, expectations, `now` in; an
`Identity` or `SignInRefused` out). `OidcClient` does the IO: discovery, the
JWKS (re-read once when a token names an unknown key, so the provider's key
rotation needs no restart) and the code exchange. Every refusal is a
`SignInRefused` whose message is safe to show; codes and tokens never appear
in messages or logs.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

SCOPE = "openid email profile"
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
LEEWAY_S = 5  # clock skew tolerated on exp/iat
METADATA_TTL_S = 3600.0
TIMEOUT = aiohttp.ClientTimeout(total=10, connect=5)


class SignInRefused(Exception):
    """The sign-in cannot complete; `message` says why in words a person can read."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str

    @classmethod
    def parse(cls, data: Any, expected_issuer: str) -> ProviderMetadata:
        if not isinstance(data, dict):
            raise SignInRefused("the sign-in provider's configuration is unreadable")
        fields = {name: data.get(name) for name in
                  ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")}
        missing = [name for name, value in fields.items() if not isinstance(value, str) or not value]
        if missing:
            raise SignInRefused(f"the sign-in provider's configuration lacks {', '.join(missing)}")
        if fields["issuer"] != expected_issuer:
            raise SignInRefused("the sign-in provider's configuration names another issuer")
        return cls(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who signed in: (issuer, subject) identifies the person; name is for display."""

    issuer: str
    subject: str
    name: str | None
    email: str | None


@dataclass(frozen=True, slots=True)
class Expected:
    """What a valid ID token must say."""

    issuer: str
    client_id: str
    nonce: str


def basic_auth(client_id: str, client_secret: str) -> str:
    """client_secret_basic (RFC 6749 section 2.3.1): both parts form-encoded, then base64."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def authorization_url(endpoint: str, *, client_id: str, redirect_uri: str, state: str,
                      nonce: str, code_verifier: str) -> str:
    """The provider's authorization URL for the code flow with PKCE (S256)."""
    return str(prepare_grant_uri(
        endpoint, client_id, "code", redirect_uri=redirect_uri, scope=SCOPE, state=state,
        nonce=nonce, code_challenge=create_s256_code_challenge(code_verifier),
        code_challenge_method="S256"))


def validate_id_token(id_token: str, keys: KeySet, expected: Expected, now: float,
                      leeway: int = LEEWAY_S) -> Identity:
    """Verify the ID token's signature and claims (OIDC Core 3.1.3.7); pure.

    Checks: a signature by one of the provider's keys with an asymmetric
    algorithm (never `none` or a shared-secret HMAC); `iss` is the issuer;
    `aud` contains the client (and `azp` is it when there are several
    audiences); `exp` is in the future and `iat` not in it (with `leeway`
    seconds of clock skew); `nonce` is the one this sign-in sent; `sub` is there.
    """
    try:
        token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
    except (BadSignatureError, InvalidKeyIdError):
        raise SignInRefused("the ID token's signature does not verify with the provider's keys") from None
    except (JoseError, ValueError) as err:
        raise SignInRefused(f"the ID token is malformed ({type(err).__name__})") from None
    claims = token.claims
    registry = jwt.JWTClaimsRegistry(
        now=int(now), leeway=leeway,
        iss={"essential": True, "value": expected.issuer},
        aud={"essential": True, "value": expected.client_id},
        sub={"essential": True}, exp={"essential": True}, iat={"essential": True})
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise SignInRefused("the ID token has expired; sign in again") from None
    except MissingClaimError as err:
        raise SignInRefused(f"the ID token lacks the {err.claim!r} claim") from None
    except InvalidClaimError as err:
        if err.claim in ("iat", "nbf"):
            raise SignInRefused("the ID token is not valid yet (issued in the future)") from None
        raise SignInRefused(f"the ID token's {err.claim!r} claim is not for this sign-in") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != expected.client_id:
        raise SignInRefused("the ID token was issued to another party (azp)")
    if not isinstance(claims.get("nonce"), str) or claims["nonce"] != expected.nonce:
        raise SignInRefused("the ID token's nonce does not match this sign-in; it was made "
                            "for another sign-in attempt")
    name, email = claims.get("name"), claims.get("email")
    return Identity(expected.issuer, str(claims["sub"]),
                    name if isinstance(name, str) else None,
                    email if isinstance(email, str) else None)


class OidcClient:
    """oO as a confidential client of one OpenID provider."""

    def __init__(self, session: aiohttp.ClientSession, *, issuer: str, client_id: str,
                 client_secret: str, redirect_uri: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._session = session
        self.issuer = issuer
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._clock = clock
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._keys: KeySet | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"OidcClient(issuer={self.issuer!r}, client_id={self.client_id!r})"

    async def metadata(self) -> ProviderMetadata:
        """The discovery document, cached for an hour."""
        cached = self._metadata
        if cached is not None and self._clock() - cached[0] < METADATA_TTL_S:
            return cached[1]
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        data = await self._get_json(url, "configuration")
        metadata = ProviderMetadata.parse(data, self.issuer)
        self._metadata = (self._clock(), metadata)
        return metadata

    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        metadata = await self.metadata()
        return authorization_url(metadata.authorization_endpoint, client_id=self.client_id,
                                 redirect_uri=self.redirect_uri, state=state, nonce=nonce,
                                 code_verifier=code_verifier)

    async def finish(self, code: str, *, nonce: str, code_verifier: str) -> Identity:
        """Exchange the code (with the PKCE verifier) and validate the ID token."""
        metadata = await self.metadata()
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": self.redirect_uri, "code_verifier": code_verifier}
        headers = {"Accept": "application/json",
                   "Authorization": basic_auth(self.client_id, self._client_secret)}
        try:
            async with self._session.post(metadata.token_endpoint, data=form, timeout=TIMEOUT,
                                          headers=headers) as response:
                status = response.status
                body = await response.json(content_type=None) if status < 500 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise SignInRefused("the sign-in provider did not answer; try again shortly") from None
        if status == 400 and isinstance(body, dict) and body.get("error") == "invalid_grant":
            raise SignInRefused("the provider refused the sign-in code: it was already used or "
                                "has expired; sign in again")
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            error = body.get("error") if isinstance(body, dict) else None
            raise SignInRefused("the provider refused the sign-in"
                                + (f" ({error})" if isinstance(error, str) else f" (HTTP {status})"))
        expected = Expected(self.issuer, self.client_id, nonce)
        id_token = body["id_token"]
        keys = await self._jwks(metadata)
        try:
            return validate_id_token(id_token, keys, expected, self._clock())
        except SignInRefused:
            if not _names_unknown_key(id_token, keys):
                raise
        # The provider rotated its keys: read them again, once.
        keys = await self._jwks(metadata, refresh=True)
        return validate_id_token(id_token, keys, expected, self._clock())

    async def _jwks(self, metadata: ProviderMetadata, refresh: bool = False) -> KeySet:
        async with self._lock:
            if self._keys is None or refresh:
                data = await self._get_json(metadata.jwks_uri, "keys")
                try:
                    self._keys = KeySet.import_key_set(data)
                except (JoseError, ValueError, TypeError, KeyError):
                    raise SignInRefused("the sign-in provider's keys are unreadable") from None
            return self._keys

    async def _get_json(self, url: str, what: str) -> Any:
        try:
            async with self._session.get(url, timeout=TIMEOUT,
                                         headers={"Accept": "application/json"}) as response:
                if response.status != 200:
                    raise SignInRefused(f"the sign-in provider's {what} are unavailable "
                                        f"(HTTP {response.status})")
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise SignInRefused(f"the sign-in provider's {what} could not be read; try again "
                                "shortly") from None


def _names_unknown_key(id_token: str, keys: KeySet) -> bool:
    try:
        kid = extract_compact(id_token.encode()).headers().get("kid")
    except (JoseError, ValueError):
        return False
    if not isinstance(kid, str):
        return False
    try:
        keys.get_by_kid(kid)
    except InvalidKeyIdError:
        return True
    return False

