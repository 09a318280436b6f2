"""The ASGI application for servers: `uvicorn concord.asgi:app` (settings from CONCORD_*)."""

from concord.app import create_app

app = create_app()
