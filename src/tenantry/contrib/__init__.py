"""Plugins that ship with tenantry. Each is an ordinary plugin (see :mod:`tenantry.plugins`),
installed with tenantry and discovered through its ``tenantry.plugins`` entry point."""
