"""Agencies and the communes they belong to, a deployment file: the national portal's sync format names an agency
by its electronic code (mã định danh điện tử, QĐ 20/2020/QĐ-TTg: `madonvi`, `DonViXuLy`), the figures belong to a
commune (docs/dvcqg.md). Some senders put the agency's name in `DonViXuLy`: a unit lists its names too.
deploy/dvcqg/units.yaml ships the demo's communes."""

import unicodedata
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.communes import listed

DEFAULT_UNITS = Path(__file__).resolve().parents[1] / "deploy" / "dvcqg" / "units.yaml"


def _key(text: str) -> str:
    """How a code or name is looked up: Unicode NFC, spaces collapsed, case folded."""
    return " ".join(unicodedata.normalize("NFC", text).split()).casefold()


class Unit(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: str = Field(min_length=1, max_length=64)
    commune: str
    names: list[str] = []

    @field_validator("commune")
    @classmethod
    def _official(cls, code: str) -> str:
        if not listed(code):
            raise ValueError(f"{code} is not a commune-level unit of the official list after 1/7/2025")
        return code


class Units:
    """Agencies by electronic code, or by one of their names."""

    def __init__(self, units: list[Unit]):
        self.units = units
        self._index = {_key(alias): unit for unit in units for alias in (unit.code, *unit.names)}

    def find(self, code_or_name: str) -> Unit | None:
        return self._index.get(_key(code_or_name))


def load_units(path: Path = DEFAULT_UNITS) -> Units:
    """The units of a YAML file (`units: [{code, commune, names?}]`); ValueError if it is not one."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return Units([Unit.model_validate(u) for u in raw.get("units", [])])
    except (yaml.YAMLError, ValidationError, AttributeError) as exc:
        raise ValueError(f"{path}: not a units file: {exc}") from None
