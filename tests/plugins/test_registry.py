"""Registering plugins (no database): what each capability must declare, and that a bad
plugin is refused whole, before anything changes; discovery through entry points."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenantry import ConfigurationError, PluginNotFound, Settings, Tenantry, TenantScoped
from tenantry.contrib.webhooks import WebhooksPlugin
from tenantry.plugins import AppTables, AsgiRoutes, ConfigSection, FlagProvider, LifecycleHooks, Plugin, discover
from tests.model_app import Base
from tests.plugins.sample_plugins import Exploder, Notes, NotesConfig, Recorder


def offline(**kwargs: Any) -> Tenantry:
    """A Tenantry that never connects (registration does no I/O)."""
    return Tenantry(Settings(database_url="host=127.0.0.1 port=1 dbname=none"), metadata=Base.metadata, **kwargs)


def test_capabilities_and_names() -> None:
    tn = offline(plugins=[Notes(), Recorder(), Exploder()])
    assert tn.plugins.names() == ["exploder", "notes", "recorder"]
    assert "notes" in tn.plugins and "nope" not in tn.plugins and len(tn.plugins) == 3
    assert set(tn.config.sections.names()) == {"notes"}
    assert tn.config.sections.schema()().notes == NotesConfig()  # type: ignore[attr-defined]


def test_the_managed_tables_are_the_apps_and_the_plugins() -> None:
    tn = offline()
    assert tn._metadata() is Base.metadata  # no plugin tables: the app's own object
    tn.plugins.register(Notes())
    merged = tn._metadata()
    assert set(merged.tables) == {"projects", "tasks", "comments", "notes_items"}
    assert tn._metadata() is merged  # cached: the spares' fingerprint is computed once
    assert set(Base.metadata.tables) == {"projects", "tasks", "comments"}  # the app's metadata is not changed
    tn.plugins.register(WebhooksPlugin())
    assert "webhooks_deliveries" in tn._metadata().tables and tn._metadata() is not merged


@pytest.mark.parametrize("how", ["object", "class", "entry point name", "import spec"])
def test_ways_to_name_a_plugin(how: str) -> None:
    given: Any = {
        "object": WebhooksPlugin(),
        "class": WebhooksPlugin,
        "entry point name": "webhooks",
        "import spec": "tenantry.contrib.webhooks:WebhooksPlugin",
    }[how]
    tn = offline(plugins=[given])
    assert isinstance(tn.plugins.get("webhooks"), WebhooksPlugin)


def test_settings_name_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env(
        {"TENANTRY_PLUGINS": "webhooks, tests.plugins.sample_plugins:Notes", "TENANTRY_DATABASE_URL": "x"}
    )
    assert settings.plugins == ("webhooks", "tests.plugins.sample_plugins:Notes")
    tn = Tenantry(settings, metadata=Base.metadata)
    assert tn.plugins.names() == ["notes", "webhooks"]
    assert tn.plugins._sources == {"webhooks": "TENANTRY_PLUGINS", "notes": "TENANTRY_PLUGINS"}
    with pytest.raises(PluginNotFound, match="no installed plugin 'nope'"):
        Tenantry(Settings(database_url="x", plugins=("nope",)))
    with pytest.raises(ConfigurationError, match="cannot import plugin module"):
        Tenantry(Settings(database_url="x", plugins=("no_such_module:Thing",)))
    with pytest.raises(ConfigurationError):
        Settings(plugins="webhooks")  # type: ignore[arg-type]


def test_registering_again() -> None:
    notes = Notes()
    tn = offline(plugins=[notes])
    assert tn.plugins.register(notes) is notes  # the same object: a no-op
    with pytest.raises(ConfigurationError, match="a plugin named 'notes' is registered already"):
        tn.plugins.register(Notes())


class _Base(DeclarativeBase):
    pass


class _Unscoped(_Base):
    __tablename__ = "bad_things"
    id: Mapped[int] = mapped_column(primary_key=True)


class _Misnamed(TenantScoped, _Base):
    __tablename__ = "projects"  # an app table's name, and not the plugin's prefix
    id: Mapped[int] = mapped_column(primary_key=True)


class _Outside(TenantScoped, _Base):
    __tablename__ = "bad_links"
    __table_args__ = (sa.ForeignKeyConstraint(["tenant_id", "project_id"], ["projects.tenant_id", "projects.id"]),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column()


def _tables_plugin(name: str, *tables: sa.Table) -> AppTables:
    metadata = sa.MetaData()
    for table in tables:
        table.to_metadata(metadata)

    class P(AppTables):
        pass

    P.name = name
    P.metadata = metadata
    return P()


def _flags_plugin(*definitions: dict[str, Any]) -> FlagProvider:
    class P(FlagProvider):
        name = "flaggy"

        def flag_definitions(self) -> list[dict[str, Any]]:
            return list(definitions)

    return P()


class _NoRoutes(AsgiRoutes):
    name = "noroutes"


class _WrongArgs(LifecycleHooks):
    name = "wrongargs"

    def on_tenant_created(self, tn: Any, tennant: Any) -> None:  # type: ignore[override]
        pass


class _Clashing(ConfigSection):
    name = "clash"

    class Model(BaseModel):
        x: int = 1

    config_model = Model


class _NotAModel(ConfigSection):
    name = "notamodel"
    config_model = dict  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: _tables_plugin("bad", _Unscoped.__table__), "primary key must start with tenant_id"),
        (lambda: _tables_plugin("bad", _Misnamed.__table__), "table 'projects' must be named bad_"),
        (
            lambda: _tables_plugin("bad", _Outside.__table__),
            "foreign key to projects, which is not one of the plugin's tables",
        ),
        (lambda: _tables_plugin("bad"), "no metadata with tables"),
        (lambda: _flags_plugin({"key": "other.flag"}), "must be named flaggy.<...>"),
        (lambda: _flags_plugin({"key": "flaggy.x", "rollout": 250}), "declares a bad flag"),
        (_NoRoutes, "does not define asgi_app"),
        (_WrongArgs, "wrongargs"),
        (_NotAModel, "config_model is"),
        (lambda: type("Nameless", (Plugin,), {})(), "plugin name 'None'"),
        (lambda: type("BadName", (Plugin,), {"name": "Bad_Name"})(), "plugin name 'Bad_Name'"),
        (lambda: object(), "is not a tenantry plugin"),
    ],
)
def test_a_bad_plugin_is_refused_whole(make: Any, message: str) -> None:
    tn = offline()
    with pytest.raises(ConfigurationError, match=message):
        tn.plugins.register(make())
    assert tn.plugins.names() == [] and tn.config.sections.names() == []
    assert tn._metadata() is Base.metadata


def test_a_config_section_that_clashes_with_the_app_registers_nothing() -> None:
    class AppConfig(BaseModel):
        clash: int = 0

    tn = offline(config=AppConfig)
    with pytest.raises(ConfigurationError, match="clashes with a field of AppConfig"):
        tn.plugins.register(_Clashing())
    assert "clash" not in tn.plugins


def test_a_plugin_table_named_like_an_app_table_is_refused_when_merged() -> None:
    class _Base2(DeclarativeBase):
        pass

    class NotesItems(TenantScoped, _Base2):  # the app has a table of the plugin's name
        __tablename__ = "notes_items"
        id: Mapped[int] = mapped_column(primary_key=True)

    tn = Tenantry(Settings(database_url="x"), metadata=_Base2.metadata, plugins=[Notes()])
    with pytest.raises(ConfigurationError, match="clashes with a table of the app"):
        tn._metadata()


def test_the_built_in_webhooks_plugin_is_installed() -> None:
    found = discover()
    assert found["webhooks"].value == "tenantry.contrib.webhooks:WebhooksPlugin"
    assert found["webhooks"].distribution == "tenantry"
    assert isinstance(found["webhooks"].load(), WebhooksPlugin)


def _install_fake_package(root: Path, name: str, target: str, module: str, source: str) -> None:
    """A distribution in ``root`` as pip leaves one: a dist-info with an entry point, and its module."""
    info = root / f"{name.replace('-', '_')}-1.2.dist-info"  # as pip names it
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(f"[tenantry.plugins]\n{target}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


def test_a_plugin_is_discovered_through_its_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake_package(
        tmp_path,
        "tenantry-greeter",
        "greeter = greeter_plugin:Greeter",
        "greeter_plugin",
        """
        from tenantry.plugins import LifecycleHooks

        class Greeter(LifecycleHooks):
            name = "greeter"
            description = "says hello"

            def on_tenant_created(self, tn, tenant):
                print("hello", tenant.slug)
    """,
    )
    _install_fake_package(
        tmp_path,
        "tenantry-broken",
        "broken = broken_plugin:Broken",
        "broken_plugin",
        """
        raise ImportError("this plugin needs libfoo")
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = discover()
    assert found["greeter"].distribution == "tenantry-greeter" and found["greeter"].version == "1.2"
    tn = offline()
    assert {"greeter", "broken", "webhooks"} <= tn.plugins.known()
    assert "greeter" not in tn.plugins  # discovered, not run: the app decides what runs
    tn2 = offline(plugins=["greeter"])
    greeter = tn2.plugins.get("greeter")
    assert greeter is not None and greeter.description == "says hello"
    with pytest.raises(ConfigurationError, match="plugin 'broken' .* does not load: this plugin needs libfoo"):
        offline(plugins=["broken"])
    monkeypatch.setenv("TENANTRY_PLUGINS", "*")
    monkeypatch.setenv("TENANTRY_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ConfigurationError, match="broken"):
        Tenantry(Settings.from_env(), metadata=Base.metadata)  # '*' loads every installed one, broken ones fail loudly
