"""How long the medication safety check takes for a list of 30 medications (issue 19: under
50 ms): the pure checker, and the whole-list recheck a change runs (read the list, check it,
store the findings) against a fresh SQLite database, and the overdose-risk rules each change
runs after it.

    python -m bench.medication_list [--n 200]

Prints the median and the 95th percentile of each, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, date, datetime

os.environ.setdefault("CONCORD_ENV", "development")

from sqlalchemy import delete  # noqa: E402

from concord.accounts.models import Role  # noqa: E402
from concord.actions import medications as act  # noqa: E402
from concord.audit.service import set_context  # noqa: E402
from concord.clock import FakeClock, set_clock  # noqa: E402
from concord.db import make_engine, make_sessionmaker  # noqa: E402
from concord.medications import service as meds  # noqa: E402
from concord.medications.models import Medication, MedicationFinding  # noqa: E402
from concord.medications.rules import check  # noqa: E402
from concord.medications.vocabulary import default_vocabulary  # noqa: E402
from concord.migrate import upgrade  # noqa: E402
from tests.factories import create_clinic, create_organization, create_patient, create_staff  # noqa: E402

SIZE = 30


def thirty() -> list[str]:
    """30 usable ingredients, spread over the vocabulary (many classes, so many rules fire)."""
    usable = [i.rxcui for i in default_vocabulary().ingredients if i.verified]
    step = max(1, len(usable) // SIZE)
    return usable[::step][:SIZE]


def timed(work, n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    rxcuis = thirty()
    print(f"{len(rxcuis)} medications, {len(check(rxcuis, age=20))} findings")
    median, p95 = timed(lambda: check(rxcuis, age=20), args.n)
    print(f"{'check (pure)':<28} median {median:7.2f} ms   p95 {p95:7.2f} ms")
    set_clock(FakeClock(datetime(2026, 12, 7, 12, tzinfo=UTC)))
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            set_context(session, channel="system")
            org = create_organization(session, name="Bench", slug="bench", timezone="UTC")
            clinic = create_clinic(session, organization=org, name="Bench clinic")
            staff = create_staff(session, org, clinic, Role.psychiatrist, "Dr Bench", "b@x.test")
            patient = create_patient(
                session, org, clinic, by=staff, given="Ben", family="Ch", mrn="B-1", email=None
            )
            patient.birth_date = date(2005, 1, 1)
            for rxcui in rxcuis:
                session.add(
                    Medication(
                        organization_id=org.id,
                        patient_id=patient.id,
                        rxcui=rxcui,
                        name=rxcui,
                        prescriber_id=staff.id,
                    )
                )
            session.flush()

            def recheck() -> None:
                meds.recheck(session, patient=patient, by=staff, today=date(2026, 12, 7))

            def fresh() -> None:
                # Every finding new each time: the slowest case (all rows written).
                session.execute(delete(MedicationFinding))
                recheck()

            median, p95 = timed(recheck, args.n)
            print(f"{'recheck, nothing new':<28} median {median:7.2f} ms   p95 {p95:7.2f} ms")
            median, p95 = timed(fresh, max(10, args.n // 4))
            print(f"{'recheck, every finding new':<28} median {median:7.2f} ms   p95 {p95:7.2f} ms")

            def overdose_rules() -> None:
                # What a change adds after the recheck: the overdose-risk rules on the list and
                # the MOUD records (their first alert raised once, before the timing).
                act.check_overdose(session, patient=patient, by=staff, today=date(2026, 12, 7))

            overdose_rules()
            median, p95 = timed(overdose_rules, args.n)
            print(
                f"{'overdose rules, nothing new':<28} median {median:7.2f} ms   p95 {p95:7.2f} ms"
            )

            def whole_change() -> None:
                recheck()
                overdose_rules()

            median, p95 = timed(whole_change, args.n)
            print(f"{'recheck + overdose rules':<28} median {median:7.2f} ms   p95 {p95:7.2f} ms")
            session.rollback()
        engine.dispose()
    print("target: under 50 ms for a list of 30 medications")


if __name__ == "__main__":
    main()
