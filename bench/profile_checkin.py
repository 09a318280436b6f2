"""Where a check-in submit's time goes: `python -m bench.profile_checkin --db sqlite|postgresql`.

Serves Concord on the benchmark's population (one process, production mode, as `concord bench`
does), drives check-ins at full speed from the separate load generator, samples the thread
holding the interpreter lock with py-spy (`pip install py-spy`; it needs permission to trace
the process), and writes docs/profile-checkin-<db>.txt: the share of samples in each of
Concord's functions and in each library beneath (inclusive), most first."""

from __future__ import annotations

from bench import suite
from bench.profiling import recording, start, write


def main() -> None:
    args, spy = start(__doc__, patients=1000, seconds=15.0)
    from concord.accounts.tokens import create_api_token
    from concord.synth import CASE_MANAGER_EMAIL

    url, _ = suite.population(args.db, args.patients, quiet=True)
    other = CASE_MANAGER_EMAIL.replace("cm0@", "cm1@")
    facts = suite._facts(url, other)
    token = suite._token(url, other, create_api_token)
    patients = suite.caseload_patients(url, facts["cm"])
    port = suite._free_port()
    server = suite._serve("concord.asgi:app", url, port)
    with recording(spy, server, args.seconds, gil=True) as raw:
        figures = suite._load(port, "checkin", token, patients, args.seconds, None, 8)
    total, ours, libraries = raw.summary
    write(
        f"profile-checkin-{args.db}.txt",
        [
            f"Check-in submit on {args.db}, one app process, {args.patients:,} patients: "
            f"{figures['rps']:.0f} req/s, p50 {figures['p50']:.0f} ms, "
            f"{figures['errors']} errors.",
            f"py-spy record --gil -r 200 over {args.seconds:.0f} s: {total:,} samples of the "
            "thread holding the interpreter lock, i.e. where the CPU goes (threads waiting for "
            "the database or a lock are not counted). Shares are inclusive: a function's own "
            "time and its callees'.",
            f"Written by `python -m bench.profile_checkin --db {args.db}` at commit "
            f"{suite.commit()}.",
        ],
        ours,
        libraries,
    )


if __name__ == "__main__":
    main()
