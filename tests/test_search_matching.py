"""``search`` keywords match whole words of AudioSet's real class names, not parts of words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modeling.inference import match_classes
from schemas.classmap import ClassMap


@pytest.fixture(scope="module")
def audioset(audioset_dir: Path) -> ClassMap:
    """AudioSet's 527 classes."""
    return ClassMap.load(audioset_dir / "class_labels_indices.csv")


def matched(classes: ClassMap, keyword: str) -> list[str]:
    """Display names ``keyword`` matches, in class order."""
    return [c.display_name for c in match_classes(classes, keyword)]


CAR = [
    "Car",
    "Vehicle horn, car horn, honking",
    "Car alarm",
    "Car passing by",
    "Race car, auto racing",
    "Police car (siren)",
    "Railroad car, train wagon",
]


@pytest.mark.parametrize("keyword", ["car", "CAR", "  Car ", "cars"])
def test_car_matches_the_word_car_in_any_case_or_number(audioset: ClassMap, keyword: str) -> None:
    assert matched(audioset, keyword) == CAR


@pytest.mark.parametrize(
    ("keyword", "names"),
    [
        ("dog", ["Dog", "Whimper (dog)", "Canidae, dogs, wolves"]),
        ("dogs", ["Dog", "Whimper (dog)", "Canidae, dogs, wolves"]),
        (
            "bird",
            [
                "Bird",
                "Bird vocalization, bird call, bird song",
                "Bird flight, flapping wings",
            ],
        ),
        ("water", ["Water", "Boat, Water vehicle", "Water tap, faucet"]),
        ("wing", ["Bird flight, flapping wings", "Fixed-wing aircraft, airplane"]),
    ],
)
def test_a_keyword_matches_whole_words_and_their_plurals(
    audioset: ClassMap, keyword: str, names: list[str]
) -> None:
    assert matched(audioset, keyword) == names


def test_music_and_speech_leave_out_words_that_only_begin_with_them(audioset: ClassMap) -> None:
    music = matched(audioset, "music")
    assert music == [n for n in audioset.display_names if re.search(r"\bmusic\b", n, re.I)]
    assert len(music) == 42 and "Jingle (music)" in music and "Carnatic music" in music
    assert "Musical instrument" not in music and "Keyboard (musical)" not in music
    assert matched(audioset, "speech") == [
        "Speech",
        "Male speech, man speaking",
        "Female speech, woman speaking",
        "Child speech, kid speaking",
        "Speech synthesizer",
        "Hubbub, speech noise, speech babble",
    ]


@pytest.mark.parametrize(
    ("keyword", "names"),
    [
        ("car alarm", ["Car alarm"]),
        ("Car Alarms", ["Car alarm"]),
        ("hip hop", ["Hip hop music"]),
        ("rock and roll", ["Rock and roll"]),
        ("motor vehicle", ["Motor vehicle (road)"]),
        ("vehicle (road)", ["Motor vehicle (road)"]),
        ("car horn", ["Vehicle horn, car horn, honking"]),
        ("vroom", ["Accelerating, revving, vroom"]),
        ("hi-hat", ["Hi-hat"]),
        ("hi hat", ["Hi-hat"]),
        ("dentist's drill", ["Dental drill, dentist's drill"]),
    ],
)
def test_a_keyword_of_several_words_matches_them_as_a_phrase(
    audioset: ClassMap, keyword: str, names: list[str]
) -> None:
    assert matched(audioset, keyword) == names


def test_every_display_name_matches_its_own_class(audioset: ClassMap) -> None:
    for info in audioset:
        assert info in match_classes(audioset, info.display_name), info.display_name


@pytest.mark.parametrize(("keyword", "hint"), [("alarm car", "'Car alarm'"), ("dgo", "'Dog'")])
def test_a_keyword_matching_no_whole_word_is_refused_with_suggestions(
    audioset: ClassMap, keyword: str, hint: str
) -> None:
    refusal = rf"^no class name matches {re.escape(repr(keyword))}; did you mean: .*{hint}"
    with pytest.raises(ValueError, match=refusal):
        match_classes(audioset, keyword)


def test_part_of_a_word_matches_nothing(audioset: ClassMap) -> None:
    with pytest.raises(ValueError, match=r"^no class name matches 'wate'; did you mean: 'Water'"):
        match_classes(audioset, "wate")


@pytest.mark.parametrize("keyword", ["()", " - "])
def test_a_keyword_without_letters_or_digits_is_refused(audioset: ClassMap, keyword: str) -> None:
    with pytest.raises(ValueError, match=f"^the search keyword {re.escape(repr(keyword))} has no "):
        match_classes(audioset, keyword)
    with pytest.raises(ValueError, match=r"^the search keyword is empty$"):
        match_classes(audioset, "  ")
