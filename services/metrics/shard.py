"""Which provinces a metrics replica owns (docs/contract.md §5, README "Scaling").

Every replica reads `dossier-status` whole, keeps only its provinces' dossiers, and answers 421
(Misdirected Request) for a commune or province it does not own, naming the owner when known.
Series of replicas owning different provinces are disjoint, so Prometheus' sums stay right.
"""

from dataclasses import dataclass, field

from shared.communes import commune


@dataclass(frozen=True)
class Shard:
    provinces: frozenset[str] = frozenset()  # empty: every province
    owners: dict[str, str] = field(default_factory=dict)  # province -> the owner's base URL

    def owns(self, province_code: str) -> bool:
        return not self.provinces or province_code in self.provinces

    def owns_commune(self, commune_code: str | None) -> bool:
        """Whether this replica counts a commune's dossiers: a commune missing from the official list
        belongs to no province, so only a replica of every province counts it."""
        if not self.provinces:
            return True
        found = commune(commune_code) if commune_code else None
        return found is not None and found.province_code in self.provinces

    def misdirected(self, province_code: str) -> str | None:
        """Why this replica does not answer for the province, or None when it does."""
        if self.owns(province_code):
            return None
        owner = self.owners.get(province_code)
        where = f": ask {owner}" if owner else ""
        return f"province {province_code} is not one of this replica's ({', '.join(sorted(self.provinces))}){where}"
