"""What the seed articles say, figure by figure, and how to read each from the report API.

`docs/demo.md` explains the readings (which report field, which rounding). The demo prints each
claim beside the system's figure; the tests require every claim of the communes they replay.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.generate import SEEDS, Profile

Report = dict[str, Any]


@dataclass(frozen=True)
class Claim:
    commune_code: str
    figure: str  # what the article measures, in its words
    article: str  # as the article prints it
    value: Callable[[Report], float | None]
    holds: Callable[[float], bool]
    show: Callable[[float], str]


def count(n: int) -> tuple[Callable[[float], bool], Callable[[float], str]]:
    return (lambda v: v == n), (lambda v: f"{v:,.0f}".replace(",", "."))


def percent(text: str) -> tuple[Callable[[float], bool], Callable[[float], str]]:
    """A rate the article prints with `decimals` decimals: the system's rate rounded or truncated
    to that precision gives the article's figure (articles do both, see docs/demo.md)."""
    decimals = len(text.split(",")[1]) if "," in text else 0
    target = float(text.replace(",", "."))
    scale = 10**decimals

    def holds(v: float) -> bool:
        shown = 100 * v * scale
        return math.isclose(math.floor(shown + 0.5 + 1e-9), target * scale) or \
            math.isclose(math.floor(shown + 1e-9), target * scale)

    return holds, (lambda v: f"{100 * v:.{decimals + 2}f} %".replace(".", ","))


def above(threshold: float) -> tuple[Callable[[float], bool], Callable[[float], str]]:
    return (lambda v: v > threshold), (lambda v: f"{100 * v:.2f} %".replace(".", ","))


def ended(r: Report) -> int:
    return sum(r["completed"].values())


CLAIMS = [
    Claim("14923", "tiếp nhận (received)", "5.932", lambda r: r["received"], *count(5932)),
    Claim("14923", "giải quyết trước hạn và đúng hạn (early + on time)", "5.825",
          lambda r: r["completed"]["early"] + r["completed"]["on_time"], *count(5825)),
    Claim("14923", "đang giải quyết trong hạn (open, in time)", "106",
          lambda r: r["open"]["within_deadline"] + r["open"]["due_soon"], *count(106)),
    Claim("14923", "quá hạn (overdue)", "1", lambda r: r["open"]["overdue"], *count(1)),
    Claim("14923", "tỷ lệ hồ sơ trực tuyến (online)", "67,83%", lambda r: r["rates"]["online"], *percent("67,83")),
    Claim("14923", "tỷ lệ thanh toán trực tuyến (online payment)", "85,4%", lambda r: r["rates"]["online_payment"],
          *percent("85,4")),
    Claim("14923", "tỷ lệ số hóa hồ sơ (digitization)", "99,95%", lambda r: r["rates"]["digitization"],
          *percent("99,95")),
    Claim("14923", "tiến độ 766 (on-time rate, docs/domain.md §5)", "5.931/5.932", lambda r: r["rates"]["on_time"],
          lambda v: math.isclose(v, 5931 / 5932), lambda v: f"{100 * v:.4f} %".replace(".", ",")),
    Claim("08152", "tiếp nhận (received)", "1476", lambda r: r["received"], *count(1476)),
    Claim("08152", "hồ sơ trực tuyến (online)", "1476 = 100%", lambda r: r["by_channel"]["online"], *count(1476)),
    Claim("08152", "đã giải quyết (ended)", "1436", ended, *count(1436)),
    Claim("08152", "đang giải quyết trong hạn (open, in time)", "40",
          lambda r: r["open"]["within_deadline"] + r["open"]["due_soon"], *count(40)),
    Claim("09076", "tỷ lệ hồ sơ nộp trực tuyến (online)", "99,63%", lambda r: r["rates"]["online"],
          *percent("99,63")),
    Claim("09076", "trong đó trực tuyến toàn trình (end-to-end, of online)", "trên 95%",
          lambda r: r["online_full"] / r["by_channel"]["online"] if r["by_channel"]["online"] else None,
          *above(0.95)),
    Claim("09076", "tỷ lệ số hóa (digitization)", "99,95%", lambda r: r["rates"]["digitization"], *percent("99,95")),
    Claim("09076", "tỷ lệ thanh toán trực tuyến (online payment)", "100%", lambda r: r["rates"]["online_payment"],
          *percent("100")),
    Claim("09076", "mức độ hài lòng (satisfaction)", "100%", lambda r: r["rates"]["satisfaction"], *percent("100")),
]
RANK = ("14923", "xếp hạng trong tỉnh (QĐ 766 scorecard rank)", "17/166")


def period(profile: Profile) -> dict[str, str]:
    """The report API's query for a seed commune's article."""
    return {"from": profile.start.isoformat(), "to": profile.end.isoformat(), "as_of": profile.as_of.isoformat()}


def seed_periods() -> dict[str, dict[str, str]]:
    return {code: period(p) for code, p in SEEDS.items()}
