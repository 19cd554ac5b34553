"""A PAKN's way without I/O (docs/domain.md §9): processing's integration (duplicates, dead letters with
their reason, foreign sources, the record announced once), the metrics service's book (the latest record
kept, 5.2/5.3 through `Figures.feedback`, the operators' lists) and the page's view. The same against the
real stack is tests/integration/test_feedback.py."""

import asyncio
from datetime import date, datetime
from zoneinfo import ZoneInfo

import orjson
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter

from services.metrics.feedback import FeedbackBook
from services.metrics.feedback_views import answer_of, feedback_table, page
from services.metrics.figures import Figures
from services.processing.feedback import FeedbackMetrics, FeedbackProcessor, StoredFeedback, integrate
from services.processing.processor import ProcessingMetrics
from shared.calendar import WorkingCalendar
from shared.communes import commune
from shared.consumer_app import Record
from shared.contracts import FeedbackChanged, StatusRecord
from shared.events import parse_events
from shared.feedback import FeedbackCounts

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = WorkingCalendar.load()
RECORDS: TypeAdapter = TypeAdapter(StatusRecord)
UNITS = {"152.08.00.H25": "08152", "923.14.00.H38": "14923"}
DOSSIER = "923.14.00.H38-250701-0001"


def ev(id_: str, type_: str, time: str, source: str = "urn:pakn:38", code: str = "PAKN-1", **data) -> tuple:
    obj = {"specversion": "1.0", "id": id_, "source": source, "type": type_, "subject": code,
           "time": f"{time}:00+07:00", "data": data}
    if type_ == "feedback.rated" and source == "urn:portal":
        obj["intakecontributor"] = True  # as intake marks a contributor's step
    return parse_events([obj])[0], orjson.dumps(obj)


RECEIVED = ev("1", "feedback.received", "2025-07-01T09:00", unit="923.14.00.H38", commune_code="14923",
              dossier_code=DOSSIER, channel="portal")


def run(*batches: list[tuple], code: str = "PAKN-1") -> tuple[StoredFeedback, list]:
    stored, results = StoredFeedback(code), []
    for batch in batches:
        result = integrate(stored, batch, UNITS.get, CAL)
        results.append(result)
        stored = result.stored if result.link is None else StoredFeedback.of_links(code, [
            *([{"events": stored.events, "dead_lettered": stored.dead_lettered, "outbox": [],
                "announced": stored.announced}] if stored.events else []), result.link])
    return stored, results


def records(stored: StoredFeedback) -> list[FeedbackChanged]:
    return [RECORDS.validate_json(o.value) for o in stored.outbox if o.kind == "status"]


def test_a_receipt_is_announced_with_its_holder_and_due():
    stored, [result] = run([RECEIVED])
    [record] = records(stored)
    assert (result.applied, record.subject, record.data.commune_code, record.data.state, record.data.due_at) == (
        1, "PAKN-1", "14923", "open", datetime(2025, 7, 22, 9, tzinfo=VN))


def test_duplicates_change_nothing_and_announce_nothing_new():
    stored, results = run([RECEIVED], [RECEIVED, RECEIVED])
    assert (results[1].link, results[1].duplicates) == (None, 2)
    assert len(stored.events) == 1


def test_what_cannot_apply_and_a_foreign_source_are_dead_lettered_with_their_reason():
    published = ev("2", "feedback.published", "2025-07-02T09:00")
    foreign = ev("3", "feedback.answered", "2025-07-02T10:00", source="urn:other")
    stored, [result] = run([RECEIVED, published, foreign])
    reasons = sorted(o.reason for o in stored.outbox if o.kind == "dlq")
    assert reasons == ["foreign source: urn:other did not receive the PAKN (urn:pakn:38 did)",
                       "published before it was answered"]
    assert (result.applied, result.dead_lettered, result.foreign) == (1, 2, 1)
    # once dead-lettered, not again; a step that changes nothing announced is not announced again
    stored2, [_, again] = run([RECEIVED, published, foreign], [ev("4", "feedback.rated", "2025-07-03T09:00",
                                                                  rating="like")])
    assert [o.reason for o in again.stored.outbox] == ["rated before it was answered"]


def test_a_foreign_sources_pakn_events_are_counted_where_the_foreign_source_alert_reads():
    """A system that claimed a PAKN code first (its receipt arrived first) makes the real receiver's
    events foreign: they are dead-lettered, and `processing_foreign_events_total` (alerted) counts them."""
    registry = CollectorRegistry()
    metrics = ProcessingMetrics(registry)
    sent: list = []

    async def publish(outgoing: list) -> None:
        sent.extend(outgoing)

    class Store:  # one PAKN's chain in memory
        links: list = []

        async def read(self, code: str) -> StoredFeedback:
            return StoredFeedback.of_links(code, self.links)

        async def write(self, stored: StoredFeedback, link: dict) -> bool:
            self.links.append(link)
            return True

    squatter = ev("0", "feedback.received", "2025-07-01T08:00", source="urn:squatter", unit="923.14.00.H38",
                  commune_code="14923", channel="portal")
    processor = FeedbackProcessor(Store(), CAL, lambda: UNITS.get, publish, FeedbackMetrics(registry, metrics.foreign))
    records_ = [Record(event, raw, b"PAKN-1", "t", 0, n, 0) for n, (event, raw) in enumerate([squatter, RECEIVED])]
    asyncio.run(processor.handle(records_))
    assert [o.reason for o in sent if o.kind == "dlq"] == [
        "foreign source: urn:pakn:38 did not receive the PAKN (urn:squatter did)"]
    assert registry.get_sample_value("processing_foreign_events_total") == 1


def test_a_contributors_rating_counts_and_a_forwarding_moves_the_pakn():
    stored, _ = run([RECEIVED, ev("2", "feedback.forwarded", "2025-07-02T09:00", from_unit="923.14.00.H38",
                                  to_unit="152.08.00.H25"),
                     ev("3", "feedback.answered", "2025-07-03T09:00"),
                     ev("4", "feedback.rated", "2025-07-04T09:00", source="urn:portal", rating="dislike")])
    [record] = records(stored)
    assert (record.data.commune_code, record.data.unit, record.data.state, len(record.data.steps)) == (
        "08152", "152.08.00.H25", "answered", 4)


def test_events_waiting_for_their_receipt_are_kept_and_folded_when_it_comes():
    answered = ev("2", "feedback.answered", "2025-07-03T09:00")
    stored, results = run([answered], [RECEIVED])
    assert (results[0].waiting, records(results[0].stored)) == (1, [])
    assert records(stored)[0].data.state == "answered"


# -- the metrics service's book -------------------------------------------------------------------

def announced(*events: tuple, code: str = "PAKN-1"):
    return records(run(list(events), code=code)[0])[-1].data


def test_the_book_keeps_the_record_with_the_most_events():
    book = FeedbackBook()
    newer = announced(RECEIVED, ev("2", "feedback.answered", "2025-07-03T09:00"))
    assert book.apply(newer) and not book.apply(announced(RECEIVED))
    assert book.kept["PAKN-1"].state == "answered"


def test_figures_answer_the_scorecards_feedback_query_from_the_book_also_with_the_archive():
    figures = Figures(CAL)
    figures.feedback_book.apply(announced(RECEIVED, ev("2", "feedback.answered", "2025-07-03T09:00")))
    figures.feedback_book.apply(announced(
        ev("1", "feedback.received", "2025-07-10T09:00", code="PAKN-2", unit="923.14.00.H38", commune_code="14923",
           dossier_code=DOSSIER, channel="portal"), code="PAKN-2"))
    expected = FeedbackCounts(on_time=2, taken=2, satisfied=1, first_received=2, complained=frozenset({DOSSIER}))
    as_of = datetime(2025, 7, 20, tzinfo=VN)
    assert figures.feedback("14923", date(2025, 7, 1), date(2025, 7, 31), as_of) == expected
    assert figures.including([]).feedback("14923", date(2025, 7, 1), date(2025, 7, 31), as_of) == expected
    assert figures.feedback("08152", date(2025, 7, 1), date(2025, 7, 31), as_of) == FeedbackCounts()


def test_pakn_ended_before_an_instant_leave_the_book_and_read_back_count_as_before():
    """Security review: the book kept every PAKN for ever. Those ended (published, rejected) before the
    horizon leave it, as dossiers do; a report reaching before the horizon reads them back."""
    figures = Figures(CAL)
    ended = announced(RECEIVED, ev("2", "feedback.answered", "2025-07-03T09:00"),
                      ev("3", "feedback.published", "2025-07-04T09:00"))
    still_open = announced(ev("1", "feedback.received", "2025-07-10T09:00", code="PAKN-2", unit="923.14.00.H38",
                              commune_code="14923", dossier_code=DOSSIER, channel="portal"), code="PAKN-2")
    answered = announced(ev("1", "feedback.received", "2025-07-02T09:00", code="PAKN-3", unit="923.14.00.H38",
                            commune_code="14923", channel="portal"),
                         ev("2", "feedback.answered", "2025-07-03T09:00", code="PAKN-3"), code="PAKN-3")
    for data in (ended, still_open, answered):
        figures.feedback_book.apply(data)
    period = (date(2025, 7, 1), date(2025, 7, 31), datetime(2025, 7, 20, tzinfo=VN))
    before = figures.feedback("14923", *period)
    gone = figures.feedback_book.ended_before(datetime(2025, 10, 1, tzinfo=VN))
    assert [d.feedback_code for d in gone] == ["PAKN-1"]  # answered but not published: not ended
    assert figures.feedback_book.ended_before(datetime(2025, 7, 4, 9, tzinfo=VN)) == []  # ended at 09:00
    figures.feedback_book.forget({d.feedback_code for d in gone})
    assert sorted(figures.feedback_book.kept) == ["PAKN-2", "PAKN-3"]
    assert figures.feedback("14923", *period) != before
    assert figures.including([], gone).feedback("14923", *period) == before
    assert figures.including([], gone + [ended]).feedback("14923", *period) == before  # read twice: once
    assert sorted(figures.feedback_book.kept) == ["PAKN-2", "PAKN-3"]  # the view left the book as it was


def test_the_operators_lists_hold_the_open_with_their_due_and_the_late():
    book = FeedbackBook()
    book.apply(announced(RECEIVED))  # due 22/7 09:00
    book.apply(announced(ev("1", "feedback.received", "2025-07-01T09:00", code="PAKN-2", unit="923.14.00.H38",
                            commune_code="14923", channel="direct"),
                         ev("2", "feedback.rejected", "2025-07-04T09:00", code="PAKN-2", reason="không thuộc thẩm quyền"),
                         code="PAKN-2"))  # rejected after its 2 working days
    lists = book.listing("14923", date(2025, 7, 1), date(2025, 7, 31), datetime(2025, 7, 23, tzinfo=VN), CAL)
    assert [(r["feedback_code"], r["due_at"], r["late"]) for r in lists["open"]] == [
        ("PAKN-1", "2025-07-22T09:00:00+07:00", True)]
    # the late, each with the limit it missed: PAKN-2 its 2 working days to reject
    assert [(r["feedback_code"], r["due_at"], r["handled_at"]) for r in lists["late"]] == [
        ("PAKN-2", "2025-07-03T09:00:00+07:00", "2025-07-04T09:00:00+07:00"),
        ("PAKN-1", "2025-07-22T09:00:00+07:00", None)]
    before = book.listing("14923", date(2025, 7, 1), date(2025, 7, 31), datetime(2025, 7, 10, tzinfo=VN), CAL)
    assert [r["late"] for r in before["open"]] == [False] and [r["feedback_code"] for r in before["late"]] == ["PAKN-2"]
    assert "không thuộc" not in orjson.dumps(lists).decode()  # a rejection's reason never leaves processing


def test_the_view_and_the_table_escape_what_the_events_wrote():
    book = FeedbackBook()
    book.apply(announced(ev("1", "feedback.received", "2025-07-01T09:00", unit="<b>Tổ</b>", commune_code="14923",
                            channel="direct")))
    instant = datetime(2025, 7, 23, tzinfo=VN)
    counts = Figures(CAL).feedback("14923", date(2025, 7, 1), date(2025, 7, 31), instant)
    answer = answer_of("14923", date(2025, 7, 1), date(2025, 7, 31), instant, counts,
                       book.listing("14923", date(2025, 7, 1), date(2025, 7, 31), instant, CAL))
    html = page(commune("14923"), {"ma": "14923", "tu": "01/07/2025", "den": "31/07/2025", "luc": "23/07/2025"},
                answer)
    assert "<b>Tổ</b>" not in html and "&lt;b&gt;Tổ&lt;/b&gt;" in html and 'id="bang-pakn-mo"' in html
    assert "Quá hạn" in html and "22/07/2025 09:00" in html
    table = feedback_table(answer)
    assert table.rows[0][:3] == ["Đang mở", "PAKN-1", "<b>Tổ</b>"] and table.filename.startswith("phan-anh-14923")


def test_a_pakn_keeps_at_most_its_cap_of_events_and_dead_letters_the_rest_unstored():
    """Security review: any key could append events to a PAKN without end (each batch re-parsed all of
    them, its record outgrew Kafka's limit); now the dossiers' cap holds for PAKN too."""
    ratings = [ev(f"r{n}", "feedback.rated", "2025-07-02T09:00", rating="like") for n in range(8)]
    stored, results = StoredFeedback("PAKN-1"), []
    answered = ev("2", "feedback.answered", "2025-07-02T08:00")
    for batch in ([RECEIVED, answered], ratings):
        result = integrate(stored, batch, UNITS.get, CAL, max_events=5)
        stored = StoredFeedback.of_links("PAKN-1", [*([{"events": stored.events, "dead_lettered": stored.dead_lettered,
                                                        "outbox": [], "announced": stored.announced}]
                                                      if stored.events else []), result.link])
        results.append(result)
    assert len(stored.events) == 5
    over = [o for o in results[-1].stored.outbox if o.kind == "dlq"]
    assert len(over) == 5 and {o.reason for o in over} == {"PAKN over 5 events"}
    assert records(stored)[-1].data.events == 5
    again = integrate(stored, ratings[-2:], UNITS.get, CAL, max_events=5)  # sent again: refused again, not stored
    assert len(again.stored.events) == 5 and {o.reason for o in again.stored.outbox if o.kind == "dlq"} == {
        "PAKN over 5 events"}
