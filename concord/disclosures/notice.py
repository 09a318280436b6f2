"""The notice that goes with every disclosure of 42 CFR Part 2 records (§ 2.32(a)).

§ 2.32(a) as amended by the 2024 final rule (89 FR 12472) lets the discloser use either of two
written statements. Concord uses Statement 2, the short one, because its text is the only one
confirmed in full in this round (docs/part2-sources.md); Statement 1 was read only in part.
The statement is the rule's text: it is shown in English, as written, whatever the reader's
language, with a translation beside it where the reader reads another language.

Where it goes: the footer of a page that showed Part 2 records to someone outside the program
(the request is marked by the disclosure log's listener; concord.web.templating renders it),
the first line of a CSV and the last paragraph of a PDF that hold them. § 2.32(b): where the
disclosure was made under the patient's consent, each consent's plain sentence (the words the
patient reads) goes with it: beside the footer's notice on a page, on the lines after the
notice in a CSV, in the paragraphs after it in a PDF (ADR 0022). FHIR carries it as the
security label (meta.security: v3-ActCode 42CFRPart2 and the obligation NORDSCLCD), which the
labelling code adds to every labelled resource.
"""

from __future__ import annotations

import csv
import io

from sqlalchemy.orm import Session

from concord.consents.labels import sentence
from concord.consents.models import Consent
from concord.disclosures.log import as_export, part2_consents, part2_disclosed
from concord.i18n import N_, Msg, translate

# § 2.32(a)(2), Statement 2, 2024 text (89 FR 12472); see docs/part2-sources.md.
STATEMENT = "42 CFR part 2 prohibits unauthorized use or disclosure of these records."
CITATION = "42 CFR 2.32(a)(2)"
HEADING = N_("Notice to the recipient of substance use disorder records")
# The statement in the reader's language, shown beside the rule's own (English) words.
TRANSLATED = N_(
    "Federal law (42 CFR part 2) prohibits any use or disclosure of these records "
    "that it does not authorize."
)


# § 2.32(b): the same words the page's footer shows beside the notice.
EXPLANATION = N_(
    "Shared with you under the patient's consent (42 CFR 2.32(b)). It says, in the words the "
    "patient reads: “%(sentence)s”"
)
READ_IT = N_("Read the consent")


def notice_text(lang: str = "en") -> str:
    """One line: the heading, the rule's statement, and its translation outside English."""
    text = f"{translate(HEADING, lang)}: {STATEMENT} ({CITATION})"
    if lang != "en":
        text += f" {translate(TRANSLATED, lang)}"
    return text


def consent_lines(session: Session, lang: str = "en") -> list[str]:
    """One line per consent this request disclosed Part 2 records under (§ 2.32(b)): the
    consent's plain sentence and where to read it whole (the consents tab, which names the
    patient). The consents are already in the session: the decision read them."""
    lines = []
    for patient_id, consent_id in part2_consents(session):
        consent = session.get(Consent, consent_id)
        if consent is None:
            continue
        explained = translate(Msg(EXPLANATION, sentence=sentence(consent, lang)), lang)
        lines.append(f"{explained} {translate(READ_IT, lang)}: /patients/{patient_id}/consents")
    return lines


def csv_with_notice(session: Session, body: str, lang: str = "en") -> str:
    """`body` (a CSV) with the notice as its first line when this request disclosed Part 2
    records, then one line per consent it disclosed them under (§ 2.32(b)), and the
    request's disclosures logged as an export; unchanged otherwise."""
    if not part2_disclosed(session):
        return body
    as_export(session)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for line in [notice_text(lang), *consent_lines(session, lang)]:
        writer.writerow([line])
    return out.getvalue() + body


def pdf_notice(session: Session, lang: str = "en") -> str | None:
    """What a PDF must end with when this request disclosed Part 2 records (the request's
    disclosures logged as an export), or None: the notice, then one line per consent it
    disclosed them under (§ 2.32(b)), one paragraph a line."""
    if not part2_disclosed(session):
        return None
    as_export(session)
    return "\n".join([notice_text(lang), *consent_lines(session, lang)])
