"""tracker: a small multi-tenant project tracker built on tenantry (the example app).

Projects, tasks, comments and members, served per tenant from ``<slug>.<base domain>``. The
app's code never names a tenant column: the tenant comes from the request's host, tenantry
binds it to every transaction, and PostgreSQL's row-level security keeps tenants apart.

``examples.tracker.app.create_app(tn)`` builds the ASGI app from the pages in
``examples.tracker.pages`` (one router per page area), ``examples.tracker.models:Base`` holds
the tables, and ``tenantry demo`` runs it all with three seeded tenants.
"""
