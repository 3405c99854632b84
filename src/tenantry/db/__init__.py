"""The layer that talks to PostgreSQL: server, catalog, roles, tenant-bound connections."""
