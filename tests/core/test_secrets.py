"""Secret config fields, pure: which fields are secret, sealing with a keyring (bound to its
layer and path), redaction, and redacted values written back."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, SecretStr

from tenantry import ConfigurationError, InvalidInput
from tenantry.core.secrets import (
    REDACTED,
    Keyring,
    is_sealed,
    keep_redacted,
    new_key,
    redact,
    redact_overrides,
    seal,
    seal_overrides,
    secret_paths,
    unseal,
    unseal_overrides,
)


class Item(BaseModel):
    token: SecretStr
    label: str = ""


class Billing(BaseModel):
    api_key: SecretStr | None = None
    items: list[Item] = []


class App(BaseModel):
    billing: Billing = Billing()
    password: SecretStr | None = None
    name: str = ""


PATHS = secret_paths(App)
DOC = {"billing": {"api_key": "k-123", "items": [{"token": "t-1", "label": "a"}]}, "password": "hunter2", "name": "x"}


def test_secret_paths_follow_optionals_nested_models_and_lists() -> None:
    assert PATHS == {("billing", "api_key"), ("billing", "items", "[]", "token"), ("password",)}


def test_sealed_values_open_only_in_their_own_layer_and_path() -> None:
    ring = Keyring.parse(new_key("k1"))
    sealed = seal(DOC, PATHS, ring, "tenant:1")
    assert sealed["name"] == "x" and sealed["billing"]["items"][0]["label"] == "a"
    for value in (sealed["password"], sealed["billing"]["api_key"], sealed["billing"]["items"][0]["token"]):
        assert is_sealed(value) and "hunter2" not in value and value.startswith("tenantry:sealed:v1:k1:")
    assert unseal(sealed, ring, "tenant:1") == DOC
    with pytest.raises(ConfigurationError, match="does not open"):  # copied to another tenant's layer
        unseal(sealed, ring, "tenant:2")
    moved = {"password": sealed["billing"]["api_key"]}  # or to another field
    with pytest.raises(ConfigurationError, match="does not open"):
        unseal(moved, ring, "tenant:1")
    assert unseal(moved, ring, "tenant:2", strict=False) == moved
    with pytest.raises(ConfigurationError, match="TENANTRY_SECRET_KEYS"):
        seal(DOC, PATHS, None, "tenant:1")


def test_keyring_rotation_opens_old_values_and_seals_with_the_first_key() -> None:
    old = new_key("old")
    sealed = seal({"password": "hunter2"}, PATHS, Keyring.parse(old), "plan:free")
    rotated = Keyring.parse(f"{new_key('new')},{old}")
    assert unseal(sealed, rotated, "plan:free") == {"password": "hunter2"}
    assert seal({"password": "x"}, PATHS, rotated, "plan:free")["password"].startswith("tenantry:sealed:v1:new:")
    with pytest.raises(ConfigurationError, match="'old'"):
        unseal(sealed, Keyring.parse(new_key("new")), "plan:free")
    for bad in ("k1", "k1:short", "bad id:" + "A" * 44, ""):
        with pytest.raises(ConfigurationError):
            Keyring.parse(bad)


def test_derived_keys_are_stable_per_purpose_and_follow_rotation() -> None:
    old, new = new_key("old"), new_key("new")
    ring = Keyring.parse(old)
    [session] = ring.derive("app.sessions")
    assert len(session) == 32
    assert Keyring.parse(old).derive("app.sessions") == [session]  # another process, the same key
    assert ring.derive("app.csrf") != [session]  # each purpose its own
    assert Keyring.parse(new).derive("app.sessions") != [session]  # another secret, another key
    assert session not in ring._keys.values()  # never the sealing key itself
    rotated = Keyring.parse(f"{new},{old}").derive("app.sessions")
    assert rotated == [*Keyring.parse(new).derive("app.sessions"), session]  # current first, the old one still known
    with pytest.raises(ConfigurationError):
        ring.derive("")


def test_redaction_hides_secret_paths_and_anything_sealed() -> None:
    shown = redact(DOC, PATHS)
    assert shown == {
        "billing": {"api_key": REDACTED, "items": [{"token": REDACTED, "label": "a"}]},
        "password": REDACTED,
        "name": "x",
    }
    assert redact({"stray": "tenantry:sealed:v1:k:abc"}, frozenset()) == {"stray": REDACTED}
    overrides = {
        "billing.api_key": {"value": "k-9", "expires_at": "2030-01-01T00:00:00+00:00"},
        "name": {"value": "y", "expires_at": "x"},
    }
    assert redact_overrides(overrides, PATHS)["billing.api_key"]["value"] == REDACTED
    assert redact_overrides(overrides, PATHS)["name"]["value"] == "y"
    ring = Keyring.parse(new_key())
    sealed = seal_overrides(overrides, PATHS, ring, "tenant:1")
    assert is_sealed(sealed["billing.api_key"]["value"]) and sealed["name"]["value"] == "y"
    assert unseal_overrides(sealed, ring, "tenant:1") == overrides


def test_a_redacted_value_written_back_keeps_the_secret() -> None:
    assert keep_redacted(redact(DOC, PATHS) | {"name": "z"}, DOC, PATHS)["password"] == "hunter2"
    with pytest.raises(InvalidInput, match="redacted"):
        keep_redacted({"password": REDACTED}, {}, PATHS)
