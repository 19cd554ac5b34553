"""The official commune-level units after 1/7/2025 (3,321 xã, phường, đặc khu in 34 provinces)."""

from dataclasses import dataclass
from functools import cache

from vietnam_provinces import Province, Ward


@dataclass(frozen=True)
class Commune:
    code: str  # 5 digits, e.g. "14923"
    name: str  # e.g. "Xã Bá Thước"
    province_code: str  # 2 digits, e.g. "38"
    province_name: str


@cache
def communes() -> dict[str, Commune]:
    provinces = {int(p.code): p.name for p in Province.iter_all()}
    return {
        f"{int(w.code):05d}": Commune(
            code=f"{int(w.code):05d}",
            name=w.name,
            province_code=f"{int(w.province_code):02d}",
            province_name=provinces[int(w.province_code)],
        )
        for w in Ward.iter_all()
    }


def commune(code: str) -> Commune | None:
    return communes().get(code)


def communes_of_province(province_code: str) -> list[Commune]:
    return [c for c in communes().values() if c.province_code == province_code]
