"""Write docs/config.md, the config reference, from the same source as `distgan train --help-config`
(the dataclasses of distgan/config/sections.py and the comment on each field).

    python scripts/config_reference.py           # rewrite docs/config.md
    python scripts/config_reference.py --check   # exit 1 when docs/config.md is not current
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distgan.config import describe

OUT = Path(__file__).resolve().parents[1] / "docs" / "config.md"
HEADER = """# Config reference

Every key of a distgan config: set it in the YAML file (`model:` then `arch: resnet`) or on the
command line as a dotted override (`model.arch=resnet`). Generated from the same source as
`distgan train --help-config`; `distgan train --config FILE --print-config` shows the resolved
config of one run with these comments. Regenerate this page with `python scripts/config_reference.py`.
"""


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    parts, section = [HEADER.rstrip("\n")], None
    for key in describe.keys():
        top = key.name.split(".")[0]
        if top != section:
            section = top
            parts.append(f"\n## {section}\n\n| key | type | default | meaning |\n|---|---|---|---|")
        default = describe._yaml_value(key.default)
        parts.append(f"| `{key.name}` | {cell(key.type_name)} | `{cell(default)}` | {cell(key.comment)} |")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/config.md is not current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.is_file() and OUT.read_text() == text
        print(
            "docs/config.md is current"
            if current
            else "docs/config.md is stale: python scripts/config_reference.py"
        )
        return 0 if current else 1
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
