"""The CloudEvents HTTP binding's binary content mode (docs/contract.md §1.1): the event's attributes in
`ce-*` headers, its `datacontenttype` in `Content-Type`, its `data` as the body; what the official SDKs,
Knative and Dapr send. `binary_event` turns such a request into the JSON object that the structured
mode would have carried, so that both take one path after it: validation, scopes, `_as_recorded`.
"""

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

from shared.events import EventErrors, FieldError

PREFIX = "ce-"
# CloudEvents' required attributes, then the contract's (docs/contract.md §1).
REQUIRED = ("specversion", "id", "source", "type", "subject", "time")
# In binary mode these are not headers: `Content-Type` is the datacontenttype, the body is the data.
NOT_HEADERS = {"datacontenttype": "Content-Type is the datacontenttype in binary mode",
               "data": "the body is the data in binary mode"}
ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]+$")  # CloudEvents 1.0: lower-case ASCII letters and digits
NO_DATA: Any = object()  # an empty body: an event without data


def is_binary(header_names: Iterable[str]) -> bool:
    """Whether a request carries CloudEvents attributes as headers (any `ce-*` header)."""
    return any(name.lower().startswith(PREFIX) for name in header_names)


def header_value(raw: str) -> str:
    """An attribute's value from its header (HTTP binding §3.1.3.2): a double-quoted string unescaped
    first, then one round of percent-decoding, into UTF-8 strictly (an overlong `%C0%A0` is refused).
    `raw` is the header as the server read it (Latin-1), so raw UTF-8 from older SDKs reads as UTF-8."""
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = _unquoted(raw[1:-1])
    try:
        return unquote_to_bytes(raw.encode("latin-1")).decode("utf-8")
    except UnicodeError:
        raise ValueError("not UTF-8 once percent-decoded") from None


def _unquoted(inner: str) -> str:
    """The content of an RFC 7230 quoted-string: `\\x` is `x`; a bare `"` or a final `\\` is malformed."""
    out, escaped = [], False
    for char in inner:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            raise ValueError("a double-quoted value with an unescaped double quote inside")
        else:
            out.append(char)
    if escaped:
        raise ValueError("a double-quoted value ending in a backslash")
    return "".join(out)


def binary_event(headers: Iterable[tuple[str, str]], content_type: str, data: Any = NO_DATA) -> dict[str, Any]:
    """The structured-mode JSON object of a binary-mode request: `headers` as (name, value) pairs, every
    `ce-*` one an attribute (extensions too); `content_type` the media type ("" when absent, the event then
    has no datacontenttype, as its structured form would not); `data` the decoded body. EventErrors names
    each attribute that is missing, sent twice, misnamed or undecodable: nothing is guessed."""
    attributes: dict[str, str] = {}
    errors: list[FieldError] = []

    def refuse(name: str, message: str) -> None:
        errors.append(FieldError(index=0, field=name, message=message))

    for header, raw in headers:
        header = header.lower()
        if not header.startswith(PREFIX):
            continue
        name = header.removeprefix(PREFIX)
        if name in NOT_HEADERS:
            refuse(name, f"the header {header} must not be sent: {NOT_HEADERS[name]}")
        elif not ATTRIBUTE_NAME.fullmatch(name):
            refuse(name or header, f"the header {header} names no CloudEvents attribute (lower-case letters "
                                   "and digits after ce-)")
        elif name in attributes:
            refuse(name, f"the header {header} is sent more than once")
        else:
            try:
                attributes[name] = header_value(raw)
            except ValueError as exc:
                refuse(name, f"the header {header} is {exc} (percent-encode it as UTF-8: CloudEvents HTTP "
                             "binding §3.1.3.2)")
    for name in REQUIRED:
        if name not in attributes and not any(e.field == name for e in errors):
            refuse(name, f"missing: binary mode needs the header {PREFIX}{name}")
    if errors:
        raise EventErrors(errors)

    event: dict[str, Any] = {name: attributes.pop(name) for name in REQUIRED}
    if content_type:
        event["datacontenttype"] = content_type
    event |= attributes
    if data is not NO_DATA:
        event["data"] = data
    return event
