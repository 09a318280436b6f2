"""What the profilers share (`bench.profile_checkin`, `bench.profile_pages`): their arguments,
py-spy recording a served app, the samples summarised by Concord's functions and by library,
and the report written to docs/."""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def summarise(raw: Path, top: int) -> tuple[int, list[tuple[float, str]], list[tuple[float, str]]]:
    """Samples in all; Concord's functions and the libraries' by inclusive share."""
    total = 0
    ours: collections.Counter[str] = collections.Counter()
    libraries: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        seen_ours, seen_lib = set(), set()
        for frame in stack.split(";"):
            name, _, where = frame.partition(" (")
            if where.startswith("concord/"):
                key = f"{name} ({where.split(':')[0]})"
                if key not in seen_ours:
                    seen_ours.add(key)
                    ours[key] += n
            else:
                path = where.rsplit(":", 1)[0]
                package = "sqlalchemy" if path.startswith("<sqlalchemy") else path.split("/")[0]
                if package and package not in seen_lib:
                    seen_lib.add(package)
                    libraries[package] += n
    share = 100 / max(total, 1)
    return (
        total,
        [(n * share, k) for k, n in ours.most_common(top)],
        [(n * share, k) for k, n in libraries.most_common(top)],
    )


def start(doc: str | None, *, patients: int, seconds: float) -> tuple[argparse.Namespace, str]:
    """A profiler's arguments (--db, --patients, --seconds) and the py-spy to record with."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--patients", type=int, default=patients)
    parser.add_argument("--seconds", type=float, default=seconds)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        sys.exit("py-spy is not installed: pip install py-spy")
    os.environ.setdefault("CONCORD_ENV", "development")
    return args, spy


class Recorded:
    summary: tuple[int, list[tuple[float, str]], list[tuple[float, str]]] = (0, [], [])


@contextlib.contextmanager
def recording(
    spy: str, server: subprocess.Popen[bytes], seconds: float, *, gil: bool
) -> Iterator[Recorded]:
    """py-spy samples `server` for `seconds` while the body drives it; the server is stopped
    afterwards and the samples summarised (`.summary`)."""
    result = Recorded()
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "profile.txt"
        try:
            recorder = subprocess.Popen(
                [spy, "record", *(["--gil"] if gil else ["--nonblocking"]), "-p", str(server.pid)]
                + ["-f", "raw", "-o", str(raw), "-r", "200", "-d", str(int(seconds) + 1)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            yield result
            recorder.wait(timeout=60)
        finally:
            server.terminate()
            server.wait(timeout=10)
        if not raw.exists():
            sys.exit("py-spy wrote nothing (does it have permission to trace the server?)")
        result.summary = summarise(raw, 40)


def write(
    name: str, head: list[str], ours: list[tuple[float, str]], libraries: list[tuple[float, str]]
) -> None:
    lines = [
        *head,
        "",
        "Concord's functions:",
        *(f"  {share:5.1f}%  {name}" for share, name in ours),
        "",
        "By library (the top package of each frame):",
        *(f"  {share:5.1f}%  {name}" for share, name in libraries),
    ]
    out = ROOT / "docs" / name
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(out.read_text())
