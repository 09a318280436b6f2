"""The baseline endpoint for the check-in benchmark: the same framework (FastAPI on uvicorn)
and the same database, doing one INSERT and a commit per request, nothing else. GET /ping does
nothing at all (to show the load generator is not the bottleneck)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Uuid, insert

from concord.db import make_engine

engine = make_engine(os.environ["CONCORD_DATABASE_URL"])
metadata = MetaData()
bare = Table(
    "bench_bare",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("patient", String(40)),
    Column("value", Integer),
    Column("at", DateTime(timezone=True)),
)
metadata.create_all(engine)
app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/ping")
def ping() -> dict[str, str]:
    return {"pong": "ok"}


@app.post("/bare")
def write(body: dict) -> dict[str, str]:
    row = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            insert(bare),
            {
                "id": row,
                "patient": str(body.get("patient", ""))[:40],
                "value": int(body.get("value", 0)),
                "at": datetime.now(UTC),
            },
        )
    return {"id": str(row)}
