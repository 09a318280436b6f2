"""The app's routes: create_app orders routers by traffic (programs before pages), which is
safe only while no route can match another router's paths."""

from __future__ import annotations

from fastapi.routing import APIRoute

from concord.app import create_app
from concord.settings import Settings


def _routes(app):
    for route in app.routes:
        router = getattr(route, "original_router", None)
        for r in router.routes if router is not None else [route]:
            if isinstance(r, APIRoute):
                yield r


def test_every_route_starts_with_a_fixed_word_and_programs_have_their_own(tmp_path):
    app = create_app(Settings(env="test", database_url=f"sqlite:///{tmp_path / 'r.db'}"))
    seen = set()
    for route in _routes(app):
        first = route.path.split("/")[1] if route.path != "/" else ""
        assert not first.startswith("{"), route.path
        if route.path.startswith(("/fhir", "/api/")):
            # The FHIR base itself takes one thing: a transaction or batch Bundle (POST).
            if route.path == "/fhir":
                assert route.methods == {"POST"}, route.methods
                continue
            assert route.path.startswith(("/fhir/", "/api/v1/")), route.path
        for method in route.methods:
            assert (method, route.path) not in seen, f"{method} {route.path} twice"
            seen.add((method, route.path))
    assert len(seen) > 200
