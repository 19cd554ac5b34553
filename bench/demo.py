"""make demo: the seed communes' histories through the real pipeline, and the articles' figures.

Generates (bench/generate.py; cached under .local/demo/) the histories of Thanh Hóa's 166
communes, Bá Thước among them, and of Thanh Ba and Vĩnh Tường (Phú Thọ); posts Thanh Hóa's through
intake as CloudEvents and the two Phú Thọ communes' as their system syncs them to the national
portal (DongBoHoSoMC + CapNhatTienDoHoSoMC through /v1/dvcqg, bench/portal.py); waits until
processing and metrics have caught up; then prints, commune by commune, what the article says
beside what the report API answers as of the article's date.

Event ids are derived from the dossier and step, so running it twice sends the same events, which
the pipeline deduplicates by source + id: the figures do not change.
"""

import asyncio
import hashlib
import json
import os
import random
import threading
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.articles import CLAIMS, RANK, period
from bench.generate import PROVINCE, SEEDS, histories, receiving_unit, signed_shares
from bench.scorecard_data import enriched, feedback
from bench.portal import PORTAL_COMMUNES, PortalDossier, portal_dossier
from tests.fixtures.pki import blank_pdf, sign_with_pkcs12
from tests.fixtures.sample import VN, event
from shared.communes import commune, communes_of_province
from shared.kafka import client_options
from shared.kafka_acls import ADMIN, password_file
from shared.lookup import lookup_link
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
STACK = Path(os.environ.get("DOSSIER_STACK_DIR", ROOT / ".local"))
INTAKE = f"http://127.0.0.1:{os.environ.get('DOSSIER_INTAKE_PORT', '8001')}"
PROCESSING = f"http://127.0.0.1:{os.environ.get('DOSSIER_PROCESSING_PORT', '8002')}"
METRICS = f"http://127.0.0.1:{os.environ.get('DOSSIER_METRICS_PORT', '8003')}"
NOTIFICATIONS = f"http://127.0.0.1:{os.environ.get('DOSSIER_NOTIFICATIONS_PORT', '8004')}"
SIGNATURE = f"http://127.0.0.1:{os.environ.get('DOSSIER_SIGNATURE_PORT', '8005')}"
KAFKA = os.environ.get("DOSSIER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
ALERTMANAGER = f"http://127.0.0.1:{os.environ.get('DOSSIER_ALERTMANAGER_PORT', '9093')}"
PROMETHEUS = f"http://127.0.0.1:{os.environ.get('DOSSIER_PROMETHEUS_PORT', '9090')}"
SEED = int(os.environ.get("DEMO_SEED", "1"))
BATCH = 500
RESULT_PORT = int(os.environ.get("DEMO_RESULT_PORT", "8199"))
RESULT_URL = f"http://127.0.0.1:{RESULT_PORT}/ket-qua.pdf"
# Thanh Hóa's communes carry the v1.2 fields and feedback the 766 scorecard counts (bench/scorecard_data.py);
# Phú Thọ's go through the portal's format as they are.
ENRICHED = frozenset(c.code for c in communes_of_province(PROVINCE))


def events() -> list[dict]:
    """Every commune's events, from the cache when the generator and seed are the same."""
    generator = b"".join((ROOT / "bench" / name).read_bytes() for name in ("generate.py", "scorecard_data.py"))
    cache = ROOT / ".local" / "demo" / f"events-{SEED}-{hashlib.sha256(generator).hexdigest()[:12]}.jsonl"
    if cache.exists():
        return [orjson.loads(line) for line in cache.read_bytes().splitlines()]
    print("Generating the communes' histories (once; cached in .local/demo/) …")
    started = time.monotonic()
    out = [e for code, dossiers in histories(seed=SEED).items() for history in dossiers
           for e in (enriched(history, SEED) if code in ENRICHED else history)]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(b"\n".join(orjson.dumps(e) for e in out))
    print(f"  {len(out):,} events in {time.monotonic() - started:.0f} s")
    return out


def feedback_events(all_events: list[dict]) -> list[dict]:
    """Thanh Hóa's feedback (PAKN) over Bá Thước's period, some of it about the communes' dossiers."""
    codes: dict[str, list[str]] = {}
    for e in all_events:
        if e["type"] == "dossier.received" and e["data"]["commune_code"] in ENRICHED:
            codes.setdefault(e["data"]["commune_code"], []).append(e["subject"])
    period = SEEDS["14923"]
    return [e for commune_code in sorted(codes)
            for e in feedback(commune_code, period.start, period.end, codes[commune_code], SEED)]


def result_pdf() -> bytes:
    """A result signed (ký số) with the local demo official's key: made once, kept in .local/demo/."""
    path = ROOT / ".local" / "demo" / "ket-qua.pdf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sign_with_pkcs12(blank_pdf("Kết quả giải quyết hồ sơ"), STACK / "signature" / "official.p12"))
    return path.read_bytes()


def serve_results(pdf: bytes) -> ThreadingHTTPServer:
    """The one-stop-shop system's document store, as far as the demo needs one: RESULT_URL."""

    class Results(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("content-type", "application/pdf")
            self.send_header("content-length", str(len(pdf)))
            self.end_headers()
            self.wfile.write(pdf)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", RESULT_PORT), Results)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def signatures(all_events: list[dict], pdf: bytes) -> list[dict]:
    """Thanh Hóa's results signed and given by URL (the electronic-result sub-indicator, docs/domain.md
    §6): for each commune's share of resolved dossiers, the signature requested, then the result signed,
    a minute before the resolution."""
    shares = signed_shares(SEED)
    receipts = {e["subject"]: e for e in all_events if e["type"] == "dossier.received"}
    sha = hashlib.sha256(pdf).hexdigest()
    out = []
    for e in all_events:
        receipt = receipts.get(e["subject"])
        share = shares.get(receipt["data"]["commune_code"]) if receipt else None
        if e["type"] != "dossier.resolved" or share is None or random.Random(f"{SEED}/{e['subject']}").random() >= share:
            continue
        at = max(datetime.fromisoformat(e["time"]) - timedelta(minutes=1), datetime.fromisoformat(receipt["time"]))
        base = {"source": e["source"], "subject": e["subject"], "specversion": "1.0", "time": at.isoformat(),
                "datacontenttype": "application/json"}
        out.append(base | {"id": f"{e['id']}-ky-so-yeu-cau", "type": "dossier.signature_requested",
                           "data": {"document_id": "KQ-1", "signer": "Chủ tịch UBND xã"}})
        out.append(base | {"id": f"{e['id']}-ky-so", "type": "dossier.signed",
                           "data": {"document_id": "KQ-1", "document_sha256": sha, "document_url": RESULT_URL}})
    return out


def local_key() -> str:
    """The local stack's key (`make up` made it): intake's, and the operators' for the report API."""
    return (STACK / "intake-api-key").read_text().strip()


def as_operator() -> dict[str, str]:
    return {"authorization": f"Bearer {local_key()}"}


def progress(done: int, total: int, what: str) -> None:
    filled = 40 * done // total
    sys.stdout.write(f"\r  [{'#' * filled}{'.' * (40 - filled)}] {done:,}/{total:,} {what}")
    sys.stdout.flush()


def post(all_events: list[dict]) -> None:
    key = local_key()
    headers = {"authorization": f"Bearer {key}", "content-type": "application/cloudevents-batch+json"}
    print(f"Posting {len(all_events):,} events through intake ({INTAKE}):")
    with httpx.Client(base_url=INTAKE, headers=headers, timeout=60) as client:
        for i in range(0, len(all_events), BATCH):
            answer = client.post("/v1/events", content=orjson.dumps(all_events[i : i + BATCH]))
            if answer.status_code != 202:
                raise SystemExit(f"intake answered {answer.status_code}: {answer.text}")
            if (i // BATCH) % 10 == 9 or i + BATCH >= len(all_events):
                progress(min(i + BATCH, len(all_events)), len(all_events), "events")
    print()


PORTAL_BATCH = 2000  # records a request (the portal's adapter allows 10,000)


@dataclass
class PortalReplay:
    """A commune replayed in the portal's format: its records, what went beside them, what it left out."""

    commune_code: str
    snapshots: list[dict] = field(default_factory=list)
    progress: list[dict] = field(default_factory=list)
    beside: list[dict] = field(default_factory=list)
    left_out: Counter = field(default_factory=Counter)

    def add(self, dossier: PortalDossier) -> None:
        self.snapshots += dossier.snapshots
        self.progress += dossier.progress
        self.beside += dossier.beside
        self.left_out.update(dossier.left_out)

    def about(self) -> list[str]:
        lines = [f"replayed as the national portal's sync (/v1/dvcqg): {len(self.snapshots):,} DongBoHoSoMC "
                 f"snapshots, {len(self.progress):,} CapNhatTienDoHoSoMC steps"]
        if self.beside:
            kinds = Counter(e["type"].removeprefix("dossier.") for e in self.beside)
            lines.append("not in the format, sent beside it as CloudEvents (the satisfaction figure needs them): "
                         + ", ".join(f"{n:,} {kind}" for kind, n in sorted(kinds.items())))
        if self.left_out:
            lines.append("not in the format, left out (no article figure needs them): "
                         + ", ".join(f"{n:,} {kind.removeprefix('dossier.')}" for kind, n in sorted(self.left_out.items())))
        return lines


def split(all_events: list[dict]) -> tuple[list[dict], dict[str, PortalReplay]]:
    """The CloudEvents to post as they are, and the portal communes' dossiers as the portal's records."""
    communes = {e["subject"]: e["data"]["commune_code"] for e in all_events if e["type"] == "dossier.received"}
    plain, dossiers = [], {}
    for e in all_events:
        if communes.get(e["subject"]) in PORTAL_COMMUNES:
            dossiers.setdefault(e["subject"], []).append(e)
        else:
            plain.append(e)
    replays = {code: PortalReplay(code) for code in PORTAL_COMMUNES}
    for code, history in dossiers.items():
        commune_code = communes[code]
        replays[commune_code].add(portal_dossier(history, receiving_unit(commune_code)))
    return plain, replays


def post_portal(replays: dict[str, PortalReplay]) -> None:
    """Logs in with the local stack's portal account and syncs each commune as its system would."""
    account = json.loads((STACK / "dvcqg-accounts.json").read_text())[0]
    password = (STACK / "dvcqg-password").read_text().strip()
    with httpx.Client(base_url=INTAKE, timeout=300) as client:
        login = client.post("/v1/dvcqg/login", json={"username": account["username"], "password": password})
        if login.status_code != 200:
            raise SystemExit(f"the portal login answered {login.status_code}: {login.text}")
        session = login.json()["session"]
        for replay in replays.values():
            unit = receiving_unit(replay.commune_code)
            for service, records in (("DongBoHoSoMC", replay.snapshots), ("CapNhatTienDoHoSoMC", replay.progress)):
                print(f"Syncing {len(records):,} {service} records of {unit} through {INTAKE}/v1/dvcqg:")
                for i in range(0, len(records), PORTAL_BATCH):
                    body = {"session": session, "madonvi": unit, "service": service, "isUpdating": "False",
                            "data": records[i : i + PORTAL_BATCH]}
                    answer = client.post("/v1/dvcqg", content=orjson.dumps(body),
                                         headers={"content-type": "application/json"})
                    if answer.status_code != 200 or answer.json()["error_code"] != "00":
                        failed = [r for r in answer.json().get("results", []) if r.get("error_code") != "00"][:3]
                        raise SystemExit(f"/v1/dvcqg answered {answer.status_code}: {failed or answer.text[:500]}")
                    progress(min(i + PORTAL_BATCH, len(records)), len(records), "records")
                print()


def counted() -> int:
    """Dossiers of the demo's communes the report API counts now."""
    province = commune("14923").province_code
    card = httpx.get(f"{METRICS}/v1/reports/provinces/{province}/scorecard", params=period(SEEDS["14923"]),
                     headers=as_operator(), timeout=60).json()
    return sum(c["received"] for c in card["communes"]) + sum(
        report(code)["received"] for code in SEEDS if commune(code).province_code != province)


# Who reads what (docs/contract.md §2): the events, then the statuses processing and signature publish.
CONSUMERS = {"processing": "dossier-events", "signature": "dossier-events",
             "metrics": "dossier-status", "notifications": "dossier-status"}


async def _backlog() -> int:
    """Records the services' consumer groups have not committed yet."""
    # Kafka's admin user: the services' users may not read each other's groups (docs/security.md).
    kafka = client_options(ServiceSettings(environment="local", kafka_bootstrap_servers=KAFKA, kafka_username=ADMIN,
                                           kafka_password_file=password_file(STACK / "secrets", ADMIN)))
    admin = AIOKafkaAdminClient(**kafka)
    consumer = AIOKafkaConsumer(**kafka)
    await admin.start()
    await consumer.start()
    try:
        described = {t["topic"]: t["partitions"] for t in await admin.describe_topics(list(set(CONSUMERS.values())))}
        left = 0
        for group, topic in CONSUMERS.items():
            partitions = [TopicPartition(topic, p["partition"]) for p in described[topic]]
            assert partitions, f"no partitions of {topic}"
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            ends = await consumer.end_offsets(partitions)
            left += sum(ends[tp] - max(committed[tp].offset, 0) if tp in committed else ends[tp] for tp in partitions)
        return left
    finally:
        await consumer.stop()
        await admin.close()


def fetches_pending() -> int:
    """Signed results the signature service has still to fetch, under way or waiting in its store (after the batch
    that named them: their verdicts reach dossier-status later, and the results' server must stay up until then).
    The demo waited for those under way only, and stopped its server while thousands waited (9,959 'fetch failed')."""
    for line in httpx.get(f"{SIGNATURE}/metrics", timeout=10).text.splitlines():
        if line.startswith("signature_fetches_pending "):
            return int(float(line.split()[1]))
    raise SystemExit("the signature service does not say how many fetches are pending: see `make logs`")


def wait(dossiers: int) -> None:
    """Until every service has read everything (the same events again in a second run, which it
    deduplicates: a count of dossiers would be reached at once), twice in a row, then the count."""
    print("Waiting for processing, signature, metrics and notifications to catch up:")
    deadline = time.monotonic() + 900
    most, quiet = 1, 0
    while quiet < 2:
        left = asyncio.run(_backlog()) + fetches_pending()
        most = max(most, left)
        progress(most - left, most, "records read")
        if time.monotonic() > deadline:
            raise SystemExit("\nthe pipeline did not catch up within 15 minutes: see `make logs`")
        quiet = quiet + 1 if left == 0 else 0
        time.sleep(2)
    print()
    if (done := counted()) != dossiers:
        more = (" (more than the demo sent: dossiers posted by hand in its communes and periods? `make reset` "
                "empties the stack)" if done > dossiers else "")
        raise SystemExit(f"the report API counts {done:,} dossiers of {dossiers:,}{more}: see `make logs`")


def report(code: str) -> dict:
    answer = httpx.get(f"{METRICS}/v1/reports/communes/{code}", params=period(SEEDS[code]), headers=as_operator(),
                       timeout=30)
    answer.raise_for_status()
    return answer.json()


def compare(replays: dict[str, PortalReplay]) -> bool:
    """The articles' figures beside the system's; True when every one holds."""
    reports = {code: report(code) for code in SEEDS}
    rows, good = [], True
    for claim in CLAIMS:
        value = claim.value(reports[claim.commune_code])
        ok = value is not None and claim.holds(value)
        good &= ok
        rows.append((claim.commune_code, claim.figure, claim.article, "—" if value is None else claim.show(value), ok))
    code, figure, article = RANK
    profile = SEEDS[code]
    card = httpx.get(f"{METRICS}/v1/reports/provinces/{commune(code).province_code}/scorecard", params=period(profile),
                     headers=as_operator(), timeout=60).json()
    [ours] = [c for c in card["communes"] if c["commune_code"] == code]
    system = f"{ours['rank']}/{ours['of']}"
    good &= system == article
    after = max(n for n, row in enumerate(rows) if row[0] == code) + 1
    rows.insert(after, (code, figure, article, f"{system} ({ours['score']:.1f} điểm)", system == article))
    for group in reversed(ours["groups"]):  # what the score is made of, as the portal computes it
        shown = f"{group['points']:.2f} / {group['measured_max']:g}" if group["measured_max"] else "không đo được"
        rows.insert(after + 1, (code, f"  nhóm {group['name']} (tối đa {group['max']})", "—", shown, True))
    after += len(ours["groups"])
    risk = httpx.get(f"{METRICS}/v1/reports/communes/{code}/at-risk", timeout=60,
                     params=period(profile), headers=as_operator()).json()
    rows.insert(after + 1, (code, "điểm có nguy cơ mất (points at risk, by the period's end)", "—",
                            f"{risk['points_at_risk']:.2f} ({risk['due_by_horizon']} hồ sơ)", True))

    width = max(len(r[1]) for r in rows)
    last = None
    for code, figure, article, system, ok in rows:
        if code != last:
            unit = commune(code)
            p = SEEDS[code]
            print(f"\n{unit.name} ({code}), {unit.province_name}: received {p.start:%d/%m}–{p.end:%d/%m/%Y}, "
                  f"as of {p.as_of:%d/%m/%Y %H:%M}")
            for line in replays[code].about() if code in replays else ["replayed as CloudEvents (/v1/events)"]:
                print(f"  {line}")
            print(f"  {'figure':<{width}}  {'article':>12}  {'system':>22}")
            last = code
        print(f"  {figure:<{width}}  {article:>12}  {system:>22}  {'✓' if ok else '✗ differs'}")
    return good


def sms_today() -> str:
    """The replayed histories are old news (not sent); a dossier received now shows the SMS path."""
    key = local_key()
    now = datetime.now(VN)
    minute = (now.hour * 60 + now.minute) % 1000
    code = f"923.14.00.H38-{now:%y%m%d}-{9000 + minute:04d}"  # one a minute
    # A number of its own (the daily limit per number holds across runs).
    received = event("dossier.received", code, now, id_=f"demo-today-{code}",
                     applicant={"name": "Lê Thị Hoa", "phone": phone_of(code), "sms_opt_in": True})
    httpx.post(f"{INTAKE}/v1/events", json=received, timeout=30,
               headers={"authorization": f"Bearer {key}", "content-type": "application/cloudevents+json"})
    print(f"\nA dossier received now ({code}), with the citizen's SMS:")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = httpx.get(f"{NOTIFICATIONS}/v1/messages", params={"dossier": code}, timeout=60,
                           headers={"authorization": f"Bearer {key}"})
        found = answer.json()["messages"] if answer.status_code == 200 else []  # 503: asked again
        if found and found[0]["status"] in ("delivered", "sent"):
            print(f"  {found[0]['status']} to {found[0]['to']}: {found[0]['text']}")
            return code
        time.sleep(1)
    print("  not sent yet: outside 07:00–21:00 messages wait for the morning (quiet hours)")
    return code


def phone_of(code: str) -> str:
    return f"0912{code[-4:]}{code[-9:-7]}"


def citizen_lookup(code: str) -> None:
    """The citizen's side: the lookup page's link (the receipt's QR code), the API with the phone's
    last 4 digits, and an SMS asking for the dossier, answered through Kannel."""
    phone = phone_of(code)
    link = lookup_link(f"{PROCESSING}/tra-cuu", (STACK / "secrets" / "dossier_lookup_secret").read_text(), code)
    print("\nThe citizen's lookup (tra cứu hồ sơ) of that dossier:")
    print(f"  page (the receipt's QR code): {link}")
    shown = httpx.get(f"{PROCESSING}/v1/lookup/{code}", params={"phone4": phone[-4:]}, timeout=30)
    print(f"  API, with the phone's last 4 digits: {PROCESSING}/v1/lookup/{code}?phone4={phone[-4:]} -> "
          + (shown.json()["state_name"] if shown.status_code == 200 else str(shown.status_code)))
    subprocess.run(["bash", str(ROOT / "deploy" / "local" / "kannel.sh"), "mo", "84" + phone[1:], "8100",
                    f"HS {code}"], check=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log = (STACK / "logs" / "kannel-fakesmsc.log").read_text(errors="replace").splitlines()
        replies = [line.split("text ", 1)[1].rstrip(">") for line in log if f"8100 84{phone[1:]} text" in line]
        if replies:
            print(f"  SMS \"HS {code}\" from the registered phone, answered: {replies[-1]}")
            return
        time.sleep(1)
    print("  the SMS reply did not come in 30 s: see .local/logs/kannel-smsbox.log")


def signed_result(code: str) -> None:
    """The live dossier's result, signed with the local demo official's key and uploaded; then a
    copy altered after signing."""
    key = local_key()
    auth = {"authorization": f"Bearer {key}"}
    pdf = sign_with_pkcs12(blank_pdf(f"Kết quả hồ sơ {code}"), STACK / "signature" / "official.p12")
    now = datetime.now(VN)
    httpx.post(f"{INTAKE}/v1/events", timeout=30, headers=auth | {"content-type": "application/cloudevents-batch+json"},
               json=[event("dossier.signature_requested", code, now, id_=f"demo-sign-{code}", document_id="KQ-1"),
                     event("dossier.signed", code, now, id_=f"demo-signed-{code}", document_id="KQ-1",
                           document_sha256=hashlib.sha256(pdf).hexdigest())])
    altered = pdf.replace(b"/MediaBox [ 0 0 595 842 ]", b"/MediaBox [ 0 0 595 843 ]", 1)
    print(f"\nIts result, signed (ký số) and verified by the signature service ({SIGNATURE}):")
    for document, body in (("KQ-1", pdf), ("KQ-1-altered", altered)):
        answer = httpx.post(f"{SIGNATURE}/v1/dossiers/{code}/documents/{document}", content=body, timeout=30,
                            headers=auth | {"content-type": "application/pdf"})
        verdict = answer.json() if answer.status_code == 200 else {"verdict": answer.status_code, "reasons": []}
        signer = next(iter(verdict.get("signatures") or []), {}).get("signer") or ""
        print(f"  {document:<13} {verdict['verdict']}"
              + (f": {'; '.join(verdict['reasons'])}" if verdict["reasons"] else f" (signed by {signer})"))


def main() -> None:
    all_events = events()
    dossiers = len({e["subject"] for e in all_events})
    plain, replays = split(all_events)
    pdf = result_pdf()
    server = serve_results(pdf)
    signed = signatures(all_events, pdf)
    post(plain + signed)
    post(feedback_events(all_events))
    post_portal(replays)
    post([e for replay in replays.values() for e in replay.beside])  # after the receipts they rate
    wait(dossiers)
    server.shutdown()
    good = compare(replays)
    code = sms_today()
    signed_result(code)
    citizen_lookup(code)
    example = next(e["subject"] for e in all_events if e["data"].get("commune_code") == "14923")
    print("\nWhere to look:")
    print("  (operators sign in to the page, and send to the report API, the key: cat .local/intake-api-key)")
    print(f"  operators:      {METRICS}/bao-cao?ma=14923&tu=01/07/2025&den=11/11/2025&luc=11/11/2025   "
          f"(ranking: {METRICS}/xep-hang?tinh=38&tu=01/07/2025&den=11/11/2025&luc=11/11/2025)")
    print(f"  report API:     {METRICS}/v1/reports/communes/14923?from=2025-07-01&to=2025-11-11   (&format=xlsx|csv)")
    print(f"  where it waits: {METRICS}/don-vi?ma=08152&tu=01/07/2025&den=30/08/2025&luc=30/08/2025   "
          "(steps overdue while the dossier is in time)")
    print(f"  scorecard:      {METRICS}/v1/reports/provinces/38/scorecard?from=2025-07-01&to=2025-11-11")
    print(f"  one dossier:    {PROCESSING}/v1/dossiers/{example}   (operators: Authorization: Bearer "
          "$(cat .local/intake-api-key))")
    print(f"  citizens:       {PROCESSING}/tra-cuu")
    print(f"  figures:        {METRICS}/metrics   (API docs: {METRICS}/docs, {INTAKE}/docs)")
    print(f"  Prometheus:     {PROMETHEUS}/graph?g0.expr=commune:dossier_on_time:ratio")
    print(f"  consoles:       {PROMETHEUS}/consoles/commune.html?commune=14923&range=1h   "
          f"(all: {PROMETHEUS}/consoles/index.html)")
    print(f"  alerts:         {ALERTMANAGER}   (officers' SMS: docs/alerts.md)")
    print(f"  SMS log:        {STACK / 'logs' / 'kannel-fakesmsc.log'}   (messages: {NOTIFICATIONS}/v1/messages?dossier=…)")
    print("  command line:   deploy/local/run.sh metrics -m services.metrics report --commune 14923 "
          "--from 2025-07-01 --to 2025-11-11 --as-of 2025-11-11T23:59:59+07:00")
    print("  stack:          make status   (logs: make logs, stop: make down, data gone: make reset)")
    if not good:
        raise SystemExit("\nSome figures differ from the articles: see above.")


if __name__ == "__main__":
    main()
