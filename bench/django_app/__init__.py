"""A minimal Django project for ``bench/vs_django_tenants.py``: django-tenants' tenant and
domain models (``customers``, a shared app) and the benchmark's 20-table app as Django models
(``bench_tenant``, the tenant app).

There are no settings module and no migration files here: the benchmark configures Django
itself (``settings.configure``) against its scratch database and generates the migrations
with ``makemigrations`` into a temporary directory (``MIGRATION_MODULES``), so they always
match the spec in ``bench/provisioning.py``.
"""
