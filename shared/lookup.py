"""The citizens' lookup of their dossier (docs/contract.md §8): the second factor a citizen has.

- the last 4 digits of the phone given at receipt;
- or a per-dossier token, printed on the receipt as a QR code and put in the receipt SMS: a keyed
  HMAC of the dossier code, so nothing extra is stored and nobody without the key can make one.
"""

import base64
import hashlib
import hmac
import re
import time
from collections import OrderedDict, deque
from typing import Any

PHONE4 = re.compile(r"^[0-9]{4}$")  # ASCII digits only: "١٢٣٤".isdigit() is true in Python
TOKEN = re.compile(r"^[a-z2-7]{16}$")


def lookup_token(secret: str, code: str) -> str:
    digest = hmac.new(secret.encode(), f"lookup|{code}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode().lower()


def lookup_link(base_url: str, secret: str, code: str) -> str:
    """The page's address with the code and the token: what the QR code and the SMS carry."""
    return f"{base_url}?ma={code}&t={lookup_token(secret, code)}"


def last4(phone: str | None) -> str | None:
    digits = re.sub(r"[^0-9]", "", phone or "")
    return digits[-4:] if len(digits) >= 4 else None


# What citizens read: the states and steps of a dossier in Vietnamese.
STATES = {
    "processing": "Đang giải quyết",
    "awaiting_supplement": "Cần bổ sung hồ sơ",
    "paused": "Chờ thực hiện nghĩa vụ tài chính",
    "withdrawn": "Đã rút hồ sơ",
    "stopped": "Dừng giải quyết",
    "resolved": "Đã có kết quả",
    "returned": "Đã trả kết quả",
}
OPEN_STATES = {
    "within_deadline": "Trong hạn",
    "due_soon": "Sắp đến hạn trả kết quả",
    "overdue": "Quá hạn",
    "awaiting_supplement": "Tạm dừng, chờ bổ sung",
    "paused": "Tạm dừng, chờ nghĩa vụ tài chính",
}
STEPS = {
    "dossier.received": "Tiếp nhận hồ sơ",
    "dossier.transferred": "Chuyển bộ phận giải quyết",
    "dossier.supplement_requested": "Yêu cầu bổ sung hồ sơ",
    "dossier.supplement_received": "Đã nhận hồ sơ bổ sung",
    "dossier.obligation_requested": "Yêu cầu thực hiện nghĩa vụ tài chính",
    "dossier.obligation_fulfilled": "Đã thực hiện nghĩa vụ tài chính",
    "dossier.withdrawn": "Công dân rút hồ sơ",
    "dossier.stopped": "Dừng giải quyết",
    "dossier.resolved": "Đã có kết quả",
    "dossier.returned": "Đã trả kết quả",
    "dossier.signature_requested": "Trình ký kết quả",
    "dossier.signed": "Đã ký số kết quả",
    "dossier.payment_completed": "Đã thanh toán phí, lệ phí",
    "dossier.digitized": "Số hóa hồ sơ",
    "dossier.rated": "Đánh giá mức độ hài lòng",
    "dossier.apology_issued": "Thư xin lỗi, hẹn lại ngày trả",
}


class Windows:
    """A sliding window per key: at most `limit` events in `seconds`, in memory (per replica: a bound
    on guessing and on replies, not an accounting).

    Keys are kept in the order of their last event, so each `add` forgets, from the front, every key
    whose events are all past: what it holds is the keys active within the window, however many
    distinct keys came before (a flood of addresses or numbers, each seen once)."""

    def __init__(self, limit: int, seconds: float, clock: Any = time.monotonic):
        self.limit, self.seconds = limit, seconds
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._clock = clock

    def wait(self, key: str) -> float | None:
        """The seconds until `key` may have one more event; None if it may now."""
        window = self._seen.get(key)
        while window and window[0] <= self._clock() - self.seconds:
            window.popleft()
        if not window:
            self._seen.pop(key, None)  # what is forgotten takes no memory
            return None if self.limit > 0 else self.seconds
        return window[0] + self.seconds - self._clock() if len(window) >= self.limit else None

    def add(self, key: str) -> None:
        now = self._clock()
        self._seen.setdefault(key, deque(maxlen=max(self.limit, 1))).append(now)  # what `wait` reads, no more
        self._seen.move_to_end(key)
        while self._seen:
            oldest = next(iter(self._seen))
            if self._seen[oldest][-1] > now - self.seconds:
                break
            del self._seen[oldest]

    def __len__(self) -> int:
        """The keys it holds."""
        return len(self._seen)
