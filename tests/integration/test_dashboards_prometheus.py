"""Every query of every Grafana dashboard returns data, from a REAL Prometheus scraping the REAL metrics service.

The metrics service runs for real (`python -m tthc_metrics`, REAL Kafka and PostgreSQL from the fixtures of
tests/conftest.py) and is fed what the pipeline would give it:

- dossier events: the spec's examples and three simulated days at the one-stop centre (`tthc_sim`), in
  October-November 2026, so that the current month, quarter and year (those containing the watermark, the
  latest event time: 2026-11-30) have closed, late, apologised and overdue dossiers in every period, online
  dossiers and printed appointments (some later than the law allows) on the receipt slips; the service reads
  the simulated province's calendar file (`tthc_sim.province_calendar()`: its online public services);
- deadline events: what the deadline service derives from them (`tthc_core.deadlines.fold`, the same code);
- apology events: `apology.issued` for the at-risk drafts the apology rules make (`tthc_core.apology`).

Every other dossier (with all its events) is fed before Prometheus' first scrape, the rest after it, so that
Prometheus sees the service's counters rise (the on-time share of the last hour's closes is a ratio of rates).

Prometheus (the Debian package's binary, `make tools`) scrapes it every second with the config of
deploy/prometheus/prometheus.yml (its `tthc` job pointed at the service) and every rules file of
deploy/prometheus/rules/. Then every variable query, every target of every panel of every dashboard under
deploy/grafana/dashboards/ (with `$period` = month, quarter and year, `$agency` = an agency present, All and
two agencies, interpolated as Grafana does) and every recording rule is evaluated through Prometheus' HTTP
API, and each must give a non-empty result (and no NaN in an instant result).

Without the `prometheus` binary the live test fails when CI is set and is skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from tthc_contracts import parse_dossier_event
from tthc_contracts.topics import Topics
from tthc_core.calendar import CalendarBook
from tthc_core.calendar_config import parse_calendar
from tthc_core.deadlines import fold
from tthc_core.indices import FIGURES
from tthc_core.replay import run_apologies
from tthc_sim import generate_day, province_calendar

from tests.support.examples import examples
from tests.support.infra import create_topics, service_env, unavailable

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_FILES = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
BUILD_SCRIPT = ROOT / "deploy" / "grafana" / "build_dashboards.py"

# Three working Mondays; nothing is generated past 2026-11-30 00:00 (example 03 ends on 2026-11-30 11:00).
SIM_DAYS = (date(2026, 10, 12), date(2026, 10, 26), date(2026, 11, 9))
SIM_DOSSIERS_PER_DAY = 60
SIM_END = date(2026, 11, 30)
PERIODS = ("month", "quarter", "year")

START_TIMEOUT_S = 90.0
CONSUME_TIMEOUT_S = 120.0
QUERIES_TIMEOUT_S = 60.0
# Grafana's own variables, as it would set them for a Prometheus scraped every 15 s (the data source's
# timeInterval): $__rate_interval is at least 4 scrape intervals.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "__range_s": "300"}
VARIABLE_RE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")
LABEL_VALUES_RE = re.compile(r"^label_values\((.*),\s*(\w+)\)$")


def load_dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARD_FILES]


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))  # a collapsed row keeps its panels inside


def variables_in(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in VARIABLE_RE.finditer(text)}


# -- without services ------------------------------------------------------------------------------
def test_the_committed_dashboards_rules_and_docs_are_what_the_build_script_writes() -> None:
    result = subprocess.run([sys.executable, str(BUILD_SCRIPT), "--check"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# The build script run with the core's list of figures replaced (as if the core had changed), --check only.
WITH_CORE_FIGURES = """
import runpy, sys
import tthc_core.indices
tthc_core.indices.FIGURES = {figures!r}
sys.argv = [{script!r}, "--check"]
runpy.run_path({script!r}, run_name="__main__")
"""


def run_build_script_with_core_figures(figures: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    code = WITH_CORE_FIGURES.format(figures=figures, script=str(BUILD_SCRIPT))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)


def test_the_build_script_refuses_a_core_figure_it_cannot_show() -> None:
    result = run_build_script_with_core_figures((*FIGURES, "queue_length"))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no presentation for queue_length" in lines[0], result.stderr
    assert result.stdout == ""


def test_the_build_script_refuses_a_presentation_of_no_core_figure() -> None:
    result = run_build_script_with_core_figures(tuple(f for f in FIGURES if f != "online_rate"))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "online_rate" in lines[0] and "not a figure" in lines[0], result.stderr


def rule_figures(panel: dict[str, Any], shape: str) -> set[str]:
    """The figures whose recording rule `tthc:<figure>:<shape>` a panel queries."""
    return {m for t in panel.get("targets", []) for m in re.findall(rf"tthc:(\w+):{shape}\b", t["expr"])}


def dashboard(uid: str) -> dict[str, Any]:
    return next(d for d in load_dashboards() if d["uid"] == uid)


def test_the_agency_drilldown_shows_every_figure_of_the_core_in_a_stat() -> None:
    stats = [p for p in all_panels(dashboard("tthc-agency-drilldown")["panels"]) if p["type"] == "stat"]
    shown = set().union(*(rule_figures(p, "by_agency") for p in stats))
    assert shown == set(FIGURES)


def test_the_overview_shows_the_appointment_audit_and_the_online_figures_by_agency() -> None:
    panels = list(all_panels(dashboard("tthc-province-overview")["panels"]))
    audit = [p for p in panels if p["title"].startswith("Hẹn trả sai quy định")]
    assert len(audit) == 1
    audit_figures = rule_figures(audit[0], "by_agency")
    assert {"appointment_later", "appointment_later_rate", "appointment_checked"} <= audit_figures
    # the online rates beside the on-time rate, each in a panel of its own on one line of the grid: the
    # province's stats and the bars by agency
    for shape in ("province", "by_agency"):
        alone = {f: p for p in panels if len(rule_figures(p, shape)) == 1 for f in rule_figures(p, shape)}
        lines = {f: alone[f]["gridPos"]["y"] for f in ("on_time_rate", "online_rate", "online_uptake_rate")}
        assert len(set(lines.values())) == 1, (shape, lines)


def test_no_panel_overlaps_another_or_leaves_the_grid() -> None:
    for d in load_dashboards():
        boxes = [(p["title"], p["gridPos"]) for p in d["panels"]]  # rows included: a row is a 24 x 1 box
        for title, g in boxes:
            assert g["x"] >= 0 and g["y"] >= 0 and g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, \
                f"{d['uid']} / {title}: {g}"
        for (t1, a), (t2, b) in itertools.combinations(boxes, 2):
            apart = (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                     or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])
            assert apart, f"{d['uid']}: {t1} {a} overlaps {t2} {b}"


def test_every_panel_uses_the_provisioned_data_source_and_defined_variables() -> None:
    provisioned = {d["uid"] for d in yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]}
    assert len(DASHBOARD_FILES) >= 3
    uids = set()
    for dashboard in load_dashboards():
        uids.add(dashboard["uid"])
        defined = {v["name"] for v in dashboard["templating"]["list"]}
        ids = [p["id"] for p in all_panels(dashboard["panels"])]
        assert len(ids) == len(set(ids)), f"{dashboard['uid']}: panel ids repeat"
        for panel in all_panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                where = f"{dashboard['uid']} / {panel['title']} / {target['refId']}"
                assert target["datasource"]["uid"] in provisioned, where
                assert panel["datasource"]["uid"] in provisioned, where
                assert variables_in(target["expr"]) <= defined | set(BUILTINS), where
    assert len(uids) == len(DASHBOARD_FILES)


# -- the pipeline's events ------------------------------------------------------------------------
@dataclass
class Feed:
    dossier: list[str]  # JSON lines, keyed by dossier_id
    deadline: list[str]
    apology: list[str]

    def streams(self) -> dict[str, list[str]]:
        return {"dossier": self.dossier, "deadline": self.deadline, "apology": self.apology}

    def distinct(self) -> dict[str, int]:
        """stream -> distinct (source, event_id): what the service counts as stored once it has them all."""
        out = {}
        for stream, lines in self.streams().items():
            events = [json.loads(line) for line in lines]
            out[stream] = len({(e["source"], e["event_id"]) for e in events})
        return out

    def halves(self) -> tuple[Feed, Feed]:
        """Every other dossier (all its events) in each half, so that most agencies close dossiers in both."""
        ids = sorted({json.loads(line)["dossier_id"] for line in self.dossier})
        first = set(ids[::2])

        def half(keep: bool) -> Feed:
            return Feed(*([line for line in lines if (json.loads(line)["dossier_id"] in first) == keep]
                          for lines in self.streams().values()))

        return half(True), half(False)


def build_feed() -> Feed:
    lines = [line for example in examples() for line in example.event_lines()]
    for day in SIM_DAYS:
        lines += [json.dumps(ev, ensure_ascii=False)
                  for ev in generate_day(day, dossiers=SIM_DOSSIERS_PER_DAY, seed=3,
                                         horizon_days=(SIM_END - day).days)]
    events = [parse_dossier_event(json.loads(line)) for line in lines]
    until = max(e.occurred_at for e in events) + timedelta(microseconds=1)
    book = CalendarBook(parse_calendar(province_calendar()))  # what the services read (METRICS_CALENDAR_FILE)
    by_dossier: dict[str, list[Any]] = defaultdict(list)
    for ev in events:
        by_dossier[ev.dossier_id].append(ev)
    deadline: list[Any] = []
    issued: list[Any] = []
    for dossier_id in sorted(by_dossier):
        state, derived = fold(by_dossier[dossier_id], book, until)  # what the deadline service publishes
        if state is None:
            continue
        deadline += derived
        ledger = run_apologies(book, by_dossier[dossier_id], derived)  # the apology service's drafts
        for draft in ledger.drafts:
            if draft.status == "draft" and draft.kind == "at_risk" and draft.drafted_at is not None:
                number = f"{len(issued) + 1:02d}/TB-XL"
                issued.append(ledger.issue(draft.apology_id, number, draft.drafted_at, draft.proposed_due_at,
                                           "the dossier needs more time"))
    return Feed(lines, [e.model_dump_json() for e in deadline], [e.model_dump_json() for e in issued])


async def produce(kafka: str, topics: Topics, feed: Feed) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for topic, lines in ((topics.dossier_events, feed.dossier), (topics.deadline_events, feed.deadline),
                             (topics.apology_events, feed.apology)):
            sent = [await producer.send(topic, line.encode("utf-8"),
                                        key=json.loads(line)["dossier_id"].encode("utf-8"),
                                        headers=[("content-type", b"application/json")]) for line in lines]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()


# -- processes --------------------------------------------------------------------------------------
@dataclass
class Process:
    name: str
    log_path: Path
    popen: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}", pytrace=False)

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)


def start(name: str, argv: list[str], env: dict[str, str], log_path: Path) -> Process:
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Process(name, log_path, popen)


def another_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    path = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")
    if path:
        return path
    unavailable("the prometheus binary is not installed (`make tools`, or apt-get install prometheus)")


def prometheus_config(metrics_port: int) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with a 1 s scrape of the one metrics service and the repo's rules."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(p) for p in RULE_FILES]
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == "tthc"]
    assert jobs, "prometheus.yml has no tthc job"
    statics = [s for s in jobs[0]["static_configs"] if s.get("labels", {}).get("service") == "metrics"]
    assert statics, "the tthc job does not scrape the metrics service"
    jobs[0]["static_configs"] = [{**statics[0], "targets": [f"127.0.0.1:{metrics_port}"]}]
    config["scrape_configs"] = jobs
    return config


# -- Grafana's interpolation -------------------------------------------------------------------------
ALL = "$__all"


def regex_escape(value: str) -> str:
    """Grafana's prometheusSpecialRegexEscape: a regex metacharacter gets `\\\\` (one `\\` once in PromQL)."""
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value.replace("\\", "\\\\\\\\"))


def interpolate(text: str, variables: dict[str, dict[str, Any]], values: dict[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name in BUILTINS:
            return BUILTINS[name]
        var, value = variables[name], values[name]
        if value == ALL:
            if var.get("allValue"):
                return var["allValue"]
            value = [o["value"] for o in var.get("options", []) if o["value"] != ALL]
        if not var.get("multi") and not var.get("includeAll"):
            return value if isinstance(value, str) else value[0]
        if isinstance(value, str):
            return regex_escape(value)
        escaped = [regex_escape(v) for v in value]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"

    return VARIABLE_RE.sub(one, text)


def variable_choices(var: dict[str, Any], agencies: list[str]) -> list[Any]:
    if var["name"] == "period":
        return list(PERIODS)
    if var["name"] == "agency":
        if var.get("multi"):
            return [[agencies[0]], ALL, agencies[:2]]
        return [agencies[0]] + ([ALL] if var.get("includeAll") else [])
    raise AssertionError(f"the test does not know how to choose a value of ${var['name']}")


@dataclass(frozen=True)
class Check:
    where: str
    kind: str  # instant, range, labels
    query: str
    label: str = ""  # for labels: the label name; the query is then the series selector
    must_include: str = ""  # for labels: a value that must be among the answers


def dashboard_checks(dashboards: list[dict[str, Any]], agencies: list[str]) -> tuple[list[Check], int, int]:
    """(checks, panels with queries, targets) of every dashboard, every combination of its variables."""
    checks: list[Check] = []
    panels = targets = 0
    for dashboard in dashboards:
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}

        def combos(text: str, variables: dict[str, dict[str, Any]] = variables) -> Iterator[dict[str, Any]]:
            names = sorted(variables_in(text) - set(BUILTINS))
            for chosen in itertools.product(*(variable_choices(variables[n], agencies) for n in names)):
                yield dict(zip(names, chosen, strict=True))

        for var in variables.values():
            if var["type"] != "query":
                continue
            definition = var["definition"]
            match = LABEL_VALUES_RE.match(definition)
            assert match, f"{dashboard['uid']}: ${var['name']}: only label_values(selector, label) is checked"
            for values in combos(definition):
                selector = interpolate(match.group(1), variables, values)
                checks.append(Check(f"{dashboard['uid']} ${var['name']} {values}", "labels", selector,
                                    match.group(2), agencies[0] if var["name"] == "agency" else ""))
        for panel in all_panels(dashboard["panels"]):
            if not panel.get("targets"):
                continue
            panels += 1
            for target in panel["targets"]:
                targets += 1
                kind = "instant" if target.get("instant") and not target.get("range") else "range"
                for values in combos(target["expr"]):
                    checks.append(Check(f"{dashboard['uid']} / {panel['title']} / {target['refId']} {values}",
                                        kind, interpolate(target["expr"], variables, values)))
    return checks, panels, targets


def recording_rule_checks() -> list[Check]:
    checks = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            checks += [Check(f"{path.name} / {group['name']}", "instant", r["record"])
                       for r in group["rules"] if "record" in r]
    return checks


async def evaluate(http: httpx.AsyncClient, check: Check, since: float) -> str | None:
    """None when the query gives data, else why not."""
    now = time.time()
    if check.kind == "labels":
        response = await http.get(f"/api/v1/label/{check.label}/values",
                                  params={"match[]": check.query, "start": since, "end": now})
    elif check.kind == "instant":
        response = await http.get("/api/v1/query", params={"query": check.query, "time": now})
    else:
        response = await http.get("/api/v1/query_range",
                                  params={"query": check.query, "start": since, "end": now, "step": 1})
    body = response.json()
    if response.status_code != 200 or body.get("status") != "success":
        return f"error {response.status_code}: {body.get('error')}"
    data = body["data"]
    if check.kind == "labels":
        if not data:
            return "no label values"
        if check.must_include and check.must_include not in data:
            return f"{check.must_include} not among {data}"
        return None
    if not data["result"]:
        return "no data"
    if check.kind == "instant" and data["resultType"] == "vector":
        nan = [s["metric"] for s in data["result"] if not math.isfinite(float(s["value"][1]))]
        if nan:
            return f"NaN or infinite for {nan}"
    return None


# -- the metrics service's own answer ------------------------------------------------------------------
def scrape_samples(text: str) -> list[Any]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def consumed(samples: list[Any]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for s in samples:
        if s.name == "tthc_metrics_consumed_events_total":
            out[s.labels["stream"]] += s.value
    return out


def closes_by_agency(samples: list[Any]) -> dict[tuple[str, str], float]:
    """(agency, outcome) -> dossiers closed, as the service's counter says."""
    return {(s.labels["agency"], s.labels["outcome"]): s.value for s in samples
            if s.name == "tthc_metrics_closed_dossiers_total"}


def agencies_with_every_figure(samples: list[Any]) -> list[str]:
    """Agencies that have a series of every figure in every period (so each of their panels has data)."""
    have: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for s in samples:
        if s.name.startswith("tthc_index_") and s.labels.get("agency") and s.labels.get("field") == "":
            have[s.labels["agency"]].add((s.name.removeprefix("tthc_index_"), s.labels["period"]))
    closing = {s.labels["agency"] for s in samples if s.name == "tthc_metrics_closed_dossiers_total"}
    full = set(itertools.product(FIGURES, PERIODS))
    return sorted(a for a, seen in have.items() if seen >= full and a in closing)


@dataclass
class Timings:
    marks: dict[str, float] = field(default_factory=dict)
    t0: float = field(default_factory=time.perf_counter)

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.perf_counter() - self.t0, 1)


@pytest.fixture
async def topics(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[Topics]:
    topics = Topics(topic_prefix)
    await create_topics(kafka_bootstrap, topics.all())
    yield topics


async def test_every_dashboard_query_returns_data_from_prometheus_scraping_the_metrics_service(
    prometheus_binary: str, kafka_bootstrap: str, pg_database_url: str, topic_prefix: str, topics: Topics,
    free_port: int, tmp_path: Path,
) -> None:
    timings = Timings()
    feed = build_feed()
    # Half the dossiers before Prometheus' first scrape, half after: a counter Prometheus never saw rise has
    # a rate of 0, and the on-time shares of the last hour (closes that were early or on time / closes)
    # would have no data at all.
    before, after = feed.halves()
    await produce(kafka_bootstrap, topics, before)
    timings.mark("events built, the first half produced")

    env = service_env("metrics", {
        "database_url": pg_database_url, "http_port": str(free_port), "consumer_group": f"{topic_prefix}tthc-metrics",
        "gauge_refresh_interval_s": "2", "log_format": "text",
    }, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, TTHC_TOPIC_PREFIX=topic_prefix)
    calendar_file = tmp_path / "calendar.yml"
    calendar_file.write_text(province_calendar(), encoding="utf-8")
    env["METRICS_CALENDAR_FILE"] = str(calendar_file)
    prometheus_port = another_free_port()
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(prometheus_config(free_port), sort_keys=False), encoding="utf-8")
    processes: list[Process] = []
    try:
        metrics = start("the metrics service", [sys.executable, "-m", "tthc_metrics"], env, tmp_path / "metrics.log")
        processes.append(metrics)
        prometheus = start("prometheus", [
            prometheus_binary, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}", "--storage.tsdb.retention.time=1h",
        ], {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, tmp_path / "prometheus.log")
        processes.append(prometheus)
        prometheus_since = time.time() - 1

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{free_port}", timeout=10) as service, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{prometheus_port}", timeout=10) as prom:
            async def stored(expected: Feed) -> list[Any]:
                """The service's samples once it has stored every event of `expected`."""
                want = {k: float(v) for k, v in expected.distinct().items()}
                async with asyncio.timeout(CONSUME_TIMEOUT_S):
                    while True:
                        metrics.check_alive()
                        try:
                            response = await service.get("/metrics")
                            samples = scrape_samples(response.text) if response.status_code == 200 else []
                        except httpx.TransportError:
                            samples = []
                        if samples and consumed(samples) == want:
                            return samples
                        await asyncio.sleep(0.5)

            # 1. the first half stored, and Prometheus has scraped the service's counters as they are then
            closes_before = closes_by_agency(await stored(before))
            timings.mark("metrics service: the first half stored")
            async with asyncio.timeout(START_TIMEOUT_S):
                while True:
                    prometheus.check_alive()
                    try:
                        if (await prom.get("/-/ready")).status_code == 200:
                            seen = (await prom.get("/api/v1/query", params={
                                "query": f'sum(tthc_metrics_closed_dossiers_total{{job="tthc"}}) '
                                         f'== {sum(closes_before.values())}'})).json()
                            if seen["data"]["result"]:
                                break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.3)
            timings.mark("prometheus: the first half's counters scraped")

            # 2. the second half: the service has stored every event and recomputed its gauges since
            await produce(kafka_bootstrap, topics, after)
            samples = await stored(feed)
            all_stored = time.time()
            timings.mark("metrics service: every event stored")
            async with asyncio.timeout(CONSUME_TIMEOUT_S):
                while not any(s.name == "tthc_index_last_refresh_timestamp_seconds" and s.value > all_stored
                              for s in samples):
                    await asyncio.sleep(0.3)
                    samples = scrape_samples((await service.get("/metrics")).text)
            closes_after = closes_by_agency(samples)
            # agencies whose closes of one outcome Prometheus saw rise: their last hour's on-time share exists
            rising = {a for (a, outcome), n in closes_after.items()
                      if 0 < closes_before.get((a, outcome), 0) < n}
            agencies = [a for a in agencies_with_every_figure(samples) if a in rising]
            assert len(agencies) >= 2, "the data should give two agencies with every figure in every period, " \
                                       "closing dossiers in both halves"

            # 3. every query of every dashboard, every recording rule
            checks, n_panels, n_targets = dashboard_checks(load_dashboards(), agencies)
            checks += recording_rule_checks()
            failures: dict[Check, str] = {}
            deadline = time.monotonic() + QUERIES_TIMEOUT_S
            pending = list(dict.fromkeys(checks))
            while pending:
                results = await asyncio.gather(*(evaluate(prom, c, prometheus_since) for c in pending))
                failures = {c: why for c, why in zip(pending, results) if why is not None}
                pending = list(failures)
                if not pending or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1)
            timings.mark("every query answered")
    except BaseException:
        for p in processes:
            print(f"---- {p.name} log ----\n{p.log_tail()}")
        raise
    finally:
        for p in reversed(processes):
            p.stop()

    report = "\n".join(f"{c.where}\n    {c.kind}: {c.query}\n    -> {why}" for c, why in failures.items())
    assert not failures, f"{len(failures)} of {len(set(checks))} queries gave no data:\n{report}"
    kinds = defaultdict(int)
    for c in set(checks):
        kinds[c.kind] += 1
    print(f"\n{len(DASHBOARD_FILES)} dashboards, {n_panels} panels, {n_targets} targets, "
          f"{len(set(checks))} distinct queries ({dict(kinds)}), all with data; agency used: {agencies[0]}; "
          f"events: {feed.distinct()}; timings (s): {timings.marks}")
