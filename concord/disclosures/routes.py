"""The patient's page "Who received my protected records" (/my/disclosures).

The care team reads the same log on the patient's consents tab (concord.consents.routes);
anyone else gets the stranger's 404."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from concord import access
from concord.disclosures import service as ds
from concord.disclosures.labels import line
from concord.web.deps import DbSession, WebActor
from concord.web.templating import render

router = APIRouter()


@router.get("/my/disclosures")
def my_disclosures(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = access.own_record(session, actor.user, object_type=ds.OBJECT)
    lang = request.state.lang
    rows = [line(r, lang) for r in ds.list_disclosures(session, access=acc)]
    return render(request, "disclosures/mine.html", {"acc": acc, "rows": rows})
