"""Feedback (phản ánh, kiến nghị, PAKN) as the QĐ 766 scorecard counts it (docs/domain.md §9).

`FeedbackCounts` is what a commune's PAKN give sub-indicators 5.2 and 5.3, and the dossiers they name
(a complaint, for 5.4). The metrics service's report queries answer it per commune and period.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FeedbackCounts:
    """A commune's PAKN in a period, as of an instant (docs/domain.md §9)."""

    on_time: int = 0  # 5.2: handled on time, or open within 15 working days at the period's end
    taken: int = 0  # 5.2: received or handled in the period by a unit of the commune
    satisfied: int = 0  # 5.3: first received in the period, neither disliked, followed up, nor late
    first_received: int = 0  # 5.3: first received in the period
    complained: frozenset[str] = frozenset()  # dossier codes named by a PAKN received by the cut (5.4)
