import tenantry
from tenantry import errors


def test_all_is_sorted_and_complete() -> None:
    assert tenantry.__all__ == sorted(tenantry.__all__)
    for name in tenantry.__all__:
        assert hasattr(tenantry, name), name


def test_every_error_is_exported_and_has_codes() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, tenantry.TenantryError)
        assert name in tenantry.__all__
        assert cls.exit_code > 0 and 400 <= cls.http_status < 600 or cls.http_status == 500


def test_import_does_no_io(monkeypatch) -> None:
    import importlib
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("import opened a socket")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    importlib.reload(tenantry)
    tenantry.Tenantry(tenantry.Settings(embedded=True))  # constructing connects to nothing


def test_lazy_names_are_what_type_checkers_see() -> None:
    """Each name the package loads on first use is the object its ``TYPE_CHECKING`` import
    names, so what mypy checks is what runs."""
    import ast
    import importlib
    import inspect

    tree = ast.parse(inspect.getsource(tenantry))
    guarded = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    seen = set()
    for node in guarded.body:
        assert isinstance(node, ast.ImportFrom) and node.module is not None
        for alias in node.names:
            name = alias.asname or alias.name
            seen.add(name)
            assert getattr(tenantry, name) is getattr(importlib.import_module(node.module), alias.name), name
    assert seen | set(errors.__all__) == set(tenantry.__all__)


def test_import_loads_no_driver() -> None:
    import subprocess
    import sys

    probe = "import sys, tenantry; print(sorted({m.split('.')[0] for m in sys.modules} & {'psycopg', 'pydantic', 'sqlalchemy'}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_what_the_facade_returns_is_exported() -> None:
    """Every tenantry type a public method of ``Tenantry`` returns can be imported from
    ``tenantry`` (users annotate their code with them)."""
    import inspect
    import typing

    def classes(hint: object) -> set[type]:
        found = {hint} if isinstance(hint, type) else set()
        for arg in typing.get_args(hint):
            found |= classes(arg)
        return found

    missing = {}
    for name, member in inspect.getmembers(tenantry.Tenantry):
        if name.startswith("_") or not callable(member):
            continue
        try:
            hints = typing.get_type_hints(member)
        except NameError:  # an annotation only a type checker resolves
            continue
        for cls in classes(hints.get("return")):
            if cls.__module__.startswith("tenantry.") and cls.__name__ not in tenantry.__all__:
                missing[f"Tenantry.{name}"] = f"{cls.__module__}.{cls.__name__}"
    assert missing == {}
