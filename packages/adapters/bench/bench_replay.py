"""`tthc replay` of a province's dossiers, with and without letters: seconds and peak memory (prints figures).

Target (issue 10): a year of a province, 1,000,000 dossiers, in under 10 minutes with letters, on a 2-core
machine. The events are a simulated province (`tthc_sim`, --per-day dossiers every working day from
--first-day), generated once into --cache; the replay runs until the 1st of January after the last day,
its figures for that year.

    .venv/bin/python packages/adapters/bench/bench_replay.py --dossiers 20000
    .venv/bin/python packages/adapters/bench/bench_replay.py --dossiers 1000000

Prints one line per run: `REPLAY: <dossiers> dossiers <events> events <drafts> drafts <seconds> s
<MiB> MiB <letters|no letters> (<CPU seconds> s CPU)`, the MiB being the peak resident memory of the
replay and its workers together (sampled every half second).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def working_days(first: date, count: int) -> list[date]:
    days, day = [], first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _one_day(job: tuple[date, int, int]) -> str:
    from tthc_sim.day import generate_day

    day, dossiers, seed = job
    return "".join(json.dumps(ev, ensure_ascii=False) + "\n" for ev in generate_day(day, dossiers, seed))


def event_log(dossiers: int, per_day: int, first_day: date, cache: Path) -> tuple[Path, date]:
    """The simulated log (generated once, on every core), and its last day."""
    days = working_days(first_day, math.ceil(dossiers / per_day))
    path = cache / f"province-{dossiers}-{per_day}-{first_day}.jsonl"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        jobs = [(day, min(per_day, dossiers - i * per_day), i + 1) for i, day in enumerate(days)]
        started = time.perf_counter()
        with tempfile.NamedTemporaryFile("w", dir=cache, delete=False, encoding="utf-8") as out, \
                ProcessPoolExecutor() as pool:
            for text in pool.map(_one_day, jobs, chunksize=4):
                out.write(text)
        os.replace(out.name, path)
        print(f"generated {path} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path, days[-1]


def _tree_rss_kib(root: int) -> int:
    """Resident memory of `root` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/status") as f:
                kib = next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except (OSError, ValueError, IndexError):
            continue
        parents[int(entry)], rss[int(entry)] = ppid, kib
    total, frontier = 0, [root]
    while frontier:
        pid = frontier.pop()
        total += rss.get(pid, 0)
        frontier += [child for child, parent in parents.items() if parent == pid]
    return total


def replay(events: Path, until: str, out: Path, letters: bool, jobs: int | None) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "tthc_adapters.cli", "replay", "--events", str(events), "--until", until,
               "--out", str(out)] + ([] if letters else ["--no-letters"]) + ([f"--jobs={jobs}"] if jobs else [])
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kib(proc.pid))
        time.sleep(0.5)
    seconds = time.perf_counter() - started
    used = resource.getrusage(resource.RUSAGE_CHILDREN)  # the replay and its workers, once reaped
    cpu_seconds = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    summary = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise SystemExit(f"tthc replay exited {proc.returncode}")
    found = re.match(r"(\d+) dossiers, (\d+) apology drafts", summary)
    assert found, summary
    return {"dossiers": int(found[1]), "drafts": int(found[2]), "seconds": seconds, "cpu": cpu_seconds,
            "rss_mib": peak / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=20_000)
    parser.add_argument("--per-day", type=int, default=4_000, help="dossiers received per working day")
    parser.add_argument("--first-day", type=date.fromisoformat, default=date(2025, 1, 2))
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "bench-replay")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one, removed)")
    parser.add_argument("--jobs", type=int, help="tthc replay --jobs (default: one per CPU)")
    parser.add_argument("--only", choices=("letters", "no-letters"), help="one run instead of both")
    args = parser.parse_args()
    events, last_day = event_log(args.dossiers, args.per_day, args.first_day, args.cache)
    with open(events, "rb") as f:
        lines = sum(1 for _ in f)
    until = f"{last_day.year + 1}-01-01T00:00:00+07:00"
    with tempfile.TemporaryDirectory(prefix="bench-replay-", dir=args.cache) as scratch:
        out = args.out or Path(scratch) / "out"
        for letters in (False, True):
            if args.only and args.only != ("letters" if letters else "no-letters"):
                continue
            r = replay(events, until, out, letters, args.jobs)
            print(f"REPLAY: {r['dossiers']} dossiers {lines} events {r['drafts']} drafts {r['seconds']:.1f} s "
                  f"{r['rss_mib']:.0f} MiB {'letters' if letters else 'no letters'} ({r['cpu']:.0f} s CPU)", flush=True)


if __name__ == "__main__":
    main()
