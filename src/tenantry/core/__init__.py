"""Pure core: no driver, no I/O."""
