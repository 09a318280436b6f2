"""The one way an export is written out (CSV), and the list of export code.

An export writes only what a domain service's get_*/list_* function returned: that function
takes the actor, applies access and audits the read, so what a page may not show, its download
may not either. Nothing here, and no export handler listed below, queries the database
(tests/test_export_read_path.py reads their source and fails on a query).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from starlette.responses import Response

from concord.disclosures.notice import csv_with_notice

# Export code: whole modules that render an export, and the door functions that serve one
# (module, function). Add a new export here; the test checks each has no direct database read.
EXPORT_MODULES: tuple[str, ...] = (
    "concord.web.exports",
    "concord.safety.pdf",
    "concord.safety.emails",
)
EXPORT_HANDLERS: tuple[tuple[str, str], ...] = (
    ("concord.registry.routes", "caseload_csv"),
    ("concord.registry.routes", "minutes_csv"),
    ("concord.registry.routes", "_view"),
    ("concord.safety.routes", "figures_csv"),
    ("concord.safety.routes", "_figures_for"),
    ("concord.safety.routes", "_pdf"),
    ("concord.safety.routes", "team_plan_pdf"),
    ("concord.safety.routes", "my_plan_pdf"),
    ("concord.safety.routes", "shared_plan_pdf"),
    ("concord.consents.routes", "consent_form_pdf"),
    ("concord.quality.routes", "quality_csv"),
    ("concord.registry.routes", "program_social_csv"),
)


def csv_response(
    rows: Iterable[dict[str, Any]],
    columns: list[str],
    filename: str,
    *,
    session: Any,  # the request's unit of work (this module reads nothing itself)
    lang: str = "en",
) -> Response:
    """Rows (already read through a domain service) as a CSV download; when the request
    disclosed 42 CFR Part 2 records, the redisclosure notice is its first line (§ 2.32)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return Response(
        csv_with_notice(session, out.getvalue(), lang),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
