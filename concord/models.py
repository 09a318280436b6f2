"""Imports every model so the metadata is complete (for Alembic and the tests)."""

from concord import outbox
from concord.accounts import models as accounts_models
from concord.appointments import models as appointments_models
from concord.audit import models as audit_models
from concord.bulk import models as bulk_models
from concord.careplans import models as careplans_models
from concord.consents import models as consents_models
from concord.db import Base
from concord.decisions import models as decisions_models
from concord.disclosures import models as disclosures_models
from concord.ehr import models as ehr_models
from concord.measures import models as measures_models
from concord.medications import models as medications_models
from concord.messaging import models as messaging_models
from concord.notifications import models as notifications_models
from concord.part2 import models as part2_models
from concord.patients import models as patients_models
from concord.registry import models as registry_models
from concord.safety import models as safety_models
from concord.smart import models as smart_models
from concord.social import models as social_models
from concord.substance import models as substance_models
from concord.worker import JobRun

__all__ = [
    "Base",
    "accounts_models",
    "appointments_models",
    "audit_models",
    "bulk_models",
    "careplans_models",
    "consents_models",
    "decisions_models",
    "disclosures_models",
    "ehr_models",
    "measures_models",
    "medications_models",
    "messaging_models",
    "notifications_models",
    "outbox",
    "part2_models",
    "patients_models",
    "registry_models",
    "safety_models",
    "smart_models",
    "social_models",
    "substance_models",
    "JobRun",
]
