"""Text normalisation: how a member's spelling is made comparable with the routing table."""

from __future__ import annotations

from knowledge.text import MAX_ANALYSED_CHARS, Vocabulary, fold, stems, words


def vocabulary(*known: str) -> Vocabulary:
    result = Vocabulary()
    for word in known:
        result.add(word)
    result.freeze()
    return result


def test_fold_drops_case_and_diacritics() -> None:
    assert fold("Föreningsbidrag ÅÄÖ é") == "foreningsbidrag aao e"


def test_fold_drops_control_characters() -> None:
    assert fold("hall\x00tider\u200b") == "halltider"


def test_inflections_share_a_stem() -> None:
    lokal, lokalen, lokaler = stems("lokal"), stems("lokalen"), stems("lokaler")
    assert lokal & lokalen & lokaler


def test_compound_is_split_into_known_parts() -> None:
    parts = vocabulary("forening", "bidrag").split_compound(fold("föreningsbidrag"))
    assert len(parts) == 2
    head, tail = parts
    # förening + (linking s) + bidrag
    assert head.removesuffix("s") == "forening"
    assert tail == "bidrag"


def test_unknown_compound_is_not_split() -> None:
    assert vocabulary("forening", "bidrag").split_compound("kottbullar") == []


def test_nearest_repairs_a_typo() -> None:
    known = vocabulary("idrottshall", "forening", "bidrag", "lokal")
    match = known.nearest("idrotshall")
    assert match is not None
    word, similarity = match
    assert word == "idrottshall"
    assert 0.0 < similarity <= 1.0


def test_nearest_does_not_invent_words() -> None:
    assert vocabulary("idrottshall", "bidrag").nearest("kottbullar") is None


def test_words_of_a_very_long_text_are_bounded() -> None:
    text = "ord " * 5000 + "slutord"
    assert len(text) > 20_000 - 10
    found = words(text)
    assert 0 < len(found) <= MAX_ANALYSED_CHARS
    assert sum(len(word) for word in found) <= MAX_ANALYSED_CHARS
    assert "slutord" not in found  # past the analysed prefix


def test_words_of_one_20000_character_word_are_bounded() -> None:
    found = words("a" * 20_000)
    assert sum(len(word) for word in found) <= MAX_ANALYSED_CHARS
