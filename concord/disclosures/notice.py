"""The notice that goes with every disclosure of 42 CFR Part 2 records (§ 2.32(a)).

§ 2.32(a) as amended by the 2024 final rule (89 FR 12472) lets the discloser use either of two
written statements. Concord uses Statement 2, the short one, because its text is the only one
confirmed in full in this round (docs/part2-sources.md); Statement 1 was read only in part.
The statement is the rule's text: it is shown in English, as written, whatever the reader's
language, with a translation beside it where the reader reads another language.

Where it goes: the footer of a page that showed Part 2 records to someone outside the program
(the request is marked by the disclosure log's listener; concord.web.templating renders it),
the first line of a CSV and the last paragraph of a PDF that hold them. FHIR carries it as the
security label (meta.security: v3-ActCode 42CFRPart2 and the obligation NORDSCLCD), which the
labelling code adds to every labelled resource.
"""

from __future__ import annotations

import csv
import io

from sqlalchemy.orm import Session

from concord.disclosures.log import as_export, part2_disclosed
from concord.i18n import N_, translate

# § 2.32(a)(2), Statement 2, 2024 text (89 FR 12472); see docs/part2-sources.md.
STATEMENT = "42 CFR part 2 prohibits unauthorized use or disclosure of these records."
CITATION = "42 CFR 2.32(a)(2)"
HEADING = N_("Notice to the recipient of substance use disorder records")
# The statement in the reader's language, shown beside the rule's own (English) words.
TRANSLATED = N_(
    "Federal law (42 CFR part 2) prohibits any use or disclosure of these records "
    "that it does not authorize."
)


def notice_text(lang: str = "en") -> str:
    """One line: the heading, the rule's statement, and its translation outside English."""
    text = f"{translate(HEADING, lang)}: {STATEMENT} ({CITATION})"
    if lang != "en":
        text += f" {translate(TRANSLATED, lang)}"
    return text


def csv_with_notice(session: Session, body: str, lang: str = "en") -> str:
    """`body` (a CSV) with the notice as its first line when this request disclosed Part 2
    records, and the request's disclosures logged as an export; unchanged otherwise."""
    if not part2_disclosed(session):
        return body
    as_export(session)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([notice_text(lang)])
    return out.getvalue() + body


def pdf_notice(session: Session, lang: str = "en") -> str | None:
    """The line a PDF must end with when this request disclosed Part 2 records (the request's
    disclosures logged as an export), or None."""
    if not part2_disclosed(session):
        return None
    as_export(session)
    return notice_text(lang)
