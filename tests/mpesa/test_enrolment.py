"""The enrolment file: the relay's writer and the till's one loader (`mpesa.enrolment`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from smartduka_tui.mpesa.enrolment import (
    ENROLMENT_FORMAT,
    Enrolment,
    EnrolmentError,
    RotatedSecret,
    load_enrolment,
    read_enrolment_file,
)

OLD_FILES = Path(__file__).parents[1] / "data" / "enrolment"
TILL_KEY = "tfixturetilla.Rml4dHVyZVRpbGxLZXlOb3RBUmVhbE9uZTAwMDAwMDA"
CALLBACK_SECRET = "Rml4dHVyZUNhbGxiYWNrU2VjcmV0Tm90UmVhbDAwMDE"


def old_file(name: str) -> bytes:
    return (OLD_FILES / name).read_bytes()


def written() -> Enrolment:
    """An enrolment as the relay's registry builds it."""
    return Enrolment(
        format=ENROLMENT_FORMAT,
        shop_id="sfixtureshopa",
        shop_name="Fixture Duka",
        till_id="tfixturetilla",
        till_key=TILL_KEY,
        callback_secret=CALLBACK_SECRET,
        callback_kid="k1-r1",
        relay_url="https://relay.example.com",
    )


def test_a_shop_add_file_from_before_per_till_keys_still_loads() -> None:
    loaded = load_enrolment(old_file("shop_add_before_per_till_keys.json"))
    assert isinstance(loaded, Enrolment)
    assert (loaded.shop_id, loaded.till_id, loaded.callback_kid) == (
        "sfixtureshopa",
        "tfixturetilla",
        "k1",
    )
    assert loaded.till_key == TILL_KEY and loaded.callback_secret == CALLBACK_SECRET
    assert loaded.relay_url is None and loaded.shop_name == "Fixture Duka"


def test_an_old_rotate_secret_file_loads_as_a_rotated_secret() -> None:
    loaded = load_enrolment(old_file("rotate_secret_before_per_till_keys.json"))
    assert type(loaded) is RotatedSecret
    assert (loaded.shop_id, loaded.callback_kid, loaded.format) == ("sfixtureshopa", "k2", None)


def test_a_till_add_file_with_a_per_till_kid_loads() -> None:
    loaded = load_enrolment(old_file("till_add_per_till_keys.json"))
    assert isinstance(loaded, Enrolment)
    assert loaded.callback_kid == "k2-r1" and loaded.relay_url == "https://relay.example.com"


def test_what_the_relay_writes_is_what_the_till_reads() -> None:
    enrolment = written()
    text = enrolment.to_json()
    assert load_enrolment(text.encode()) == enrolment
    # The key order every relay has printed, so a person comparing files sees the same.
    assert list(json.loads(text)) == [
        "format",
        "shop_id",
        "shop_name",
        "till_id",
        "till_key",
        "callback_secret",
        "callback_kid",
        "relay_url",
    ]
    assert json.loads(text) == json.loads(old_file("till_add_per_till_keys.json")) | {
        "till_id": "tfixturetilla",
        "till_key": TILL_KEY,
        "callback_secret": CALLBACK_SECRET,
        "callback_kid": "k1-r1",
    }


def test_secrets_stay_out_of_reprs_and_errors() -> None:
    enrolment = written()
    for shown in (repr(enrolment), str(enrolment), f"{enrolment!r}"):
        assert TILL_KEY not in shown and CALLBACK_SECRET not in shown
    bad = {**enrolment.as_json(), "shop_id": 42}
    with pytest.raises(EnrolmentError) as refused:
        load_enrolment(json.dumps(bad).encode())
    assert TILL_KEY not in str(refused.value) and CALLBACK_SECRET not in str(refused.value)


def test_unknown_keys_are_ignored_and_a_missing_format_is_version_one() -> None:
    data = {**written().as_json(), "future_field": {"anything": 1}}
    del data["format"]
    loaded = load_enrolment(json.dumps(data).encode())
    assert isinstance(loaded, Enrolment) and loaded.format is None


def _mutated(change: Any) -> bytes:
    data = written().as_json()
    change(data)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "enrol.json is not JSON"),
        (b'{"shop_id": NaN}', "enrol.json is not JSON"),
        (b"\xff\xfe", "enrol.json is not JSON"),
        (b"[1, 2]", "enrol.json must hold one JSON object"),
        (b"{" + b" " * 70_000 + b"}", "enrol.json is larger than 64 KiB"),
        (b"{}", "shop_id: field required; callback_secret: field required"),
        (_mutated(lambda d: d.pop("callback_secret")), "callback_secret: field required"),
        (_mutated(lambda d: d.pop("till_key")), "till_key: field required"),
        (_mutated(lambda d: d.update(till_key=None)), "must have both till_id and till_key"),
        (_mutated(lambda d: d.pop("till_id")), "till_id: field required"),
        (_mutated(lambda d: d.update(shop_id=42)), "shop_id: must be text"),
        (_mutated(lambda d: d.update(callback_kid=7)), "callback_kid: must be text"),
        (_mutated(lambda d: d.update(relay_url=["x"])), "relay_url: must be text"),
        (
            _mutated(lambda d: d.update(format="smartduka-enrolment/9")),
            "format is not smartduka-enrolment/1, the only one this SmartDuka reads",
        ),
    ],
)
def test_a_bad_file_is_refused_saying_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(EnrolmentError) as refused:
        load_enrolment(raw, "enrol.json")
    assert message in str(refused.value)


def test_reading_a_file_expands_home_and_says_why_it_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "enrol.json").write_bytes(b"x" * 70_000)
    assert len(read_enrolment_file("~/enrol.json")) == 64 * 1024 + 1
    with pytest.raises(EnrolmentError, match=r"cannot read .*nope\.json: No such file"):
        read_enrolment_file(tmp_path / "nope.json")
