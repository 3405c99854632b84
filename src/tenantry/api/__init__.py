"""The admin HTTP API (FastAPI): ``create_admin_app(tn)``. Needs the ``web`` extra
(``pip install tenantry[web]``)."""

from tenantry.api.app import API_PREFIX, create_admin_app

__all__ = ["API_PREFIX", "create_admin_app"]
