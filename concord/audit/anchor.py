"""Anchors: the audit chain's head, signed with a key the database does not hold, written
outside the database (docs/adr/0017-audit-chain-anchors.md).

The hash chain (concord.audit.service) shows an event altered or removed *inside* a chain
that still links. It cannot show a chain rewritten consistently (every hash recomputed) or
cut at the end with the head moved back, by someone who can write the database. An anchor
is the head's (sequence, hash) at a moment, signed with an Ed25519 key kept off the database
and appended to a file outside it. `verify_anchors()` then checks that the trail still holds
that exact event: a shortened trail lacks it, a rewritten one has another hash there.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent
from concord.clock import now

ANCHOR_FILE = "audit-anchors.jsonl"
VERSION = 1


class AnchorError(Exception):
    """A key or anchor file that cannot be used, said so an operator can act on it."""


# --- keys ---------------------------------------------------------------------------------


def create_key(path: Path) -> Path:
    """A new Ed25519 signing key at `path` (owner-only), its public half at `path`.pub.
    Refuses to replace a key: anchors signed with it could no longer be checked."""
    if path.exists():
        raise AnchorError(f"{path} exists; a new key would orphan the anchors signed with it")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(private)
    public_path = Path(f"{path}.pub")
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise AnchorError(f"cannot read the anchor key {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise AnchorError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AnchorError(f"{path} is not an Ed25519 key (make one with concord audit anchor-key)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The public key from a .pub file, or derived from the private key file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AnchorError(f"cannot read the anchor key {path}: {exc.strerror}") from None
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise AnchorError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AnchorError(f"{path} is not an Ed25519 public key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")[:16]


# --- anchors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    sequence: int
    hash: str
    time: str
    key: str
    signature: str

    def message(self) -> bytes:
        return signed_message(self.sequence, self.hash, self.time)

    def line(self) -> str:
        return json.dumps(
            {
                "v": VERSION,
                "sequence": self.sequence,
                "hash": self.hash,
                "time": self.time,
                "key": self.key,
                "signature": self.signature,
            },
            separators=(",", ":"),
        )


def signed_message(sequence: int, hash_: str, time: str) -> bytes:
    return f"concord-audit-anchor|{VERSION}|{sequence}|{hash_}|{time}".encode()


def read_head(session: Session) -> tuple[int, str]:
    head = session.execute(
        select(AuditChainHead.seq, AuditChainHead.hash).where(AuditChainHead.id == 1)
    ).one_or_none()
    return (0, GENESIS_HASH) if head is None else (head.seq, head.hash)


def sign(key: Ed25519PrivateKey, sequence: int, hash_: str, at: datetime) -> Anchor:
    time = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    signature = key.sign(signed_message(sequence, hash_, time))
    return Anchor(
        sequence,
        hash_,
        time,
        key_id(key.public_key()),
        base64.b64encode(signature).decode(),
    )


def write_anchor(session: Session, *, key: Ed25519PrivateKey, directory: Path) -> Anchor:
    """Sign the chain's head as it is now and append it to DIRECTORY/audit-anchors.jsonl
    (opened for appending only, flushed to disk before returning)."""
    sequence, hash_ = read_head(session)
    anchor = sign(key, sequence, hash_, now())
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(directory / ANCHOR_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(descriptor, (anchor.line() + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return anchor


@dataclass
class AnchorCheck:
    ok: bool
    anchors: int = 0
    last_sequence: int = 0
    problems: list[str] = field(default_factory=list)


def read_anchors(directory: Path) -> tuple[list[tuple[int, Anchor | None, str]], list[str]]:
    """Every anchor line in DIRECTORY's anchor files, as (line number, anchor or None, file)."""
    files = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    if not files:
        raise AnchorError(f"no anchor files (*.jsonl) in {directory}")
    found: list[tuple[int, Anchor | None, str]] = []
    names = []
    for path in files:
        names.append(path.name)
        for number, text in enumerate(path.read_text().splitlines(), start=1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
                anchor = Anchor(
                    int(data["sequence"]),
                    str(data["hash"]),
                    str(data["time"]),
                    str(data.get("key", "")),
                    str(data["signature"]),
                )
            except (ValueError, KeyError, TypeError):
                anchor = None
            found.append((number, anchor, path.name))
    return found, names


def verify_anchors(
    session: Session, *, directory: Path, public_key: Ed25519PublicKey
) -> AnchorCheck:
    """Check each anchor's signature, then that the trail still holds its exact (sequence,
    hash). Together with the chain's own check (service.verify) this shows every event up to
    the last good anchor is as it was when anchored."""
    found, _ = read_anchors(directory)
    check = AnchorCheck(ok=True)
    good: list[tuple[str, Anchor]] = []
    for number, anchor, name in found:
        where = f"{name} line {number}"
        if anchor is None:
            check.problems.append(f"{where}: not an anchor (unreadable line)")
            continue
        try:
            public_key.verify(base64.b64decode(anchor.signature), anchor.message())
        except (InvalidSignature, ValueError):
            check.problems.append(
                f"{where}: the signature does not verify with this public key "
                "(forged or altered anchor, or another key)"
            )
            continue
        good.append((where, anchor))
    if not good and not check.problems:
        check.problems.append(f"no anchors in {directory}")
    sequences = {a.sequence for _, a in good if a.sequence > 0}
    held: dict[int, str] = {}
    ordered = sorted(sequences)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        for seq, hash_ in session.execute(
            select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.seq.in_(chunk))
        ):
            held[seq] = hash_
    head_sequence, _ = read_head(session)
    for where, anchor in good:
        check.anchors += 1
        if anchor.sequence == 0:
            continue  # anchored before the first event: proves nothing, contradicts nothing
        have = held.get(anchor.sequence)
        if have is None:
            check.problems.append(
                f"{where}: event {anchor.sequence}, anchored at {anchor.time}, is not in the "
                f"trail (its head is now at {head_sequence}): events were removed from the end"
            )
        elif have != anchor.hash:
            check.problems.append(
                f"{where}: event {anchor.sequence} no longer has the hash anchored at "
                f"{anchor.time}: the trail up to it was rewritten"
            )
        else:
            check.last_sequence = max(check.last_sequence, anchor.sequence)
    check.ok = not check.problems
    return check
