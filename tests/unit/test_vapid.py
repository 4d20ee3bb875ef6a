"""VAPID key files: written private, never overwritten by accident, checked on load."""

from __future__ import annotations

import base64
import io
import json
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from py_vapid import Vapid

from oo.pushservice.protocol import Refused, check_vapid
from oo.vapid import (
    VapidKeyError,
    cli_generate,
    cli_public_key,
    generate_keys,
    is_valid_subject,
    load_vapid,
    origin,
)

pytestmark = pytest.mark.unit


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_private_key_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "state" / "vapid" / "private_key.pem"
    generate_keys(path)
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert _mode(path.parent.parent) == 0o700


def test_generated_key_is_private_even_under_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "k.pem"
        generate_keys(path)
    finally:
        os.umask(old)
    assert _mode(path) == 0o600


def test_public_key_is_the_65_byte_uncompressed_point_in_unpadded_base64url(tmp_path):
    public = generate_keys(tmp_path / "k.pem")
    assert "=" not in public and "+" not in public and "/" not in public
    raw = _decode(public)
    assert len(raw) == 65 and raw[0] == 0x04
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)  # a point on P-256


def test_loaded_key_gives_back_the_public_key_generate_printed(tmp_path):
    path = tmp_path / "k.pem"
    public = generate_keys(path)
    key = load_vapid(path)
    assert key.public_key == public
    assert isinstance(key.private_key.curve, ec.SECP256R1)
    assert key.vapid().public_key.public_numbers() == key.private_key.public_key().public_numbers()


def test_an_existing_key_is_not_overwritten_without_force(tmp_path):
    path = tmp_path / "k.pem"
    first = generate_keys(path)
    before = path.read_bytes()
    with pytest.raises(VapidKeyError, match="already exists.*--force"):
        generate_keys(path)
    assert path.read_bytes() == before
    assert load_vapid(path).public_key == first


def test_force_replaces_the_key_and_keeps_it_private(tmp_path):
    path = tmp_path / "k.pem"
    first = generate_keys(path)
    second = generate_keys(path, force=True)
    assert second != first
    assert load_vapid(path).public_key == second
    assert _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k.pem"]  # no temporary file left


def test_missing_key_says_how_to_make_one(tmp_path):
    path = tmp_path / "nope.pem"
    with pytest.raises(VapidKeyError) as caught:
        load_vapid(path)
    message = str(caught.value)
    assert str(path) in message and "oo vapid generate" in message and "\n" not in message


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o660])
def test_key_readable_by_group_or_others_is_refused(tmp_path, mode):
    path = tmp_path / "k.pem"
    generate_keys(path)
    path.chmod(mode)
    with pytest.raises(VapidKeyError) as caught:
        load_vapid(path)
    message = str(caught.value)
    assert str(path) in message and f"{mode:04o}" in message and "chmod 600" in message
    assert "\n" not in message


@pytest.mark.parametrize("content", [
    b"",
    b"not a key at all\n",
    b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
])
def test_malformed_key_is_refused_with_one_clear_line(tmp_path, content):
    path = tmp_path / "k.pem"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(VapidKeyError) as caught:
        load_vapid(path)
    message = str(caught.value)
    assert str(path) in message and "oo vapid generate --force" in message
    assert "\n" not in message


def test_a_key_of_the_wrong_kind_is_refused(tmp_path):
    path = tmp_path / "k.pem"
    wrong = [
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ]
    for key in wrong:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)
        with pytest.raises(VapidKeyError, match="not an unencrypted P-256 private key"):
            load_vapid(path)


def test_a_folder_in_place_of_the_key_is_refused(tmp_path):
    with pytest.raises(VapidKeyError, match="not a regular file"):
        load_vapid(tmp_path)


def test_headers_carry_a_token_a_push_service_accepts(tmp_path):
    key = load_vapid_after_generate(tmp_path)
    endpoint = "https://push.example.net:8443/push/abc"
    headers = key.headers(endpoint, "mailto:ops@example.org", now=1_000_000)
    identity = check_vapid(headers["Authorization"], audience="https://push.example.net:8443",
                           now=1_000_000, application_server_key=_decode(key.public_key))
    assert identity.subject == "mailto:ops@example.org"
    assert identity.expires == 1_000_000 + 12 * 3600
    assert identity.public_key == key.public_key
    claims = json.loads(_decode(headers["Authorization"].split("t=")[1].split(".")[1]))
    assert claims["aud"] == origin(endpoint) == "https://push.example.net:8443"


def test_headers_refuse_lifetimes_beyond_24_hours_and_bad_subjects(tmp_path):
    key = load_vapid_after_generate(tmp_path)
    with pytest.raises(ValueError, match="lifetime"):
        key.headers("https://p.example/push/1", "mailto:a@b.example", now=0, lifetime=86401)
    with pytest.raises(ValueError, match="subject"):
        key.headers("https://p.example/push/1", "ops@example.org", now=0)


def test_a_token_checked_at_another_origin_is_refused(tmp_path):
    key = load_vapid_after_generate(tmp_path)
    headers = key.headers("https://a.example/push/1", "mailto:a@b.example", now=100)
    with pytest.raises(Refused) as caught:
        check_vapid(headers["Authorization"], audience="https://b.example", now=100)
    assert caught.value.status == 403 and "aud" in caught.value.reason


@pytest.mark.parametrize(("subject", "valid"), [
    ("mailto:ops@example.org", True),
    ("mailto:oo@localhost", True),
    ("https://oo.example.org", True),
    ("https://localhost", True),
    ("https://oo.example.org/contact", False),  # py_vapid refuses paths
    ("mailto:ops@example", False),  # ... and undotted hosts
    ("ops@example.org", False),
    ("mailto:", False),
    ("mailto:nobody", False),
    ("http://oo.example.org", False),
    ("https://", False),
    ("mailto:a b@example.org", False),
])
def test_subject_must_be_a_mailto_or_https_url_pywebpush_accepts(subject, valid):
    assert is_valid_subject(subject) is valid
    if valid:  # whatever passes here, py_vapid signs with too
        key = Vapid()
        key.generate_keys()
        key.sign({"aud": "https://push.example", "exp": 2_000_000_000, "sub": subject})


def test_cli_generate_prints_the_public_key_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "vapid" / "private_key.pem"
    out, err = io.StringIO(), io.StringIO()
    assert cli_generate(path, False, out=out, err=err) == 0
    public = out.getvalue().strip()
    assert public == load_vapid(path).public_key
    assert str(path) in err.getvalue()

    out, err = io.StringIO(), io.StringIO()
    assert cli_generate(path, False, out=out, err=err) == 2
    assert out.getvalue() == ""
    assert err.getvalue().startswith("oo: error: ") and err.getvalue().count("\n") == 1

    out = io.StringIO()
    assert cli_generate(path, True, out=out, err=io.StringIO()) == 0
    assert out.getvalue().strip() != public


def test_cli_public_key_prints_the_key_or_one_error_line(tmp_path):
    path = tmp_path / "k.pem"
    out, err = io.StringIO(), io.StringIO()
    assert cli_public_key(path, out=out, err=err) == 2
    assert "oo vapid generate" in err.getvalue() and out.getvalue() == ""
    public = generate_keys(path)
    out = io.StringIO()
    assert cli_public_key(path, out=out) == 0
    assert out.getvalue().strip() == public


def load_vapid_after_generate(folder):
    path = folder / "k.pem"
    generate_keys(path)
    return load_vapid(path)
