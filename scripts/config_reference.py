"""Print the configuration reference (markdown) from the schema, for README.md.

Usage: python scripts/config_reference.py > docs/config_reference.md
"""

from __future__ import annotations

from pydantic import BaseModel

from cd7escape._config import Config, SampleSpec


def _rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(_rows(ann, f"{prefix}{name}."))
            continue
        default = (
            "required"
            if field.is_required()
            else repr(field.get_default(call_default_factory=True))
        )
        rows.append(f"| `{prefix}{name}` | `{default}` | {field.description or ''} |")
    return rows


def main() -> None:
    print("# Configuration reference\n")
    print("Generated from `src/cd7escape/_config.py` by `python scripts/config_reference.py`.\n")
    print("| key | default | meaning |\n|---|---|---|")
    print("\n".join(_rows(Config)))
    print("\n## Sample sheet columns\n")
    print("| column | default | meaning |\n|---|---|---|")
    print("\n".join(_rows(SampleSpec)))


if __name__ == "__main__":
    main()
