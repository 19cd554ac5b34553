"""The official commune list: the shipped one, or a file of the service's own when units merge or split;
a commune that left the list is still known for the dossiers received there, but no new event may name it."""

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from shared.auth import commune_in_scope
from shared.communes import Commune, commune, communes, listed, shipped, use_list
from shared.events import parse_event, parse_event_json
from tests.fixtures.sample import event

BA_THUOC = "14923"


@pytest.fixture
def without_ba_thuoc(tmp_path: Path) -> Iterator[None]:
    merged = Commune("99999", "Xã Mới", "38", "Thanh Hóa")  # a unit the shipped list does not have yet
    kept = [vars(c) for code, c in shipped().items() if code != BA_THUOC] + [vars(merged)]
    (tmp_path / "communes.json").write_text(json.dumps(kept, ensure_ascii=False), encoding="utf-8")
    use_list(tmp_path / "communes.json")
    yield
    use_list(None)


def test_the_shipped_list_is_the_default() -> None:
    assert communes() is shipped() and len(communes()) == 3321 and listed(BA_THUOC)


def test_a_commune_left_off_the_list_is_known_but_not_listed(without_ba_thuoc: None) -> None:
    assert not listed(BA_THUOC) and commune(BA_THUOC).province_code == "38"
    assert listed("99999") and commune("99999").name == "Xã Mới"
    assert commune_in_scope(["38"], [], BA_THUOC) and not commune_in_scope(["25"], [], BA_THUOC)
    assert commune("00000") is None and not commune_in_scope(["*"], [], "00000")


def test_a_new_receipt_naming_it_is_refused_and_a_stored_one_is_read(without_ba_thuoc: None) -> None:
    received = event("dossier.received", commune_code=BA_THUOC)
    with pytest.raises(ValueError, match=f"{BA_THUOC} is not a commune-level unit"):
        parse_event(received)
    assert parse_event_json(orjson.dumps(received), stored=True).data.commune_code == BA_THUOC
    assert parse_event(event("dossier.received", commune_code="99999")).data.commune_code == "99999"
