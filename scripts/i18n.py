"""Translation chores: `python scripts/i18n.py update` re-extracts every string into
concord/locale/messages.pot and merges it into each catalog; `check` lists what is missing."""

from __future__ import annotations

import sys

from concord.i18n_tools import check, update


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "update":
        update()
        print("catalogs updated")
    report = check("es")
    print(
        f"es: {len(report.missing)} missing, {len(report.fuzzy)} fuzzy, "
        f"{len(report.bad_placeholders)} with wrong placeholders"
    )
    for text in report.missing[:200]:
        print("  missing:", text)
    return 0 if not (report.missing or report.fuzzy or report.bad_placeholders) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
