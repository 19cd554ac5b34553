"""The procedure catalogue (danh mục thủ tục hành chính), a deployment file: per procedure code, what the
national TTHC database says of it and a dossier does not carry (docs/domain.md §6): its processing time, the
online level it is offered at, whether it is eligible for end-to-end online filing, whether its result is on
paper, whether it bears a fee. deploy/dvcqg/procedures.yaml ships the demo's procedures."""

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.events import ProcessingTime, ShortCode

DEFAULT_CATALOGUE = Path(__file__).resolve().parents[1] / "deploy" / "dvcqg" / "procedures.yaml"


class Procedure(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    level: str | None = None  # e.g. "xã": the level of government that resolves it
    processing_time: ProcessingTime
    online_level: Literal["full", "partial"] | None = None  # offered online at; None: not online
    full_online_eligible: bool = False  # toàn trình
    paper_result: bool = True
    fee_bearing: bool = True


class Catalogue(BaseModel):
    """Procedures by code. A procedure missing from it counts as not eligible, paper result, fee-bearing."""

    model_config = ConfigDict(frozen=True)
    procedures: dict[ShortCode, Procedure] = {}

    def get(self, code: str) -> Procedure | None:
        return self.procedures.get(code)


def load_catalogue(path: Path = DEFAULT_CATALOGUE) -> Catalogue:
    """The catalogue of a YAML file (`procedures: {code: {...}}`); ValueError if it is not one."""
    try:
        return Catalogue.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"{path}: not a procedure catalogue: {exc}") from None
