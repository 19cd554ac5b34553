"""The official commune-level units after 1/7/2025 (3,321 xã, phường, đặc khu in 34 provinces): the
shipped list (vietnam_provinces), or a file of its own when units merge or split (docs/contract.md §3)."""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from vietnam_provinces import Province, Ward


@dataclass(frozen=True)
class Commune:
    code: str  # 5 digits, e.g. "14923"
    name: str  # e.g. "Xã Bá Thước"
    province_code: str  # 2 digits, e.g. "38"
    province_name: str


_list_file: Path | None = None


def use_list(path: Path | None) -> None:
    """Take the official list from `path` (a JSON array of {code, name, province_code, province_name}),
    or the shipped one when None: what a service does at start with its `communes_file` setting. Only
    events arriving are checked against it; stored ones never are (shared/events.py `STORED`)."""
    global _list_file
    _list_file = path
    communes.cache_clear()


@cache
def communes() -> dict[str, Commune]:
    if _list_file is not None:
        return {c["code"]: Commune(**c) for c in json.loads(_list_file.read_text(encoding="utf-8"))}
    return shipped()


@cache
def shipped() -> dict[str, Commune]:
    """The list as vietnam_provinces ships it, whatever the service was told to use."""
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
    """A commune of the list, or one that left it (as the shipped list has it): a dossier received there
    keeps its name and province. Arriving events are checked with `listed`."""
    return communes().get(code) or shipped().get(code)


def listed(code: str) -> bool:
    """Is `code` a commune of the list the service runs with: what an arriving event must name."""
    return code in communes()


def communes_of_province(province_code: str) -> list[Commune]:
    return [c for c in communes().values() if c.province_code == province_code]
