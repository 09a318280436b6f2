"""The fhir.resources model (R4B) that validates each resource type Concord emits
(docs/adr/0005-fhir-r4-validated-with-r4b-models.md). Its own module, below both
concord.fhir.mapping (which validates what it builds) and concord.fhir.search (which reads a
type's elements for `_elements`), so neither imports the other for it."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.careplan import CarePlan as FhirCarePlan
from fhir.resources.R4B.careteam import CareTeam as FhirCareTeam
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.consent import Consent as FhirConsent
from fhir.resources.R4B.coverage import Coverage
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.goal import Goal as FhirGoal
from fhir.resources.R4B.measure import Measure
from fhir.resources.R4B.measurereport import MeasureReport
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.practitioner import Practitioner as FhirPractitioner
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

VALIDATORS: dict[str, Any] = {
    "Questionnaire": Questionnaire,
    "QuestionnaireResponse": QuestionnaireResponse,
    "Observation": Observation,
    "Patient": FhirPatient,
    "CareTeam": FhirCareTeam,
    "CarePlan": FhirCarePlan,
    "Goal": FhirGoal,
    "Practitioner": FhirPractitioner,
    "Task": Task,
    "Flag": Flag,
    "Consent": FhirConsent,
    "Communication": Communication,
    "MedicationRequest": MedicationRequest,
    "MedicationStatement": MedicationStatement,
    "Appointment": FhirAppointment,
    # Imported from an EHR (concord.ehr), served as sent.
    "Condition": Condition,
    "Encounter": Encounter,
    "Procedure": Procedure,
    "ServiceRequest": ServiceRequest,
    "Coverage": Coverage,
    # Quality measures (concord.quality).
    "Measure": Measure,
    "MeasureReport": MeasureReport,
    # What Concord wrote (a care plan's revisions).
    "Provenance": Provenance,
    "Bundle": Bundle,
    "CapabilityStatement": CapabilityStatement,
    "OperationOutcome": OperationOutcome,
}
