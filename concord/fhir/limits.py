"""The longest value each stored element of a FHIR resource may have: the size of the column
it lands in, read from the models, so a client hears "at most 200 characters" naming the FHIR
path instead of a database error (concord.validation.json_problems checks every posted
resource against this, and every string for control characters)."""

from __future__ import annotations

from functools import lru_cache

from concord.measures.models import MeasureResponse


def _length(model: type, column: str) -> int:
    length = model.__table__.c[column].type.length  # type: ignore[attr-defined]
    assert isinstance(length, int)
    return length


@lru_cache(maxsize=1)
def column_limits() -> dict[str, int]:
    """FHIR path (without list positions) -> the column's size."""
    return {
        "QuestionnaireResponse.identifier.value": _length(MeasureResponse, "client_identifier"),
        "QuestionnaireResponse.identifier.system": _length(MeasureResponse, "client_system"),
    }
