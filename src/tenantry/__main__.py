"""``python -m tenantry``: the ``tenantry`` command, for when its script is not on the PATH."""

from tenantry.cli.main import run

if __name__ == "__main__":
    run()
