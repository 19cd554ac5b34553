"""The events the one-stop-shop system sends (docs/contract.md §1): CloudEvents 1.0, one model per type.

`parse_event` validates one JSON object into a typed event, `parse_events` a batch in one pass,
`parse_event_json` a record as stored on Kafka; a PAKN's events (`feedback.*`, `FeedbackEvent`) beside
them in `AnyEvent`, what intake takes; `EventErrors` carries what was wrong
with the field path ("data.channel") that the intake API reports.
"""

from datetime import date
from functools import lru_cache
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    NonNegativeFloat,
    PositiveFloat,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.communes import listed
from shared.instants import shared_zone

WORKING_HOURS_PER_DAY = 8
# The validation context of an event read back from where it was kept (processing's history): its
# fields are checked, not against today's reference data.
STORED_KEY = "stored"
STORED = {STORED_KEY: True}

# Mã hồ sơ (TT 01/2018 Điều 19): receiving unit V1V2V3.Z1Z2.Y1Y2.MX1X2, date YYMMDD, daily sequence.
DOSSIER_CODE_PATTERN = r"^[0-9A-Z]{3}\.[0-9A-Z]{2}\.[0-9A-Z]{2}\.[A-Z][0-9A-Z]{2}-\d{6}-\d{4}$"


def _dossier_code_date_is_real(code: str) -> str:
    yymmdd = code[-11:-5]  # after the pattern: …-YYMMDD-NNNN
    if not _real_day(yymmdd):
        raise ValueError(f"dossier code date {yymmdd} is not a real date (YYMMDD)")
    return code


@lru_cache(maxsize=4096)  # a code's day is one of few: a day's every dossier is checked once (5× faster)
def _real_day(yymmdd: str) -> bool:
    try:
        date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    except ValueError:
        return False
    return True


def _is_official_commune(code: str, info: ValidationInfo) -> str:
    """Checked for an event arriving; not for one read back from a store (`STORED`): the official list
    changes as units merge and split, and an event accepted under yesterday's list stays accepted."""
    if (info.context or {}).get(STORED_KEY):
        return code
    if not listed(code):
        raise ValueError(f"{code} is not a commune-level unit of the official list after 1/7/2025")
    return code


DossierCode = Annotated[
    str,
    StringConstraints(pattern=DOSSIER_CODE_PATTERN),
    AfterValidator(_dossier_code_date_is_real),
]
_dossier_code_adapter: TypeAdapter[str] = TypeAdapter(DossierCode)

# An instant an event gives, its tzinfo the one every datetime of its UTC offset shares (shared/instants.py):
# the fold compares and writes them, ten and two times faster than with pydantic's own tzinfo.
Instant = Annotated[AwareDatetime, AfterValidator(shared_zone)]


NOT_A_DOSSIER_CODE = "not a dossier code (TT 01/2018: 000.00.00.H00-YYMMDD-0000)"


def is_dossier_code(code: str) -> bool:
    """A well-formed TT 01/2018 code: lookups answer 400 at once for anything else."""
    try:
        _dossier_code_adapter.validate_python(code)
    except ValidationError:
        return False
    return True


CommuneCode = Annotated[str, StringConstraints(pattern=r"^\d{5}$"), AfterValidator(_is_official_commune)]
# Sector and procedure codes become metric labels: short, plain characters only.
ShortCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
OptionalText = Annotated[str, StringConstraints(max_length=2000)] | None
Channel = Literal["direct", "online", "postal"]


class _Data(BaseModel):
    # Unknown data fields are kept, not rejected (docs/contract.md §1).
    model_config = ConfigDict(extra="allow", frozen=True)


class ProcessingTime(BaseModel):
    """Thời hạn giải quyết of the procedure, in working time."""

    model_config = ConfigDict(frozen=True)
    value: PositiveFloat = Field(le=3650)
    unit: Literal["working_days", "working_hours"]

    @property
    def hours(self) -> float:
        return self.value * WORKING_HOURS_PER_DAY if self.unit == "working_days" else self.value


class Applicant(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: OptionalText = None
    phone: Annotated[str, StringConstraints(max_length=32)] | None = None
    sms_opt_in: bool = False
    # Intake publishes the name, phone and any other field sealed under the dossier's key (shared/personal.py,
    # docs/contract.md §1): on Kafka and in the stores, an applicant is `sealed` and `sms_opt_in` only.
    sealed: str | None = None


class Fee(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    amount: NonNegativeFloat  # VND


# Codes and labels of the portal's lists (a component's, a fee's, a result's): short text, any characters.
ItemCode = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Component(BaseModel):
    """One document of the dossier (thành phần hồ sơ, v1.2): where it came from."""

    model_config = ConfigDict(extra="allow", frozen=True)
    code: ItemCode
    digitized: bool = False  # số hóa
    reused: bool = False  # taken from data digitized before (tái sử dụng)
    from_personal_store: bool = False  # taken from the portal's personal data store (kho dữ liệu cá nhân)


class FeeItem(BaseModel):
    """One fee or charge of the dossier (phí, lệ phí, v1.2), in VND."""

    model_config = ConfigDict(extra="allow", frozen=True)
    code: ItemCode | None = None
    amount: NonNegativeFloat


class Received(_Data):
    commune_code: CommuneCode
    procedure_code: ShortCode
    procedure_name: OptionalText = None
    sector: ShortCode
    channel: Channel
    # Validated even when absent: an online dossier must say whether it is end-to-end (toàn trình).
    online_level: Literal["full", "partial"] | None = Field(default=None, validate_default=True)
    processing_time: ProcessingTime
    due_at: Instant | None = None  # the appointment printed on the receipt
    received_by_unit: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None  # v1.2 (NĐ 118)
    applicant: Applicant = Applicant()
    fee: Fee | None = None
    # v1.2 (docs/contract.md §10): what the dossier was filed with, counted by the QĐ 766 scorecard.
    components: list[Component] | None = None
    vneid_authenticated: bool | None = None  # the applicant's account was authenticated with VNeID
    population_data: bool | None = None  # data taken from the national population database
    fees: list[FeeItem] | None = None

    @field_validator("online_level")
    @classmethod
    def _online_level_only_online(cls, level: str | None, info: ValidationInfo) -> str | None:
        channel = info.data.get("channel")
        if channel == "online" and level is None:
            raise ValueError("online_level (full or partial) is required for an online dossier")
        if channel in ("direct", "postal") and level is not None:
            raise ValueError("online_level is only for online dossiers")
        return level


class Transferred(_Data):
    from_unit: Text
    to_unit: Text
    handler: OptionalText = None
    step_due_at: Instant | None = None  # v1.2: the step's own due (a step can be late, the dossier not)


class SupplementRequested(_Data):
    reason: Text  # what is missing, told to the citizen


class Empty(_Data):
    pass


class ObligationRequested(_Data):
    amount: NonNegativeFloat | None = None


class Withdrawn(_Data):
    reason: OptionalText = None


class Stopped(_Data):
    reason: Text


class Resolved(_Data):
    outcome: Literal["approved", "refused"] | None = None


class Returned(_Data):
    method: Channel | None = None


class SignatureRequested(_Data):
    document_id: ShortCode
    signer: OptionalText = None


class Signed(_Data):
    document_id: ShortCode
    document_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    document_url: HttpUrl | None = None


class PaymentCompleted(_Data):
    method: Literal["online", "offline"]
    amount: NonNegativeFloat
    gateway: Literal["portal", "province"] | None = None  # v1.2: the national portal's or the province's


class ResultIssued(_Data):
    """An electronic result (kết quả điện tử, v1.2): the document, its code, where to fetch it."""

    document_id: ShortCode
    code: ItemCode  # the result's number, as printed on it
    url: HttpUrl | None = None
    sent_to_personal_store: bool = False  # also put in the citizen's personal data store


class Digitized(_Data):
    scope: Literal["input", "result"]


class Rated(_Data):
    rating: Literal["very_satisfied", "satisfied", "unsatisfied"]


class ApologyIssued(_Data):
    """Phiếu xin lỗi và hẹn lại ngày trả kết quả (Mẫu 04)."""

    new_due_at: Instant
    reason: Text


class _CloudEvent(BaseModel):
    # CloudEvents extension attributes are kept.
    model_config = ConfigDict(extra="allow", frozen=True)
    specversion: Literal["1.0"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    subject: DossierCode
    time: Instant
    datacontenttype: Literal["application/json"] = "application/json"

    @model_validator(mode="after")
    def _null_data_is_no_data(self) -> Self:
        """`"data": null`, which CloudEvents allows, is the type's default data (a type with required data refuses it).
        Checked once the event is made: a validator before it made pydantic build every event's JSON as Python
        objects first (6.8 against 5.2 µs an event, bench-cpu's events, by hand on 2026-12-06)."""
        if getattr(self, "data", True) is None:
            object.__setattr__(self, "data", type(self).model_fields["data"].default)
        return self


class ReceivedEvent(_CloudEvent):
    type: Literal["dossier.received"]
    data: Received


class TransferredEvent(_CloudEvent):
    type: Literal["dossier.transferred"]
    data: Transferred


class SupplementRequestedEvent(_CloudEvent):
    type: Literal["dossier.supplement_requested"]
    data: SupplementRequested


class SupplementReceivedEvent(_CloudEvent):
    type: Literal["dossier.supplement_received"]
    data: Empty | None = Empty()


class ObligationRequestedEvent(_CloudEvent):
    type: Literal["dossier.obligation_requested"]
    data: ObligationRequested | None = ObligationRequested()


class ObligationFulfilledEvent(_CloudEvent):
    type: Literal["dossier.obligation_fulfilled"]
    data: Empty | None = Empty()


class WithdrawnEvent(_CloudEvent):
    type: Literal["dossier.withdrawn"]
    data: Withdrawn | None = Withdrawn()


class StoppedEvent(_CloudEvent):
    type: Literal["dossier.stopped"]
    data: Stopped


class ResolvedEvent(_CloudEvent):
    type: Literal["dossier.resolved"]
    data: Resolved | None = Resolved()


class ReturnedEvent(_CloudEvent):
    type: Literal["dossier.returned"]
    data: Returned | None = Returned()


class SignatureRequestedEvent(_CloudEvent):
    type: Literal["dossier.signature_requested"]
    data: SignatureRequested


class SignedEvent(_CloudEvent):
    type: Literal["dossier.signed"]
    data: Signed


class PaymentCompletedEvent(_CloudEvent):
    type: Literal["dossier.payment_completed"]
    data: PaymentCompleted


class DigitizedEvent(_CloudEvent):
    type: Literal["dossier.digitized"]
    data: Digitized


class ResultIssuedEvent(_CloudEvent):
    type: Literal["dossier.result_issued"]
    data: ResultIssued


class RatedEvent(_CloudEvent):
    type: Literal["dossier.rated"]
    data: Rated


class ApologyIssuedEvent(_CloudEvent):
    type: Literal["dossier.apology_issued"]
    data: ApologyIssued


DossierEvent = Annotated[
    ReceivedEvent
    | TransferredEvent
    | SupplementRequestedEvent
    | SupplementReceivedEvent
    | ObligationRequestedEvent
    | ObligationFulfilledEvent
    | WithdrawnEvent
    | StoppedEvent
    | ResolvedEvent
    | ReturnedEvent
    | SignatureRequestedEvent
    | SignedEvent
    | PaymentCompletedEvent
    | DigitizedEvent
    | RatedEvent
    | ApologyIssuedEvent
    | ResultIssuedEvent,
    Field(discriminator="type"),
]

EVENT_TYPES: tuple[str, ...] = tuple(
    model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for model in DossierEvent.__origin__.__args__  # type: ignore[attr-defined]
)


# -- feedback (phản ánh, kiến nghị, PAKN: docs/contract.md §10, docs/domain.md §9) -----------------------

# A PAKN's code (its `subject`): the PAKN system's own numbering, plain characters (a Kafka key, shown to operators).
FEEDBACK_CODE_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z._/-]{0,63}$"
FeedbackCode = Annotated[str, StringConstraints(pattern=FEEDBACK_CODE_PATTERN)]
UnitName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class FeedbackReceived(_Data):
    unit: UnitName  # the unit that received it (an agency's electronic code, or its name)
    commune_code: CommuneCode  # the commune of that unit
    dossier_code: DossierCode | None = None  # the dossier it is about, if any: a complaint (5.4)
    channel: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]  # e.g. portal, province, direct


class FeedbackForwarded(_Data):
    from_unit: UnitName
    to_unit: UnitName


class FeedbackRejected(_Data):
    reason: Text


class FeedbackRated(_Data):
    rating: Literal["like", "dislike"]


class _FeedbackEvent(_CloudEvent):
    subject: FeedbackCode  # type: ignore[assignment]  # a PAKN's code, not a dossier's


class FeedbackReceivedEvent(_FeedbackEvent):
    type: Literal["feedback.received"]
    data: FeedbackReceived


class FeedbackForwardedEvent(_FeedbackEvent):
    type: Literal["feedback.forwarded"]
    data: FeedbackForwarded


class FeedbackSupplementRequestedEvent(_FeedbackEvent):
    type: Literal["feedback.supplement_requested"]
    data: Empty | None = Empty()


class FeedbackSupplementReceivedEvent(_FeedbackEvent):
    type: Literal["feedback.supplement_received"]
    data: Empty | None = Empty()


class FeedbackRejectedEvent(_FeedbackEvent):
    type: Literal["feedback.rejected"]
    data: FeedbackRejected


class FeedbackAnsweredEvent(_FeedbackEvent):
    type: Literal["feedback.answered"]
    data: Empty | None = Empty()


class FeedbackPublishedEvent(_FeedbackEvent):
    type: Literal["feedback.published"]
    data: Empty | None = Empty()


class FeedbackRatedEvent(_FeedbackEvent):
    type: Literal["feedback.rated"]
    data: FeedbackRated


FeedbackEvent = Annotated[
    FeedbackReceivedEvent
    | FeedbackForwardedEvent
    | FeedbackSupplementRequestedEvent
    | FeedbackSupplementReceivedEvent
    | FeedbackRejectedEvent
    | FeedbackAnsweredEvent
    | FeedbackPublishedEvent
    | FeedbackRatedEvent,
    Field(discriminator="type"),
]
FEEDBACK_TYPES: tuple[str, ...] = tuple(
    model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for model in FeedbackEvent.__origin__.__args__  # type: ignore[attr-defined]
)

# What intake accepts and `dossier-events` carries: a dossier's events and a PAKN's (told apart by `type`).
AnyEvent = Annotated[
    DossierEvent.__origin__ | FeedbackEvent.__origin__,  # type: ignore[attr-defined]
    Field(discriminator="type"),
]


def is_feedback(event: Any) -> bool:
    """A PAKN's event (`feedback.*`), not a dossier's."""
    return event.type in FEEDBACK_TYPES


_adapter: TypeAdapter[DossierEvent] = TypeAdapter(DossierEvent)
_batch_adapter: TypeAdapter[list[AnyEvent]] = TypeAdapter(list[AnyEvent])
_feedback_adapter: TypeAdapter[FeedbackEvent] = TypeAdapter(FeedbackEvent)


class FieldError(BaseModel):
    index: int | None = None  # the event's place in a batch
    field: str
    message: str


class EventErrors(ValueError):
    """Why a JSON object is not a valid dossier event."""

    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def _field_errors(exc: ValidationError, batch: bool = False) -> list[FieldError]:
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = list(error["loc"])
        index = loc.pop(0) if batch and loc and isinstance(loc[0], int) else None
        if loc and (loc[0] in EVENT_TYPES or loc[0] in FEEDBACK_TYPES):  # the discriminated union's tag
            loc = loc[1:]
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = ["type"]
        errors.append(FieldError(index=index, field=".".join(str(p) for p in loc) or "(event)", message=error["msg"]))
    return errors


def parse_event(obj: Any) -> DossierEvent:
    """Validate one decoded JSON value as a dossier event, or raise EventErrors."""
    try:
        return _adapter.validate_python(obj)
    except ValidationError as exc:
        raise EventErrors(_field_errors(exc)) from None


def parse_events(objs: list[Any]) -> list[AnyEvent]:
    """Validate a batch of decoded JSON values (a dossier's or a PAKN's events) in one pass, or raise
    EventErrors naming each index."""
    try:
        return _batch_adapter.validate_python(objs)
    except ValidationError as exc:
        raise EventErrors(_field_errors(exc, batch=True)) from None


def parse_event_json(raw: bytes | str, stored: bool = False) -> DossierEvent:
    """Validate a JSON document (as on Kafka) as a dossier event, or raise EventErrors; one `stored`
    (accepted before) is not checked against today's reference data."""
    try:
        return _adapter.validate_json(raw, context=STORED if stored else None)
    except ValidationError as exc:
        raise EventErrors(_field_errors(exc)) from None


def parse_feedback_json(raw: bytes | str, stored: bool = False) -> FeedbackEvent:
    """Validate a JSON document (as on Kafka) as a PAKN's event, or raise EventErrors."""
    try:
        return _feedback_adapter.validate_json(raw, context=STORED if stored else None)
    except ValidationError as exc:
        raise EventErrors(_field_errors(exc)) from None
