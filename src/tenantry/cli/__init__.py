"""The ``tenantry`` command line: thin commands over :class:`tenantry.Tenantry`."""
