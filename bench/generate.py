"""Realistic event histories for whole communes, calibrated on the seed articles (docs/demo.md).

`python -m bench.generate [--seed 1] [--commune 08152 ...] [--out events.jsonl]` writes them as
JSON lines; the demo and the tests call `histories` directly. Deterministic for a seed, commune by
commune: one commune generated alone is the same as in the whole set.

Each commune has a profile of exact counts (received, outcomes, channels, payments, digitization,
ratings). Every dossier gets its share (an outcome, a channel, ...), a procedure that fits it, and
events timed to produce it; then the real fold (shared.dossier) checks the dossier as of the
profile's instant and the dossier is drawn again if it missed. So the report API reproduces the
counts exactly, by construction and by check.
"""

import argparse
import random
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import orjson

from shared.calendar import WorkingCalendar
from shared.catalogue import load_catalogue
from shared.communes import commune, communes_of_province
from shared.dossier import Dossier, fold
from shared.events import parse_event

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = WorkingCalendar.load()
CATALOGUE = load_catalogue()  # deploy/dvcqg/procedures.yaml: the level each procedure is offered online at
IDS = uuid.UUID("3c0b6f0e-9a55-4b8e-8a39-2f6f4f3b7d21")


@dataclass(frozen=True)
class Procedure:
    code: str
    name: str
    sector: str  # lĩnh vực
    hours: float  # working hours
    fee: int  # VND; 0 = free


PROCEDURES = (
    Procedure("1.001193", "Đăng ký khai sinh", "HT", 8, 0),
    Procedure("1.000894", "Đăng ký kết hôn", "HT", 8, 0),
    Procedure("1.000656", "Đăng ký khai tử", "HT", 8, 0),
    Procedure("2.000635", "Cấp bản sao trích lục hộ tịch", "HT", 8, 8_000),
    Procedure("1.004873", "Cấp Giấy xác nhận tình trạng hôn nhân", "HT", 24, 0),
    Procedure("2.000815", "Chứng thực bản sao từ bản chính", "CT", 4, 2_000),
    Procedure("2.000884", "Chứng thực chữ ký trong giấy tờ, văn bản", "CT", 4, 10_000),
    Procedure("2.001035", "Chứng thực hợp đồng, giao dịch liên quan đến tài sản", "CT", 16, 50_000),
    Procedure("2.000720", "Đăng ký thành lập hộ kinh doanh", "HKD", 24, 100_000),
    Procedure("1.001776", "Thực hiện trợ cấp xã hội hằng tháng", "BTXH", 56, 0),
    Procedure("1.009994", "Cấp giấy phép xây dựng nhà ở riêng lẻ", "XD", 120, 75_000),
    Procedure("1.012756", "Đăng ký biến động quyền sử dụng đất", "DD", 80, 100_000),
    Procedure("1.012790", "Đăng ký, cấp Giấy chứng nhận quyền sử dụng đất lần đầu", "DD", 160, 150_000),
)
ENDED = ("early", "on_time", "late")
# Who decides a procedure at a commune (its departments since 1/7/2025), and the steps dated at the receipt.
RECEPTION = "Bộ phận tiếp nhận và trả kết quả"
DEPARTMENTS = {"HT": "Văn phòng HĐND và UBND", "CT": "Văn phòng HĐND và UBND", "HKD": "Phòng Kinh tế",
               "BTXH": "Phòng Văn hóa - Xã hội", "XD": "Phòng Kinh tế", "DD": "Phòng Kinh tế"}
AT_RECEIPT = ("dossier.digitized", "dossier.payment_completed")
# Vietnamese mobile prefixes (10-digit plan): Viettel, MobiFone, VinaPhone, Vietnamobile, Gmobile.
MOBILE_PREFIXES = ("086", "096", "097", "098", "032", "033", "034", "035", "036", "037", "038", "039", "090",
                   "093", "070", "076", "077", "078", "079", "088", "091", "094", "081", "082", "083", "084", "085",
                   "092", "056", "058", "059")
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Võ", "Phan", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý")
MIDDLE = ("Văn", "Thị", "Đức", "Minh", "Ngọc", "Thu", "Quang", "Hữu", "Thanh", "Xuân")
GIVEN = ("An", "Bình", "Cường", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hòa", "Hùng", "Hương", "Lan", "Linh", "Long",
         "Mai", "Nam", "Nga", "Phúc", "Quân", "Sơn", "Tâm", "Thảo", "Trang", "Tuấn", "Yến", "Đạt", "Ánh", "Thủy")


@dataclass(frozen=True)
class Profile:
    """Exact counts for a commune's cohort received in [start, end], as of `as_of`."""

    commune_code: str
    start: date
    end: date
    as_of: datetime
    received: int
    outcomes: dict[str, int]  # early, on_time, late, within_deadline, overdue, withdrawn: sum = received
    online: int
    online_full: int
    postal: int
    payments: int
    payments_online: int
    digitized: int
    ratings: dict[str, int]  # very_satisfied, satisfied, unsatisfied (of ended dossiers)
    supplements: int = 0  # ended dossiers that went through a supplement request
    obligations: int = 0  # paying dossiers that went through a financial obligation
    apologies: int = 0  # late dossiers with a (compliant) apology


@dataclass(frozen=True)
class Share:
    """What one dossier must turn out to be."""

    outcome: str
    channel: str
    online_level: str | None
    payment: str | None
    digitized: bool
    rating: str | None
    supplement: bool = False
    obligation: bool = False
    apology: bool = False


def online_level(procedure: Procedure) -> str | None:
    entry = CATALOGUE.get(procedure.code)
    return entry.online_level if entry else None


def end_of(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59), VN)


# The seed articles (docs/domain.md §5, docs/demo.md): Bá Thước, Thanh Ba, Vĩnh Tường.
SEEDS = {
    "14923": Profile(
        "14923", date(2025, 7, 1), date(2025, 11, 11), end_of(date(2025, 11, 11)), received=5932,
        outcomes={"early": 5200, "on_time": 625, "within_deadline": 106, "overdue": 1},
        online=4024, online_full=3600, postal=120, payments=2000, payments_online=1708, digitized=5929,
        ratings={"very_satisfied": 900, "satisfied": 280, "unsatisfied": 20}, supplements=150, obligations=80,
    ),
    "08152": Profile(
        "08152", date(2025, 7, 1), date(2025, 8, 30), end_of(date(2025, 8, 30)), received=1476,
        outcomes={"early": 1300, "on_time": 136, "within_deadline": 40},
        online=1476, online_full=1400, postal=0, payments=300, payments_online=270, digitized=1470,
        ratings={"very_satisfied": 300, "satisfied": 95, "unsatisfied": 5}, supplements=30, obligations=10,
    ),
    "09076": Profile(
        "09076", date(2025, 7, 1), date(2025, 12, 31), end_of(date(2025, 12, 31)), received=6000,
        outcomes={"early": 5500, "on_time": 420, "within_deadline": 80},
        online=5978, online_full=5750, postal=0, payments=1500, payments_online=1500, digitized=5997,
        ratings={"very_satisfied": 1500, "satisfied": 500}, supplements=60, obligations=40,
    ),
}
PROVINCE = "38"  # Thanh Hóa: Bá Thước ranks 17th of its 166 communes
LEADERS = 16


def province_profile(code: str, leader: bool, rng: random.Random) -> Profile:
    """A plausible Thanh Hóa commune over Bá Thước's period: the leaders score clearly above it
    (QĐ 766 approximation ~96), the others clearly below (~70-84)."""
    seed = SEEDS["14923"]
    n = rng.randint(60, 200)
    share = (lambda lo, hi: round(n * rng.uniform(lo, hi)))
    late = 0 if leader else share(0.03, 0.12)
    overdue = 0 if leader else rng.randint(0, 2)
    withdrawn = rng.randint(0, 2)
    within = rng.randint(2, 8)
    on_time = share(0.05, 0.15)
    early = n - late - overdue - withdrawn - within - on_time
    online = share(0.88, 0.97) if leader else share(0.35, 0.75)
    online_full = round(online * rng.uniform(0.93, 0.99)) if leader else round(n * rng.uniform(0.15, 0.45))
    online_full = min(online_full, online)
    payments = share(0.25, 0.4)
    ended = early + on_time + late
    rated = round(ended * rng.uniform(0.15, 0.35))
    unsatisfied = 0 if leader else round(rated * rng.uniform(0.0, 0.2))
    very = round((rated - unsatisfied) * rng.uniform(0.5, 0.8))
    return Profile(
        code, seed.start, seed.end, seed.as_of, received=n,
        outcomes={"early": early, "on_time": on_time, "late": late, "within_deadline": within, "overdue": overdue,
                  "withdrawn": withdrawn},
        online=online, online_full=online_full, postal=round((n - online) * 0.05),
        payments=payments, payments_online=round(payments * (rng.uniform(0.95, 1) if leader else rng.uniform(0.4, 0.8))),
        digitized=n - (0 if leader else round(n * rng.uniform(0, 0.08))),
        ratings={"very_satisfied": very, "satisfied": rated - unsatisfied - very, "unsatisfied": unsatisfied},
        supplements=round(ended * 0.03), obligations=round(payments * 0.1), apologies=late // 2,
    )


def leaders(seed: int = 1) -> set[str]:
    """The Thanh Hóa communes that rank above Bá Thước."""
    others = sorted(c.code for c in communes_of_province(PROVINCE) if c.code != "14923")
    return set(random.Random(f"{seed}/province").sample(others, LEADERS))


def signed_shares(seed: int = 1) -> dict[str, float]:
    """The share of resolved dossiers whose result each Thanh Hóa commune signs (ký số), verified
    valid: every one at Bá Thước ("100% văn bản được phê duyệt, ký số", its article) and at the
    leaders, fewer elsewhere."""
    top = leaders(seed)
    return {c.code: 1.0 if c.code == "14923" or c.code in top else random.Random(f"{seed}/{c.code}/signed").uniform(0.6, 0.95)
            for c in communes_of_province(PROVINCE)}


def profiles(seed: int = 1) -> dict[str, Profile]:
    """The three seed communes and the rest of Thanh Hóa."""
    others = sorted(c.code for c in communes_of_province(PROVINCE) if c.code != "14923")
    top = leaders(seed)
    result = dict(SEEDS)
    for code in others:
        result[code] = province_profile(code, code in top, random.Random(f"{seed}/{code}/profile"))
    return result


def shares(p: Profile, rng: random.Random) -> list[Share]:
    """Deal the profile's exact counts out to its dossiers."""
    outcomes = [o for o, count in p.outcomes.items() for _ in range(count)]
    assert len(outcomes) == p.received, f"{p.commune_code}: outcomes add up to {len(outcomes)}, not {p.received}"
    rng.shuffle(outcomes)
    channels = ([("online", "full")] * p.online_full + [("online", "partial")] * (p.online - p.online_full)
                + [("postal", None)] * p.postal + [("direct", None)] * (p.received - p.online - p.postal))
    rng.shuffle(channels)
    payments = ["online"] * p.payments_online + ["offline"] * (p.payments - p.payments_online)
    payments += [None] * (p.received - p.payments)
    rng.shuffle(payments)
    digitized = [True] * p.digitized + [False] * (p.received - p.digitized)
    rng.shuffle(digitized)
    ended = [i for i, o in enumerate(outcomes) if o in ENDED]
    rng.shuffle(ended)
    ratings: dict[int, str] = {}
    for rating, count in p.ratings.items():
        for _ in range(count):
            ratings[ended[len(ratings)]] = rating
    supplement = set(ended[-p.supplements:]) if p.supplements else set()
    paying = [i for i, pay in enumerate(payments) if pay and outcomes[i] in ENDED]
    obligation = set(paying[: p.obligations])
    late = [i for i, o in enumerate(outcomes) if o == "late"]
    apology = set(late[: p.apologies])
    return [Share(outcomes[i], *channels[i], payments[i], digitized[i], ratings.get(i), i in supplement,
                  i in obligation, i in apology) for i in range(p.received)]


def receiving_unit(commune_code: str) -> str:
    """The commune's centre as its dossier codes name it (TT 01/2018), e.g. 923.14.00.H38 for Bá Thước (14923):
    also its unit code in deploy/dvcqg/units.yaml."""
    c = commune(commune_code)
    assert c is not None
    return f"{c.code[2:]}.{c.code[:2]}.00.H{c.province_code}"


@dataclass
class Commune:
    """Generates one commune's dossiers, numbering them per receiving day (TT 01/2018)."""

    profile: Profile
    rng: random.Random
    source: str = ""
    unit: str = ""
    daily: dict[date, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        c = commune(self.profile.commune_code)
        assert c is not None
        self.unit = receiving_unit(c.code)
        self.source = f"urn:motcua:{c.province_code}"

    def dossier(self, share: Share) -> list[dict]:
        for _ in range(200):
            events = self._attempt(share)
            if events is not None:
                return events
        raise RuntimeError(f"no history fits {share} in {self.profile.commune_code}")

    def _attempt(self, share: Share) -> list[dict] | None:
        p, rng = self.profile, self.rng
        procedure = self._procedure(share)
        received = self._receipt(share, procedure)
        day = CAL.local(received).date()
        sequence = self.daily.get(day, 0) + 1
        code = f"{self.unit}-{day:%y%m%d}-{sequence:04d}"
        steps: list[tuple[str, datetime, dict]] = [("dossier.received", received, self._receipt_data(share, procedure))]
        at = received
        if share.digitized:
            steps.append(("dossier.digitized", received + timedelta(minutes=rng.randint(1, 20)), {"scope": "input"}))
        if share.payment and not share.obligation:
            steps.append(("dossier.payment_completed", received + timedelta(minutes=rng.randint(2, 30)),
                          {"method": share.payment, "amount": procedure.fee}))
        if share.supplement:
            at = CAL.add_working(at, timedelta(hours=rng.uniform(0.5, 3)))
            steps.append(("dossier.supplement_requested", at, {"reason": "Thiếu bản sao giấy tờ tùy thân"}))
            at = CAL.add_working(at, timedelta(hours=rng.uniform(2, 16)))
            steps.append(("dossier.supplement_received", at, {}))
        if share.obligation:
            at = CAL.add_working(at, timedelta(hours=rng.uniform(1, 4)))
            steps.append(("dossier.obligation_requested", at, {"amount": procedure.fee}))
            at = CAL.add_working(at, timedelta(hours=rng.uniform(2, 12)))
            steps.append(("dossier.payment_completed", at, {"method": share.payment, "amount": procedure.fee}))
            at += timedelta(minutes=10)
            steps.append(("dossier.obligation_fulfilled", at, {}))
        due = self._fold(code, steps).due_at
        if due is None:
            return None
        if share.outcome in ENDED:
            end = self._end(share.outcome, max(at, received), due)
            if end is None:
                return None
            if share.apology:  # the day before the due: compliant (docs/domain.md §3)
                apology_at = due - timedelta(days=1)
                if apology_at <= at:
                    return None
                steps.append(("dossier.apology_issued", apology_at,
                              {"new_due_at": (due + timedelta(days=3)).isoformat(), "reason": "Cần xác minh thêm"}))
            steps.append(("dossier.resolved", end, {"outcome": "approved"}))
            returned = end + timedelta(minutes=rng.randint(10, 240))
            steps.append(("dossier.returned", returned, {"method": "online" if share.channel == "online" else "direct"}))
            if share.rating:
                steps.append(("dossier.rated", returned + timedelta(minutes=rng.randint(1, 60)),
                              {"rating": share.rating}))
        elif share.outcome == "withdrawn":
            steps.append(("dossier.withdrawn", at + timedelta(hours=rng.uniform(0.5, 4)), {"reason": "Công dân rút hồ sơ"}))
        steps.sort(key=lambda step: step[1])
        dossier = self._fold(code, steps, p.as_of)
        if not self._fits(dossier, share):
            return None
        self.daily[day] = sequence
        events = [self._event(code, n, type_, when, data) for n, (type_, when, data) in enumerate(steps)]
        return sorted([*events, self._transfer(code, procedure, steps)], key=lambda e: e["time"])

    def _transfer(self, code: str, procedure: Procedure, steps: list[tuple[str, datetime, dict]]) -> dict:
        """The reception hands the dossier to the department that decides it, with the step's own due (a
        share of the processing time): a few minutes after the receipt, before any later step. Its own
        random draws and id, so the rest of the history is the same with or without it."""
        rng = random.Random(f"{code}/transfer")
        received = steps[0][1]
        later = [when for type_, when, _ in steps[1:] if type_ not in AT_RECEIPT]
        at = received + timedelta(minutes=rng.uniform(5, 25))
        if later and at >= min(later):
            at = received + (min(later) - received) / 2
        due = CAL.add_working(at, timedelta(hours=procedure.hours * rng.uniform(0.3, 0.8))).replace(microsecond=0)
        event = self._event(code, 0, "dossier.transferred", at, {
            "from_unit": RECEPTION, "to_unit": DEPARTMENTS[procedure.sector], "step_due_at": due.isoformat()})
        return event | {"id": str(uuid.uuid5(IDS, f"{code}/transfer"))}

    def _procedure(self, share: Share) -> Procedure:
        # At the level the catalogue offers it online, where one fits (what the portal's format says of it).
        fits = self._fitting(share, share.online_level) or self._fitting(share, None)
        weights = [8 if pr.sector in ("HT", "CT") else 2 for pr in fits]
        return self.rng.choices(fits, weights)[0]

    def _fitting(self, share: Share, level: str | None) -> list[Procedure]:
        fits = [pr for pr in PROCEDURES if (pr.fee > 0) == bool(share.payment) and level in (None, online_level(pr))]
        if share.obligation:
            fits = [pr for pr in fits if pr.sector in ("DD", "XD", "HKD")]
        if share.outcome == "early":
            fits = [pr for pr in fits if pr.hours >= 8]
        elif share.outcome == "within_deadline":
            fits = [pr for pr in fits if pr.hours >= 40] or fits
        elif share.outcome == "overdue":
            fits = [pr for pr in fits if pr.hours <= 24]
        return fits

    def _receipt(self, share: Share, procedure: Procedure) -> datetime:
        p, rng = self.profile, self.rng
        last = min(p.end, p.as_of.date())
        if share.outcome == "within_deadline":
            first = max(p.start, last - timedelta(days=int(procedure.hours // 8) // 2 + 1))
        elif share.outcome == "overdue":
            first, last = max(p.start, last - timedelta(days=30)), last - timedelta(days=7)
        else:
            first, last = p.start, last - timedelta(days=max(2, int(procedure.hours // 8) * 2))
        day = first + timedelta(days=rng.randint(0, max(0, (last - first).days)))
        while not CAL.is_working_day(day) and day < last:
            day += timedelta(days=1)
        minute = rng.randint(7 * 60 + 30, 17 * 60 + 15)  # a few after hours: the clock starts next morning
        return datetime.combine(day, time(minute // 60, minute % 60), VN)

    def _end(self, outcome: str, after: datetime, due: datetime) -> datetime | None:
        rng = self.rng
        due_day = CAL.local(due).date()
        if outcome == "early":
            end = CAL.add_working(after, timedelta(hours=rng.uniform(0.5, 6)))
            return end if CAL.local(end).date() < due_day else None
        if outcome == "on_time":
            end = due - timedelta(minutes=rng.randint(5, 180))
            return end if end > after and CAL.local(end).date() == due_day else None
        return CAL.add_working(due, timedelta(hours=rng.uniform(4, 24)))  # late

    def _receipt_data(self, share: Share, procedure: Procedure) -> dict:
        rng = self.rng
        name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
        phone = rng.choice(MOBILE_PREFIXES) + "".join(rng.choice("0123456789") for _ in range(7))
        data = {
            "commune_code": self.profile.commune_code,
            "procedure_code": procedure.code,
            "procedure_name": procedure.name,
            "sector": procedure.sector,
            "channel": share.channel,
            "processing_time": {"value": procedure.hours, "unit": "working_hours"},
            "applicant": {"name": name, "phone": phone, "sms_opt_in": rng.random() < 0.6},
        }
        if share.online_level:
            data["online_level"] = share.online_level
        if procedure.fee:
            data["fee"] = {"amount": procedure.fee}
        return data

    def _event(self, code: str, n: int, type_: str, when: datetime, data: dict) -> dict:
        return {
            "specversion": "1.0",
            "id": str(uuid.uuid5(IDS, f"{code}/{n}")),
            "source": self.source,
            "type": type_,
            "subject": code,
            "time": when.isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }

    def _fold(self, code: str, steps: list, as_of: datetime | None = None) -> Dossier | None:
        events = [parse_event(self._event(code, n, t, when, d)) for n, (t, when, d) in enumerate(steps)]
        folded = fold(events, CAL, as_of=as_of)
        return folded.dossier if not folded.rejected else None

    def _fits(self, d: Dossier | None, share: Share) -> bool:
        p = self.profile
        if d is None or not p.start <= d.received_date <= p.end:
            return False
        if share.outcome in ENDED:
            turned = d.timeliness
        elif share.outcome == "withdrawn":
            turned = "withdrawn" if d.state == "withdrawn" else None
        else:
            turned = d.open_state(p.as_of, CAL)
        return (turned, d.payment_method, d.digitized, d.rating) == (share.outcome, share.payment, share.digitized,
                                                                     share.rating)


def commune_histories(profile: Profile, seed: int = 1) -> Iterator[list[dict]]:
    """One list of events per dossier, in time order."""
    rng = random.Random(f"{seed}/{profile.commune_code}")
    generator = Commune(profile, rng)
    for share in shares(profile, rng):
        yield generator.dossier(share)


def histories(codes: list[str] | None = None, seed: int = 1) -> dict[str, list[list[dict]]]:
    """Every commune's dossiers (or those of `codes`), keyed by commune code."""
    every = profiles(seed)
    return {code: list(commune_histories(every[code], seed)) for code in (codes or list(every))}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--commune", action="append", help="only these communes (default: all)")
    parser.add_argument("--out", help="a JSON-lines file (default: standard output)")
    args = parser.parse_args(argv)
    out = open(args.out, "wb") if args.out else sys.stdout.buffer
    count = 0
    for dossiers in histories(args.commune, args.seed).values():
        for events in dossiers:
            for e in events:
                out.write(orjson.dumps(e) + b"\n")
                count += 1
    if args.out:
        out.close()
        print(f"{count} events written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
