"""Every create that accepts an Idempotency-Key goes through one place
(concord.web.idempotency.create_once), which keeps a hash of the request with the key."""

from __future__ import annotations

from concord.web.idempotency import idempotency
from tests.test_routes import _routes


def _dependencies(dependant):
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


def test_every_route_taking_an_idempotency_key_uses_the_one_helper(app):
    # A route reading the header itself is the copied block issue 16 (item 4) found, which
    # answered a key sent with a different body as a replay of the first.
    taking = []
    for route in _routes(app):
        own = [p.alias.lower() for p in route.dependant.header_params]
        assert "idempotency-key" not in own, f"{route.path} reads Idempotency-Key itself"
        if any(d.call is idempotency for d in _dependencies(route.dependant)):
            taking.append(route.path)
    assert len(taking) >= 8, taking
