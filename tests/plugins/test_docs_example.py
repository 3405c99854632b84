"""docs/plugins.md's example is examples/plugin_quickstart.py, verbatim, and it runs: the
plugin answers for the tenant it is on for and never for the other, and a rerun works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support import Scratch, catalog_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin_quickstart.py"


def test_the_docs_show_the_example_verbatim() -> None:
    doc = (ROOT / "docs" / "plugins.md").read_text()
    block = re.search(r"<!-- example:begin -->\n```python\n(.*?)```\n<!-- example:end -->", doc, re.S)
    assert block and block.group(1) == EXAMPLE.read_text()


def test_the_example_runs(server_url: str) -> None:
    db = Scratch(server_url)
    try:
        env = catalog_env(db)
        for events in (
            "['suspended', 'resumed']",
            "['suspended', 'resumed', 'suspended', 'resumed']",
        ):  # twice: reruns work
            done = subprocess.run(
                [sys.executable, str(EXAMPLE)],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            assert done.stdout.splitlines() == [
                f"plug-acme 200 {{'tenant': 'plug-acme', 'label': 'Activity', 'events': {events}}}",
                "plug-globex 404 no such resource",
                "enabled for plug-acme: ['activity']",
            ]
    finally:
        db.drop()
