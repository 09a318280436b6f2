"""SMART v2 scopes (with the v1 forms read, write and *): parsed, narrowed to what an app was
registered for, and asked on each /fhir request. A scope only narrows: the token's person and
Concord's access rules still decide what exists for it (docs/smart.md)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from concord.errors import InvalidInput
from concord.i18n import Msg

RESOURCE_RE = re.compile(
    r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.(c?r?u?d?s?|read|write|\*)"
    r"(\?[A-Za-z0-9_.:|=&%/-]{1,200})?$"
)
# Scopes that ask for something other than data.
OTHER = frozenset(
    {"launch", "launch/patient", "openid", "fhirUser", "profile", "offline_access", "online_access"}
)
ORDER = "cruds"
V1 = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True)
class ResourceScope:
    context: str  # patient, user or system
    kind: str  # a resource type or *
    perms: frozenset[str]

    def __str__(self) -> str:
        return f"{self.context}/{self.kind}." + "".join(p for p in ORDER if p in self.perms)

    def covers(self, kind: str, op: str) -> bool:
        return self.kind in ("*", kind) and op in self.perms


@dataclass(frozen=True)
class Scopes:
    resources: tuple[ResourceScope, ...]
    other: frozenset[str]

    def __str__(self) -> str:
        return " ".join([*sorted(self.other), *(str(r) for r in self.resources)])

    def allows(self, kind: str, op: str) -> list[ResourceScope]:
        """The scopes that let this token do `op` (c, r, u, d, s) on `kind`."""
        return [r for r in self.resources if r.covers(kind, op)]

    @property
    def writes(self) -> bool:
        return any(r.perms & {"c", "u", "d"} for r in self.resources)

    @property
    def system(self) -> bool:
        return any(r.context == "system" for r in self.resources)

    @property
    def patient_level(self) -> bool:
        return any(r.context == "patient" for r in self.resources)


def parse_one(text: str) -> ResourceScope | str | None:
    if text in OTHER:
        return text
    match = RESOURCE_RE.match(text)
    if match is None:
        return None
    context, kind, perms, query = match.groups()
    if query:
        # Finer-grained scopes (patient/Observation.rs?category=...) are not offered: refused
        # as unknown, never widened to the whole type.
        return None
    letters = V1.get(perms, perms)
    if not letters:
        return None
    return ResourceScope(context, kind, frozenset(letters))


def parse(text: str, *, strict: bool = False, field: str = "scope") -> Scopes:
    """The scopes in a space-separated list. Unknown ones are dropped (an authorization server
    may grant fewer than asked), or with `strict` refused, naming them."""
    resources: list[ResourceScope] = []
    other: set[str] = set()
    unknown: list[str] = []
    for word in (text or "").split():
        found = parse_one(word)
        if found is None:
            unknown.append(word[:60])
        elif isinstance(found, str):
            other.add(found)
        elif found not in resources:
            resources.append(found)
    if strict and unknown:
        raise InvalidInput.field(
            field,
            Msg(
                "%(scopes)s: not a scope Concord offers (SMART v2 scopes such as "
                "patient/*.rs, user/Observation.rs, system/*.rs, and launch, "
                "launch/patient, openid, fhirUser, offline_access)",
                scopes=", ".join(unknown),
            ),
        )
    return Scopes(tuple(resources), frozenset(other))


def narrow(requested: Scopes, allowed: Scopes) -> Scopes:
    """What may be granted: each scope asked for, cut to the permissions the app was
    registered with for the same context and type (never more than either)."""
    perms_by: dict[tuple[str, str], set[str]] = {}
    for want in requested.resources:
        for may in allowed.resources:
            if may.context != want.context:
                continue
            if may.kind in ("*", want.kind):
                kind = want.kind
            elif want.kind == "*":
                kind = may.kind
            else:
                continue
            common = want.perms & may.perms
            if common:
                perms_by.setdefault((want.context, kind), set()).update(common)
    granted = [ResourceScope(c, k, frozenset(p)) for (c, k), p in perms_by.items()]
    return Scopes(tuple(granted), requested.other & allowed.other)


def as_asked(granted: Scopes, asked: str) -> str:
    """The granted scopes written as the client wrote them: a resource scope asked in the v1
    form (`.read`, `.*`) that was granted read and search answers `.read` (Bulk Data clients
    written for v1 look for it); everything else in the v2 form."""
    v1 = set()
    for word in (asked or "").split():
        match = RESOURCE_RE.match(word)
        if match and match.group(3) in V1:
            v1.add((match.group(1), match.group(2)))
    words = sorted(granted.other)
    for r in granted.resources:
        if r.perms == frozenset("rs") and ((r.context, r.kind) in v1 or (r.context, "*") in v1):
            words.append(f"{r.context}/{r.kind}.read")
        else:
            words.append(str(r))
    return " ".join(words)


def without(scopes: Scopes, contexts: Iterable[str]) -> Scopes:
    drop = set(contexts)
    return Scopes(tuple(r for r in scopes.resources if r.context not in drop), scopes.other)


# Plain words for the consent screen.
OP_WORDS = {
    "c": Msg("add"),
    "r": Msg("read"),
    "u": Msg("change"),
    "d": Msg("delete"),
    "s": Msg("search"),
}
OTHER_WORDS = {
    "launch": Msg("open with the patient chosen in your EHR"),
    "launch/patient": Msg("ask which patient to open"),
    "openid": Msg("know who you are"),
    "fhirUser": Msg("know who you are"),
    "profile": Msg("know who you are"),
    "offline_access": Msg("keep access after you close it, until you revoke it"),
    "online_access": Msg("keep access while you are using it"),
}


def describe(scopes: Scopes) -> list[Msg]:
    """What a person agrees to, one plain line each."""
    lines: list[Msg] = []
    for r in scopes.resources:
        kind = Msg("all kinds of records") if r.kind == "*" else r.kind
        for p in ORDER:
            if p not in r.perms:
                continue
            op = OP_WORDS[p]
            if r.context == "patient":
                lines.append(Msg("%(op)s: %(kind)s of the chosen patient only", op=op, kind=kind))
            elif r.context == "user":
                lines.append(Msg("%(op)s: %(kind)s of every patient you may see", op=op, kind=kind))
            else:
                lines.append(Msg("%(op)s: %(kind)s, as a system with no person", op=op, kind=kind))
    seen: set[str] = set()
    for word in sorted(scopes.other):
        text = OTHER_WORDS[word]
        if str(text) not in seen:
            seen.add(str(text))
            lines.append(text)
    return lines
