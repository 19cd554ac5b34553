"""The deployment's SMS templates, checked at load: every one fits its part limit at worst."""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from services.notifications.sms import Encoded, cut, encode
from shared.communes import communes
from shared.lookup import lookup_link

DEFAULT = Path(__file__).with_name("templates.yaml")
TRIGGERS = ("received", "supplement_requested", "resolved", "returned", "apology", "due_soon")
# The longest value each field can take: a TT 01/2018 code is 25 characters, a date 10.
_WORST = {"code": "000.00.00.H00-000000-0000", "date": "00/00/0000"}


@dataclass(frozen=True)
class Template:
    text: str
    ucs2: bool = False


@dataclass(frozen=True)
class Templates:
    brandname: str
    centre: str
    max_parts: int
    missing_max: int
    templates: dict[str, Template]
    lookup_url: str = "http://127.0.0.1:8002/tra-cuu"  # the citizens' lookup page ({lookup})
    lookup_secret: str = ""

    @classmethod
    def load(cls, path: Path | None = None, lookup_url: str = "http://127.0.0.1:8002/tra-cuu",
             lookup_secret: str = "") -> "Templates":
        raw = yaml.safe_load((path or DEFAULT).read_text())
        loaded = cls(
            brandname=raw["brandname"],
            centre=raw["centre"],
            max_parts=int(raw.get("max_parts", 2)),
            missing_max=int(raw.get("missing_max", 60)),
            templates={name: Template(t["text"], bool(t.get("ucs2", False))) for name, t in raw["templates"].items()},
            lookup_url=lookup_url,
            lookup_secret=lookup_secret,
        )
        loaded.check()
        return loaded

    def check(self) -> None:
        """Refuse a brandname over 11 characters, an unknown trigger, or a template that can exceed
        the part limit with the longest values its fields can take."""
        if not 0 < len(self.brandname) <= 11:
            raise ValueError(f"brandname {self.brandname!r}: 1 to 11 characters")
        unknown = set(self.templates) - set(TRIGGERS)
        if unknown:
            raise ValueError(f"templates for unknown triggers {sorted(unknown)}; known: {TRIGGERS}")
        longest_centre = max((self.centre.format(commune=c.name) for c in communes().values()), key=len)
        worst_link = lookup_link(self.lookup_url, self.lookup_secret, _WORST["code"])  # every token is as long
        for name, template in self.templates.items():
            filler = "ệ" if template.ucs2 else "x"
            worst = template.text.format(centre=longest_centre, missing=filler * self.missing_max, lookup=worst_link,
                                         **_WORST)
            encoded = encode(worst, template.ucs2)
            if encoded.parts > self.max_parts:
                raise ValueError(f"template {name} can need {encoded.parts} parts ({encoded.units} "
                                 f"{'UTF-16 units' if template.ucs2 else 'septets'}), over the limit of {self.max_parts}")

    def render(self, trigger: str, code: str, commune_name: str, date: datetime | None = None,
               missing: str | None = None) -> Encoded:
        template = self.templates[trigger]
        missing = cut(missing or "", self.missing_max, template.ucs2)  # any Unicode a reason may hold
        text = template.text.format(code=code, centre=self.centre.format(commune=commune_name),
                                    date=f"{date:%d/%m/%Y}" if date else "", missing=missing,
                                    lookup=lookup_link(self.lookup_url, self.lookup_secret, code))
        return encode(text, template.ucs2)
