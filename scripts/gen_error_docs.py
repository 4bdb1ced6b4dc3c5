"""Write docs/reference/errors.md from the error catalog: python scripts/gen_error_docs.py"""

from pathlib import Path

from backpropagate.contract.errors import catalog_markdown

target = Path(__file__).resolve().parents[1] / "docs" / "reference" / "errors.md"
target.write_text(catalog_markdown())
print(target)
