"""Where the caseload page's and a patient's page's time goes:
`python -m bench.profile_pages --db sqlite|postgresql [--patients N]`.

Serves Concord on the benchmark's population (one process, production mode, as `concord bench`
does), signs in as the benchmark's care manager and asks for the page again and again, one
request at a time, while py-spy samples the server. Every thread is sampled, not only the one
holding the interpreter lock, so time spent waiting for the database counts where it is spent
(a page's latency is its wall time). Writes docs/profile-caseload-<db>.txt and
docs/profile-patient-<db>.txt: the share of samples in each of Concord's functions and in each
library beneath (inclusive), most first."""

from __future__ import annotations

import http.client
import re
import statistics
import time
from urllib.parse import urlencode

from bench import suite
from bench.profiling import recording, start, write


def sign_in(port: int, email: str, password: str) -> str:
    """The session cookie of a signed-in person (the form's CSRF token first)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/sign-in")
    page = conn.getresponse()
    body = page.read().decode()
    anon = [v.split(";")[0] for k, v in page.getheaders() if k.lower() == "set-cookie"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert token, "no CSRF token on the sign-in page"
    conn.request(
        "POST",
        "/sign-in",
        body=urlencode({"email": email, "password": password, "csrf_token": token.group(1)}),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": "; ".join(anon)},
    )
    signed = conn.getresponse()
    signed.read()
    assert signed.status == 303, f"sign-in answered {signed.status}"
    cookies = [v.split(";")[0] for k, v in signed.getheaders() if k.lower() == "set-cookie"]
    conn.close()
    return "; ".join(anon + cookies)


def pages(port: int, path: str, cookie: str, seconds: float) -> list[float]:
    """GET `path` one request after another for `seconds`; each one's time in ms."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        started = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": cookie})
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 200, f"{path} answered {answer.status}"
        times.append((time.perf_counter() - started) * 1000)
    conn.close()
    return times


def main() -> None:
    args, spy = start(__doc__, patients=100_000, seconds=20.0)
    from concord.synth import CASE_MANAGER_EMAIL, PASSWORD

    url, _ = suite.population(args.db, args.patients, quiet=True)
    facts = suite._facts(url, CASE_MANAGER_EMAIL)
    for name, path, what in (
        ("caseload", "/registry", "the caseload page (150 patients)"),
        ("patient", f"/patients/{facts['patient']}", "one patient's page (plan, chart, alerts)"),
    ):
        port = suite._free_port()
        server = suite._serve("concord.asgi:app", url, port)
        cookie = sign_in(port, CASE_MANAGER_EMAIL, PASSWORD)
        pages(port, path, cookie, 2.0)  # warm
        with recording(spy, server, args.seconds, gil=False) as raw:
            times = pages(port, path, cookie, args.seconds)
        total, ours, libraries = raw.summary
        write(
            f"profile-{name}-{args.db}.txt",
            [
                f"{what[0].upper()}{what[1:]} on {args.db}, {args.patients:,} patients, one app "
                f"process, one request at a time: {len(times)} pages, p50 "
                f"{statistics.median(times):.1f} ms, p95 {suite.pct(times, 0.95):.1f} ms.",
                f"py-spy record -r 200 over {args.seconds:.0f} s: {total:,} samples of every "
                "thread that was not idle, so waiting for the database counts (a page's latency "
                "is wall time). Shares are inclusive: a function's own time and its callees'. "
                "The event loop's share is uvicorn reading the request and writing the answer.",
                f"Written by `python -m bench.profile_pages --db {args.db}` at commit "
                f"{suite.commit()}.",
            ],
            ours,
            libraries,
        )


if __name__ == "__main__":
    main()
