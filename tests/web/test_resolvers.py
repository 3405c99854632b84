"""Resolvers on their own: pure decisions from the request, no database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tenantry import ConfigurationError
from tenantry.web import (
    CustomDomainResolver,
    HeaderResolver,
    JwtClaimResolver,
    Match,
    PathPrefixResolver,
    Refusal,
    RequestInfo,
    SubdomainResolver,
)

SECRET = "s3cret-for-tests-only-" + "0123456789abcdef" * 4


def request(host: str | None = "acme.example.com", path: str = "/", root_path: str = "", **headers: str) -> RequestInfo:
    raw = [] if host is None else [(b"host", host.encode())]
    raw += [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return RequestInfo.from_scope({"type": "http", "path": root_path + path, "root_path": root_path, "headers": raw})


def test_subdomain() -> None:
    r = SubdomainResolver("Example.com.")
    assert r.resolve(request("acme.example.com")) == Match("subdomain", "slug", "acme")
    assert r.resolve(request("ACME.example.com:8443")) == Match("subdomain", "slug", "acme")
    assert r.resolve(request("acme.example.com.")) == Match("subdomain", "slug", "acme")
    for host in (
        "example.com",
        "www.example.com",
        "api.example.com",
        "a.b.example.com",
        "acme.example.org",
        "acmeexample.com",
        "[::1]:80",
        None,
    ):
        assert r.resolve(request(host)) is None, host
    local = SubdomainResolver("localhost", reserved=["status"])
    assert local.resolve(request("acme.localhost:8000")) == Match("subdomain", "slug", "acme")
    assert local.resolve(request("status.localhost:8000")) is None
    assert local.resolve(request("www.localhost")) == Match("subdomain", "slug", "www")  # reserved list replaced


def test_custom_domain() -> None:
    assert CustomDomainResolver().resolve(request("Shop.Acme.com:80")) == Match("domain", "host", "shop.acme.com")
    assert CustomDomainResolver().resolve(request(None)) is None
    based = CustomDomainResolver("example.com")
    assert based.resolve(request("acme.example.com")) is None and based.resolve(request("example.com")) is None
    assert based.resolve(request("shop.acme.com")) == Match("domain", "host", "shop.acme.com")


def test_header() -> None:
    r = HeaderResolver("X-Tenant-Id")
    assert r.resolve(request(x_tenant_id=" acme ")) == Match("header", "key", "acme")
    assert r.resolve(request(x_tenant="acme")) is None
    assert r.resolve(request(x_tenant_id="  ")) is None


def test_path_prefix_moves_to_root_path() -> None:
    r = PathPrefixResolver("/t/")
    assert r.resolve(request(path="/t/acme/projects/1")) == Match("path", "slug", "acme", root_path="/t/acme")
    assert r.resolve(request(path="/t/acme")) == Match("path", "slug", "acme", root_path="/t/acme")
    # mounted under /api: the prefix is found below the app's root_path, which grows
    assert r.resolve(request(path="/t/acme/x", root_path="/api")) == Match(
        "path", "slug", "acme", root_path="/api/t/acme"
    )
    for path in ("/", "/t", "/t/", "/tx/acme", "/x/t/acme"):
        assert r.resolve(request(path=path)) is None, path
    with pytest.raises(ConfigurationError):
        PathPrefixResolver("/")


def _token(claims: dict[str, object], key: object = SECRET, algorithm: str = "HS256", **header: object) -> str:
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, key, algorithm=algorithm, headers=header or None)  # type: ignore[arg-type]


def _bearer(token: str) -> RequestInfo:
    return request(authorization=f"Bearer {token}")


def test_jwt_valid_and_absent() -> None:
    r = JwtClaimResolver(SECRET, algorithms=["HS256"], audience="app", issuer="https://idp")
    good = _token({"tenant": "acme", "aud": "app", "iss": "https://idp"})
    assert r.resolve(_bearer(good)) == Match("jwt", "key", "acme")
    assert r.resolve(request()) is None  # no token: other resolvers decide
    assert r.resolve(request(authorization=f"Basic {good}")) is None
    # a valid token without the claim names no tenant
    assert r.resolve(_bearer(_token({"aud": "app", "iss": "https://idp"}))) is None


# tokens are made when the test runs (a token made at collection could expire before it)
@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: _token({"tenant": "acme", "aud": "app"}, key="another-secret-" + "x" * 64), "InvalidSignatureError"),
        (lambda: _token({"tenant": "acme", "aud": "app", "exp": int(time.time()) - 10}), "expired"),
        (lambda: _token({"tenant": "acme", "aud": "other"}), "InvalidAudienceError"),
        (lambda: _token({"tenant": "acme"}), "MissingRequiredClaimError"),
        (lambda: _token({"tenant": "acme", "aud": "app"}, algorithm="HS512"), "InvalidAlgorithmError"),
        (
            lambda: jwt.encode({"tenant": "acme", "aud": "app", "exp": int(time.time()) + 60}, None, algorithm="none"),
            "Error",
        ),
        (lambda: "not.a.jwt", "DecodeError"),
        (lambda: _token({"tenant": 42, "aud": "app"}), "claim"),
    ],
    ids=["signature", "expired", "audience", "no-audience", "algorithm", "alg-none", "garbage", "claim-type"],
)
def test_jwt_refusals(make: Any, fragment: str) -> None:
    r = JwtClaimResolver(SECRET, algorithms=["HS256"], audience="app")
    refusal = r.resolve(_bearer(make()))
    assert isinstance(refusal, Refusal), refusal
    assert refusal.status == 401 and fragment in refusal.detail
    assert refusal.headers["www-authenticate"].startswith("Bearer")


def test_jwt_missing_exp_refused_by_default() -> None:
    r = JwtClaimResolver(SECRET, algorithms=["HS256"])
    no_exp = jwt.encode({"tenant": "acme"}, SECRET, algorithm="HS256")
    assert isinstance(r.resolve(_bearer(no_exp)), Refusal)
    assert JwtClaimResolver(SECRET, algorithms=["HS256"], require=()).resolve(_bearer(no_exp)) == Match(
        "jwt", "key", "acme"
    )


def test_jwt_public_keys_by_kid_and_no_key_confusion() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    r = JwtClaimResolver({"k1": private.public_key()}, algorithms=["RS256"])
    assert r.resolve(_bearer(_token({"tenant": "acme"}, private, "RS256", kid="k1"))) == Match("jwt", "key", "acme")
    assert isinstance(r.resolve(_bearer(_token({"tenant": "acme"}, private, "RS256", kid="k2"))), Refusal)
    for kid in ([], {"a": 1}, None, 7):  # hostile headers (made by hand) are refusals, not crashes
        head = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "kid": kid}).encode()).rstrip(b"=").decode()
        assert isinstance(r.resolve(_bearer(f"{head}.e30.c2ln")), Refusal)

    # the classic confusion: an HS256 token whose secret is the public key (PyJWT will not
    # even sign one, so it is made by hand); the allow-list and key type must refuse it
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"tenant": "acme", "exp": int(time.time()) + 60}).encode())
    sig = b64(hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    assert isinstance(
        JwtClaimResolver(public_pem, algorithms=["RS256"]).resolve(_bearer(f"{head}.{body}.{sig}")), Refusal
    )
    both = JwtClaimResolver(public_pem, algorithms=["RS256", "HS256"])
    assert isinstance(both.resolve(_bearer(f"{head}.{body}.{sig}")), Refusal)


def test_jwt_configuration() -> None:
    with pytest.raises(ConfigurationError, match="none"):
        JwtClaimResolver(SECRET, algorithms=["none"])
    with pytest.raises(ConfigurationError, match="allow-list"):
        JwtClaimResolver(SECRET, algorithms=[])
    with pytest.raises(ConfigurationError, match="key"):
        JwtClaimResolver(algorithms=["HS256"])
    # unverified: only when asked for, and expiry still counts
    r = JwtClaimResolver(algorithms=["HS256"], unverified=True)
    assert r.resolve(_bearer(_token({"tenant": "acme"}, key="whatever-key-" + "y" * 64))) == Match("jwt", "key", "acme")
    assert isinstance(r.resolve(_bearer(_token({"tenant": "acme", "exp": int(time.time()) - 5}))), Refusal)
