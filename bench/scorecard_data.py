"""What the QĐ 766 scorecard counts beyond the articles' figures (docs/domain.md §6, §9), for the demo's
communes: the v1.2 receipt fields (components digitized, reused, from the personal data store; VNeID;
fees), electronic results (`dossier.result_issued`), the payment gateway, and feedback (PAKN).

The articles quote none of these: the shares are made up, plausible, and ordered as the ranking the
articles quote needs (the leaders above Bá Thước, Bá Thước above the others, docs/demo.md). Each draw
comes from its own seeded generator (per dossier code, per PAKN), so the article figures the dossiers
were drawn for do not move: these fields change no state, due or timeliness.
"""

import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from bench.generate import CAL, IDS, VN, leaders, receiving_unit, signed_shares
from shared.communes import commune

BA_THUOC = "14923"


@dataclass(frozen=True)
class Shares:
    """A commune's made-up shares of the v1.2 facts."""

    reused: float  # dossiers with a component reused from digitized data (4.3)
    personal_store: float  # with a component from the personal data store (4.4)
    vneid: float  # with a VNeID-authenticated account (4.5)
    feedback_on_time: float  # PAKN answered within 15 working days (5.2)
    feedback_liked: float  # rated PAKN liked (5.3)


def shares_of(commune_code: str, seed: int = 1) -> Shares:
    if commune_code in leaders(seed):
        return Shares(reused=0.9, personal_store=0.6, vneid=0.9, feedback_on_time=1.0, feedback_liked=1.0)
    if commune_code == BA_THUOC:
        return Shares(reused=0.7, personal_store=0.45, vneid=0.8, feedback_on_time=0.9, feedback_liked=0.85)
    rng = random.Random(f"{seed}/{commune_code}/v1.2")
    return Shares(reused=rng.uniform(0.2, 0.5), personal_store=rng.uniform(0.1, 0.3), vneid=rng.uniform(0.3, 0.6),
                  feedback_on_time=rng.uniform(0.5, 0.8), feedback_liked=rng.uniform(0.5, 0.7))


def enriched(events: list[dict], seed: int = 1) -> list[dict]:
    """A dossier's events with the v1.2 facts: its receipt's components, VNeID and fees; an electronic
    result issued for a result the demo signs (bench/demo.py `signatures`, the same draw); the gateway
    of an online payment."""
    code, receipt = events[0]["subject"], events[0]["data"]
    commune_code = receipt["commune_code"]
    rng, shares = random.Random(f"{seed}/{code}/v1.2"), shares_of(commune_code, seed)
    digitized = any(e["type"] == "dossier.digitized" for e in events)
    receipt = receipt | {
        "components": [{"code": "TP1", "digitized": digitized, "reused": rng.random() < shares.reused,
                        "from_personal_store": rng.random() < shares.personal_store}],
        "vneid_authenticated": rng.random() < shares.vneid,
    }
    if "fee" in receipt:
        receipt["fees"] = [{"code": "LEPHI", "amount": receipt["fee"]["amount"]}]
    out = [events[0] | {"data": receipt}]
    signed = signed_shares(seed).get(commune_code, 0.0)
    for e in events[1:]:
        if e["type"] == "dossier.payment_completed" and e["data"]["method"] == "online":
            e = e | {"data": e["data"] | {"gateway": "portal" if rng.random() < 0.7 else "province"}}
        out.append(e)
        if e["type"] == "dossier.resolved" and random.Random(f"{seed}/{code}").random() < signed:
            out.append(_result(e, rng.random() < shares.personal_store))
    return out


def _result(resolved: dict, to_personal_store: bool) -> dict:
    """The electronic result, issued with the resolution (kết quả điện tử, its link)."""
    code = resolved["subject"]
    return resolved | {
        "id": str(uuid.uuid5(IDS, f"{code}/result")), "type": "dossier.result_issued",
        "data": {"document_id": "KQ-1", "code": f"{code[-4:]}/KQ",
                 "url": f"https://dichvucong.example.gov.vn/ket-qua/{code}/KQ-1.pdf",
                 "sent_to_personal_store": to_personal_store}}


def feedback(commune_code: str, start: date, end: date, dossier_codes: list[str], seed: int = 1) -> list[dict]:
    """A commune's PAKN over a period, about one for 150 dossiers (at least two): received at its centre,
    answered within 15 working days or later, published a working day after, some rated, one in five
    about one of its dossiers (a complaint, for 5.4). The last ones may still be open at the period's end."""
    shares, rng = shares_of(commune_code, seed), random.Random(f"{seed}/{commune_code}/pakn")
    unit = receiving_unit(commune_code)
    place = commune(commune_code)
    assert place is not None
    source = f"urn:motcua:{place.province_code}"  # the province's one-stop system, as for its dossiers
    events: list[dict] = []
    days = (end - start).days
    for n in range(max(2, len(dossier_codes) // 150)):
        code = f"PAKN-{commune_code}-{n + 1:04d}"
        received = CAL.start(datetime.combine(start + timedelta(days=rng.randint(0, days)), time(9), VN)
                             + timedelta(minutes=rng.randint(0, 420)))
        data = {"unit": unit, "commune_code": commune_code, "channel": "portal"}
        if dossier_codes and rng.random() < 0.2:
            data["dossier_code"] = rng.choice(dossier_codes)
        steps = [("feedback.received", received, data)]
        working_days = rng.uniform(2, 12) if rng.random() < shares.feedback_on_time else rng.uniform(16, 25)
        answered = CAL.add_working(received, timedelta(hours=8 * working_days))
        if answered <= CAL.end_of_day(end):
            published = CAL.add_working(answered, timedelta(hours=8))
            steps += [("feedback.answered", answered, {}), ("feedback.published", published, {})]
            if rng.random() < 0.5:
                liked = rng.random() < shares.feedback_liked
                steps.append(("feedback.rated", published + timedelta(hours=rng.randint(1, 48)),
                              {"rating": "like" if liked else "dislike"}))
        events += [_feedback_event(code, i, type_, at, payload, source) for i, (type_, at, payload) in enumerate(steps)]
    return events


def _feedback_event(code: str, n: int, type_: str, at: datetime, data: dict, source: str) -> dict:
    return {"specversion": "1.0", "id": str(uuid.uuid5(IDS, f"{code}/{n}")), "source": source,
            "type": type_, "subject": code, "time": at.isoformat(), "datacontenttype": "application/json",
            "data": data}
