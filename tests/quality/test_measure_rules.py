"""Rules of CMS159 and CMS2 the official decks do not tell apart (each test names the CQL it
checks), and the $evaluate-measure function over a supplier of patients."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
from fhir.resources.R4B.measure import Measure
from fhir.resources.R4B.measurereport import MeasureReport

from concord.errors import InvalidInput, NotFound
from concord.quality import catalog, cms2, cms159
from concord.quality.fhirtime import DaySpan

LOINC, SNOMED, CPT = "http://loinc.org", "http://snomed.info/sct", "http://www.ama-assn.org/go/cpt"
Y2026 = (date(2026, 1, 1), date(2026, 12, 31))
Y2025 = (date(2025, 1, 1), date(2025, 12, 31))


def patient(pid: str = "p1", born: str = "1980-05-01", **extra) -> dict:
    return {"resourceType": "Patient", "id": pid, "birthDate": born, **extra}


def cc(system: str, code: str) -> dict:
    return {"coding": [{"system": system, "code": code}]}


def visit(
    start: str, end: str | None = None, code=(CPT, "99213"), status="finished", **extra
) -> dict:
    return {
        "resourceType": "Encounter",
        "status": status,
        "type": [cc(*code)],
        "period": {"start": start, "end": end or start},
        **extra,
    }


def condition(
    code=(SNOMED, "370143000"),
    onset="2024-01-01",
    status="active",
    category="problem-list-item",
    **extra,
) -> dict:
    return {
        "resourceType": "Condition",
        "clinicalStatus": cc("http://terminology.hl7.org/CodeSystem/condition-clinical", status),
        "verificationStatus": cc(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"
        ),
        "category": [cc("http://terminology.hl7.org/CodeSystem/condition-category", category)],
        "code": cc(*code),
        "onsetDateTime": onset,
        **extra,
    }


def phq9(when: str, score: int, status="final") -> dict:
    return {
        "resourceType": "Observation",
        "status": status,
        "code": cc(LOINC, "44261-6"),
        "effectiveDateTime": when,
        "valueInteger": score,
    }


def remission_case(
    *, last_score: int = 3, born: str = "1980-05-01", extra: list[dict] | None = None
) -> list[dict]:
    """Index PHQ-9 of 15 on 2025-03-10 at a depression visit; another PHQ-9 a year later."""
    return [
        patient(born=born),
        condition(),
        visit("2025-03-10T10:00:00Z", "2025-03-10T10:30:00Z"),
        phq9("2025-03-10T10:05:00Z", 15),
        phq9("2026-03-01T10:00:00Z", last_score),
        *(extra or []),
    ]


# -- CMS159 ----------------------------------------------------------------------------------


def test_cms159_remission_counts_in_the_numerator_and_the_adult_stratum():
    result = cms159.evaluate(remission_case(), *Y2026)
    assert result.counts == {
        "initial-population": 1,
        "denominator": 1,
        "denominator-exclusion": 0,
        "numerator": 1,
    }
    assert result.stratum == "18+"
    assert result.facts["index_date"] == date(2025, 3, 10)
    assert result.facts["assessment_period"] == DaySpan(date(2026, 1, 9), date(2026, 5, 9))


def test_cms159_a_score_of_five_is_not_remission():
    assert not cms159.evaluate(remission_case(last_score=5), *Y2026)["numerator"]


def test_cms159_an_adolescent_is_in_the_12_to_17_stratum():
    result = cms159.evaluate(remission_case(born="2010-01-01"), *Y2026)
    assert result["initial-population"] and result.stratum == "12-17"


def test_cms159_the_index_visit_must_end_in_the_identification_period():
    # 2026's identification period is 2024-11-01 to 2025-10-31.
    late = [patient(), condition(), visit("2025-11-01T10:00:00Z"), phq9("2025-11-01T10:00:00Z", 15)]
    assert not cms159.evaluate(late, *Y2026)["initial-population"]


def test_cms159_qi_core_6_ignores_a_condition_outside_its_categories():
    """0.3.000 retrieves ConditionProblemsHealthConcerns and ConditionEncounterDiagnosis only;
    0.2.000 took every Condition."""
    resources = remission_case()
    resources[1] = condition(category="something-else")
    assert not cms159.evaluate(resources, *Y2026)["initial-population"]
    assert cms159.evaluate(_shift_year(resources), *Y2025)["initial-population"]


def _shift_year(resources: list[dict]) -> list[dict]:
    """The same story one year earlier, for the 2025 specification."""

    text = re.sub(r'"(20[0-9]{2})-', lambda m: f'"{int(m.group(1)) - 1}-', json.dumps(resources))
    return json.loads(text)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(condition(code=(SNOMED, "10875004"), onset="2026-04-01"), id="bipolar"),
        pytest.param(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": cc(LOINC, "71007-9"),
                "effectiveDateTime": "2025-08-01",
            },
            id="facit-pal",
        ),
    ],
)
def test_cms159_exclusions(extra):
    result = cms159.evaluate(remission_case(extra=[extra]), *Y2026)
    assert result["denominator-exclusion"] and not result["numerator"]


def test_cms159_death_after_the_assessment_period_does_not_exclude():
    resources = remission_case()
    resources[0] = patient(deceasedDateTime="2026-05-10")
    assert not cms159.evaluate(resources, *Y2026)["denominator-exclusion"]
    resources[0] = patient(deceasedDateTime="2026-05-09")
    assert cms159.evaluate(resources, *Y2026)["denominator-exclusion"]


# -- CMS2 ------------------------------------------------------------------------------------


def screen(when: str, result: str, code=(LOINC, "73832-8"), status="final") -> dict:
    return {
        "resourceType": "Observation",
        "status": status,
        "code": cc(*code),
        "effectiveDateTime": when,
        "valueCodeableConcept": cc(SNOMED, result),
    }


POSITIVE, NEGATIVE = "428181000124104", "428171000124102"


def antidepressant(authored: str, days: int, status="active", intent="order") -> dict:
    return {
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": intent,
        "authoredOn": authored,
        "medicationCodeableConcept": cc("http://www.nlm.nih.gov/research/umls/rxnorm", "1000048"),
        "dispenseRequest": {"expectedSupplyDuration": {"value": days, "unit": "days", "code": "d"}},
    }


def screening_case(*extra: dict, result: str = POSITIVE, status: str = "final") -> list[dict]:
    return [
        patient(),
        visit("2026-04-10T09:00:00Z", "2026-04-10T09:30:00Z", code=(CPT, "99213")),
        screen("2026-04-05T09:00:00Z", result, status=status),
        *extra,
    ]


def test_cms2_a_negative_screen_is_the_numerator():
    assert cms2.evaluate(screening_case(result=NEGATIVE), *Y2026)["numerator"]


def referral(authored: str) -> dict:
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "authoredOn": authored,
        "code": cc(SNOMED, "306226009"),
    }


def test_cms2_a_positive_screen_needs_a_follow_up():
    assert not cms2.evaluate(screening_case(), *Y2026)["numerator"]
    assert cms2.evaluate(screening_case(antidepressant("2026-04-10", 30)), *Y2026)["numerator"]
    assert cms2.evaluate(screening_case(referral("2026-04-12")), *Y2026)["numerator"]


def test_cms2_a_follow_up_three_days_after_the_visit_is_too_late():
    assert not cms2.evaluate(screening_case(referral("2026-04-13")), *Y2026)["numerator"]


def test_cms2_an_antidepressant_ordered_after_the_visit_does_not_count_in_0_4_001():
    """As the CQL is written, the order's supply must overlap the visit, so an order the day
    after it is no follow-up, though a referral that day is (docs/quality-measures.md)."""
    assert not cms2.evaluate(screening_case(antidepressant("2026-04-11", 30)), *Y2026)["numerator"]
    assert cms2.evaluate(_shift_year(screening_case(antidepressant("2026-04-11", 30))), *Y2025)[
        "numerator"
    ]


def test_cms2_an_antidepressant_must_outlast_the_visit_in_0_4_001():
    """0.4.001: the order's supply (medicationRequestPeriod) overlaps after the visit; a
    one-day supply ordered on the visit's day ends with it. 0.2.000 had no such condition."""
    one_day = antidepressant("2026-04-10", 1)
    assert not cms2.evaluate(screening_case(one_day), *Y2026)["numerator"]
    assert cms2.evaluate(_shift_year(screening_case(one_day)), *Y2025)["numerator"]


def test_cms2_a_corrected_screen_counts_from_0_4_001_only():
    assert cms2.evaluate(screening_case(result=NEGATIVE, status="corrected"), *Y2026)["numerator"]
    assert not cms2.evaluate(
        _shift_year(screening_case(result=NEGATIVE, status="corrected")), *Y2025
    )["numerator"]


def test_cms2_an_order_intent_other_than_order_counts_from_0_4_001_only():
    case = screening_case(antidepressant("2026-04-10", 30, intent="original-order"))
    assert cms2.evaluate(case, *Y2026)["numerator"]
    assert not cms2.evaluate(_shift_year(case), *Y2025)["numerator"]


def test_cms2_a_refusal_is_an_exception_only_without_a_screen():
    refusal = {
        "resourceType": "Observation",
        "status": "cancelled",
        "code": cc(LOINC, "73832-8"),
        "issued": "2026-04-10T20:00:00Z",
        "extension": [
            {
                "url": "http://hl7.org/fhir/us/qicore/StructureDefinition/qicore-notDoneReason",
                "valueCodeableConcept": cc(SNOMED, "720834000"),
            }
        ],
    }
    alone = [patient(), visit("2026-04-10T09:00:00Z", "2026-04-10T09:30:00Z"), refusal]
    # Issued the evening of the visit: the same day counts in 0.4.001, not in 0.2.000 (instants).
    assert cms2.evaluate(alone, *Y2026)["denominator-exception"]
    assert not cms2.evaluate(_shift_year(alone), *Y2025)["denominator-exception"]
    assert not cms2.evaluate(screening_case(refusal), *Y2026)["denominator-exception"]


def test_cms2_bipolar_on_the_visit_day_excludes_in_0_2_000_only():
    """0.2.000: prevalence starts before the visit (to the instant); 0.4.001: before its day."""
    bipolar = condition(code=(SNOMED, "10875004"), onset="2026-04-10T08:00:00Z")
    case = screening_case(bipolar, result=NEGATIVE)
    assert not cms2.evaluate(case, *Y2026)["denominator-exclusion"]
    assert cms2.evaluate(_shift_year(case), *Y2025)["denominator-exclusion"]


def test_cms2_an_eleven_year_old_is_not_in_the_initial_population():
    case = screening_case(result=NEGATIVE)
    case[0] = patient(born="2014-06-01")
    assert not cms2.evaluate(case, *Y2026)["initial-population"]


# -- $evaluate-measure over a supplier --------------------------------------------------------


def test_a_population_report_counts_and_scores():
    request = catalog.parse_parameters(
        "CMS159",
        [("periodStart", "2026-01-01"), ("periodEnd", "2026-12-31"), ("reportType", "population")],
    )
    patients = [
        ("a", remission_case()),
        ("b", remission_case(last_score=9)),
        ("c", [patient("p3")]),
    ]
    report = catalog.evaluate_measure(request, lambda: patients)
    counts = {p["code"]["coding"][0]["code"]: p["count"] for p in report["group"][0]["population"]}
    assert counts == {
        "initial-population": 2,
        "denominator": 2,
        "denominator-exclusion": 0,
        "numerator": 1,
    }
    assert report["type"] == "summary"
    assert report["measure"].endswith("/Measure/CMS159|0.3.000")
    assert report["group"][0]["measureScore"]["value"] == 0.5
    strata = {s["value"]["text"]: s for s in report["group"][0]["stratifier"][0]["stratum"]}
    assert strata["18 years or older at the index assessment"]["population"][0]["count"] == 2
    MeasureReport.model_validate(report)


def test_a_subject_list_names_the_patients_in_each_population():
    request = catalog.parse_parameters(
        "CMS2",
        [
            ("periodStart", "2026-01-01"),
            ("periodEnd", "2026-12-31"),
            ("reportType", "subject-list"),
        ],
    )
    patients = [("7e4c", screening_case(result=NEGATIVE)), ("9a01", screening_case())]
    report = catalog.evaluate_measure(request, lambda: patients)
    lists = {c["id"]: [e["item"]["reference"] for e in c["entry"]] for c in report["contained"]}
    assert lists["list-numerator"] == ["Patient/7e4c"]
    assert lists["list-denominator"] == ["Patient/7e4c", "Patient/9a01"]
    MeasureReport.model_validate(report)
    assert lists["list-denominator-exclusion"] == []


def test_an_individual_report_names_its_subject_and_is_valid_fhir():
    request = catalog.parse_parameters(
        "CMS159",
        [("periodStart", "2026-01-01"), ("periodEnd", "2026-12-31"), ("subject", "Patient/7e4c")],
    )
    report = catalog.evaluate_measure(request, lambda: [("7e4c", remission_case())])
    assert report["type"] == "individual" and report["subject"] == {"reference": "Patient/7e4c"}
    MeasureReport.model_validate(report)


def test_the_measure_resources_are_valid_fhir():
    for measure_id in catalog.measure_ids():
        resource = catalog.measure_resource(measure_id)
        Measure.model_validate(resource)
        assert resource["id"] == measure_id


@pytest.mark.parametrize(
    ("pairs", "field"),
    [
        ([("periodEnd", "2026-12-31")], "periodStart"),
        ([("periodStart", "2026-13-01"), ("periodEnd", "2026-12-31")], "periodStart"),
        ([("periodStart", "2026-12-31"), ("periodEnd", "2026-01-01")], "periodEnd"),
        (
            [("periodStart", "2026-01-01"), ("periodEnd", "2026-12-31"), ("subject", "Group/1")],
            "subject",
        ),
        (
            [("periodStart", "2026-01-01"), ("periodEnd", "2026-12-31"), ("reportType", "subject")],
            "subject",
        ),
        (
            [("periodStart", "2026-01-01"), ("periodEnd", "2026-12-31"), ("reportType", "all")],
            "reportType",
        ),
        (
            [("periodStart", "2026-01-01"), ("periodEnd", "2026-12-31"), ("lastReceivedOn", "x")],
            "lastReceivedOn",
        ),
    ],
)
def test_bad_parameters_name_the_field(pairs, field):
    with pytest.raises(InvalidInput) as caught:
        catalog.parse_parameters("CMS2", pairs)
    assert field in caught.value.errors


def test_an_unknown_measure_is_not_found():
    with pytest.raises(NotFound):
        catalog.parse_parameters("CMS999", [])


def test_cms159_reads_phq9_totals_as_concord_serves_them():
    """Concord's own PHQ-9 totals (concord.fhir.measures: LOINC 44261-6, a valueQuantity in
    {score}) count as index and follow-up assessments beside an EHR's encounters and diagnoses."""

    def served(when: str, score: int) -> dict:
        return {
            "resourceType": "Observation",
            "status": "final",
            "code": cc(LOINC, "44261-6"),
            "effectiveDateTime": when,
            "valueQuantity": {
                "value": score,
                "unit": "{score}",
                "system": "http://unitsofmeasure.org",
                "code": "{score}",
            },
        }

    resources = remission_case()
    resources[3] = served("2025-03-10T10:05:00+00:00", 15)
    resources[4] = served("2026-03-01T10:00:00+00:00", 2)
    assert cms159.evaluate(resources, *Y2026)["numerator"]
