"""Write docs/settings.md from the settings tables (tests/test_cli.py checks it is current)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector.config import SERVE_SETTINGS as CONNECTOR  # noqa: E402
from mesh.config import markdown_table  # noqa: E402
from registry.config import SERVE_SETTINGS as REGISTRY  # noqa: E402

HEADER = """# Settings / 設定

Every setting is a command-line flag and an environment variable. This page is generated
from the settings tables by `python scripts/generate_settings_doc.py`; do not edit by hand.

"""


def render() -> str:
    return (HEADER + markdown_table("`areamesh registry serve`", REGISTRY) + "\n"
            + markdown_table("`areamesh connector serve`", CONNECTOR))


if __name__ == "__main__":
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "settings.md").write_text(render())
    print("wrote docs/settings.md")
