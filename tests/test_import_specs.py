"""Import specs (``module:attr``) resolve one way: the working directory importable, and one
ConfigurationError line when they do not."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

from tenantry._imports import import_module, resolve
from tenantry.errors import ConfigurationError


def test_resolves_dotted_attributes() -> None:
    assert resolve("json:JSONDecoder.decode", what="app", example="Base") is json.JSONDecoder.decode
    assert import_module("json", what="app") is json


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("json", "app spec 'json' must look like 'package.module:Base'"),
        ("json:", "app spec 'json:' must look like 'package.module:Base'"),
        (
            "no_such_module_here:Base",
            "cannot import app module 'no_such_module_here': No module named 'no_such_module_here'",
        ),
        ("json:Nope.x", "app spec 'json:Nope.x': 'json' has no attribute 'Nope.x'"),
        ("my-app:Base", "cannot import app module 'my-app': invalid format: 'my-app:Base'"),
    ],
)
def test_errors_say_why_in_one_line(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve(spec, what="app", example="Base")
    assert str(caught.value) == message


def test_the_working_directory_is_importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"specs_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("VALUE = 42\n")
    (tmp_path / f"{name}_broken.py").write_text("raise RuntimeError('needs libfoo\\nsecond line')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert resolve(f"{name}:VALUE", what="app", example="Base") == 42
    assert str(tmp_path) not in sys.path  # put back as it was
    with pytest.raises(ConfigurationError, match=rf"^cannot import plugin module '{name}_broken': needs libfoo$"):
        resolve(f"{name}_broken:Plugin", what="plugin", example="Plugin")
