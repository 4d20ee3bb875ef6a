"""ID token validation (OIDC Core 3.1.3.7), pure: signature, iss, aud/azp, exp, iat, nonce."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from adapters.oidc import Expected, SignInRefused, authorization_url, validate_id_token

pytestmark = pytest.mark.unit
NOW = 1_800_000_000
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"}, private=True)
KEYS = KeySet.import_key_set({"keys": [KEY.as_dict(private=False)]})
EXPECTED = Expected("https://id.example", "oo-client", "n-123")


def token(key=KEY, alg="RS256", **claims):
    base = {"iss": "https://id.example", "aud": "oo-client", "sub": "person-1", "iat": NOW,
            "exp": NOW + 300, "nonce": "n-123", "name": "Ada"}
    base.update(claims)
    payload = {k: v for k, v in base.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": key.kid or "k1"}, payload, key)


def refused(value: str, now: int = NOW) -> str:
    with pytest.raises(SignInRefused) as caught:
        validate_id_token(value, KEYS, EXPECTED, now)
    return caught.value.message


def test_a_valid_token_gives_the_identity():
    identity = validate_id_token(token(), KEYS, EXPECTED, NOW)
    assert (identity.issuer, identity.subject, identity.name) == ("https://id.example",
                                                                  "person-1", "Ada")


@pytest.mark.parametrize(("claims", "words"), [
    ({"iss": "https://evil.example"}, "'iss' claim"),
    ({"aud": "someone-else"}, "'aud' claim"),
    ({"nonce": "n-other"}, "nonce does not match"),
    ({"nonce": None}, "nonce does not match"),
    ({"sub": None}, "lacks the 'sub'"),
    ({"exp": NOW - 10}, "expired"),
    ({"iat": NOW + 120}, "not valid yet"),
    ({"aud": ["oo-client", "other"]}, "another party (azp)"),
])
def test_a_token_not_for_this_sign_in_is_refused(claims, words):
    assert words in refused(token(**claims))


def test_a_few_seconds_of_clock_skew_are_tolerated():
    assert validate_id_token(token(exp=NOW - 3), KEYS, EXPECTED, NOW).subject == "person-1"
    assert validate_id_token(token(aud=["oo-client", "x"], azp="oo-client"), KEYS, EXPECTED,
                             NOW).subject == "person-1"


def test_signatures_by_other_keys_or_without_a_key_are_refused():
    other = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    assert "signature does not verify" in refused(token(key=other))
    stranger = ECKey.generate_key("P-256", parameters={"kid": "k9"}, private=True)
    assert "signature does not verify" in refused(token(key=stranger, alg="ES256"))
    # HMAC with a shared secret (e.g. the public key's bytes) is never accepted.
    secret = OctKey.import_key("x" * 32, {"kid": "k1"})
    assert "ID token" in refused(token(key=secret, alg="HS256"))
    header, payload, _ = token().split(".")
    assert "ID token" in refused(f"{header}.{payload}.")
    assert "malformed" in refused("not-a-jwt")


def test_the_authorization_url_carries_pkce_state_and_nonce():
    url = authorization_url("https://id.example/auth", client_id="oo-client",
                            redirect_uri="https://oo.example/auth/callback", state="s-1",
                            nonce="n-1", code_verifier="v" * 43)
    assert url.startswith("https://id.example/auth?")
    for part in ("response_type=code", "client_id=oo-client", "state=s-1", "nonce=n-1",
                 "code_challenge_method=S256", "scope=openid+email+profile",
                 "redirect_uri=https%3A%2F%2Foo.example%2Fauth%2Fcallback"):
        assert part in url
    assert "code_challenge=" in url and "v" * 43 not in url
