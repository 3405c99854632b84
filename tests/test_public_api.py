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
