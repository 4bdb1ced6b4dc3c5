"""Write docs/reference/settings.md from the settings declaration: python scripts/gen_settings_docs.py"""

from pathlib import Path

from backpropagate.settings_reference import settings_markdown

target = Path(__file__).resolve().parents[1] / "docs" / "reference" / "settings.md"
target.parent.mkdir(parents=True, exist_ok=True)
target.write_text(settings_markdown())
print(target)
