"""Typed config fields (``fieldtypes``): what a value may be and how a flag's text parses, the
same for every config."""
from dataclasses import dataclass

import pytest

from beta_core.fieldtypes import check, check_fields, coerce, described


@pytest.mark.parametrize("value,hint,ok", [
    (3, int, True), (True, int, False), (3, float, True), (float("inf"), float, False), (float("nan"), float, False),
    ([0.5, 0.9], tuple, True), (None, int | None, True), (None, int, False), ("auto", str | float, True),
    (0.7, str | float, True), (False, bool, True), (0, bool, False),
])
def test_a_value_is_checked_against_its_declared_type(value, hint, ok):
    if ok:
        check("x", value, hint)
    else:
        with pytest.raises(ValueError, match=r"^Invalid x: "):
            check("x", value, hint)


@pytest.mark.parametrize("hint,text,value", [
    (bool, "TRUE", True), (int, "+7", 7), (float, "1e-3", 1e-3), (int | None, "null", None),
    (tuple, "1,2,", (1.0, 2.0)),
    (str | float, "0.5", 0.5), (str | float, "auto", "auto"),
])
def test_text_parses_by_declared_type(hint, text, value):
    assert coerce("x", hint, text) == value


@pytest.mark.parametrize("hint,text,expected", [
    (bool, "yes", "true/false"), (int, "1.5", "an integer"), (float, "inf", "a finite number"),
    (int | None, "lots", "an integer or none"),
])
def test_text_that_does_not_parse_says_what_was_expected(hint, text, expected):
    with pytest.raises(ValueError, match=rf"^Invalid x: '{text}' \(expected {expected}\)$"):
        coerce("x", hint, text)


def test_a_dataclass_is_checked_field_by_field_under_the_users_names():
    @dataclass(frozen=True)
    class Part:
        name: str = described("a", "its name")
        size: int | None = described(None, "how many")

        def __post_init__(self):
            check_fields(self, {"name": "model"})

    assert Part.__dataclass_fields__["size"].metadata["help"] == "how many"
    with pytest.raises(ValueError, match=r"^Invalid model: 1 \(expected text\)$"):
        Part(name=1)
    with pytest.raises(ValueError, match=r"^Invalid size: True \(expected an integer or none\)$"):
        Part(size=True)


def test_an_error_quotes_a_hostile_value_bounded():
    """A stored config from another machine with a 1 MB dataset name or a million widths: the error
    names its start (the message stays a line), and nothing is formatted whole."""
    from beta_core.config import TrainConfig

    for bad in ({"dataset": "x" * 10 ** 6}, {"widths": list(range(10 ** 6))}, {"data_path": ["y"] * 10 ** 6},
                {"method": "m" * 10 ** 6}):
        with pytest.raises(ValueError) as e:
            TrainConfig.from_dict(bad)
        assert len(str(e.value)) < 300, str(e.value)[:300]
