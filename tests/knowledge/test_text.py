"""Text normalisation: how a member's spelling is made comparable with the routing table."""

from __future__ import annotations

from knowledge.text import (
    MAX_ANALYSED_CHARS,
    Analyzer,
    Vocabulary,
    detect_language,
    fold,
    stems,
    words,
)


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


# ---------------------------------------------------------------------------------------------
# Arabic


def test_fold_drops_tashkeel_and_tatweel() -> None:
    assert fold("كَيْفَ نَحْجِزُ قَاعَةً؟") == fold("كيف نحجز قاعة؟")
    assert fold("مـــكـتـبـة") == fold("مكتبة")
    assert "\u064e" not in fold("نَحْجِزُ") and "\u0640" not in fold("نريـــد")


def test_fold_unifies_alef_ya_and_ta_marbuta() -> None:
    assert fold("أ إ آ ٱ ا") == "ا ا ا ا ا"
    assert fold("إلى") == fold("الى") == fold("الي")
    assert fold("الصالة") == fold("الصاله")


def test_fold_turns_arabic_indic_digits_into_digits() -> None:
    assert fold("ملف ٢٠٢٦-٠٠٤٢") == "ملف 2026-0042"
    assert fold("۱۲۳") == "123"


def test_arabic_text_is_split_into_words_at_arabic_punctuation() -> None:
    assert words("ما هي المنح؟ نريد، حجز الصالة؛ شكرا") == [
        fold(word) for word in ("ما", "هي", "المنح", "نريد", "حجز", "الصالة", "شكرا")
    ]


def test_arabic_inflections_share_a_stem() -> None:
    forms = ("الجمعية", "الجمعيات", "جمعيتنا", "للجمعيات", "بالجمعية")
    shared = frozenset.intersection(*(stems(fold(form)) for form in forms))
    assert shared, [sorted(stems(fold(form))) for form in forms]
    # the indefinite accusative's alef: "we want support" (دعما) and "the support" (الدعم)
    assert stems(fold("دعما")) & stems(fold("الدعم"))
    assert stems(fold("موظفا")) & stems(fold("الموظف"))
    # the same word typed with ه for ة, or with diacritics, is the same word
    assert stems(fold("الصاله")) == stems(fold("الصالة")) == stems(fold("الصَّالَة"))


def test_arabic_and_swedish_words_keep_their_own_stems() -> None:
    assert stems(fold("lokalerna")) == stems("lokalerna")
    assert all(stem.isascii() for stem in stems("lokalerna"))
    assert not any(stem.isascii() for stem in stems(fold("المكتبات")))


def test_arabic_words_are_neither_split_nor_repaired() -> None:
    known = vocabulary(fold("المكتب"), fold("الرياضية"), fold("الصالة"), "idrottshall")
    # one letter from a known word is often another word of the same root: office ≠ library
    assert known.nearest(fold("المكتبة")) is None
    assert known.split_compound(fold("الصالةالرياضية")) == []
    assert known.nearest("idrotshall") is not None  # Swedish repair still works


def test_unknown_arabic_word_still_shares_character_ngrams() -> None:
    analyzer = Analyzer(vocabulary(fold("الحجز")))
    question = analyzer.features(fold("نحجز"))
    table = analyzer.features(fold("الحجز"))
    assert {key for key in question if key.startswith("c:")} & set(table)


def test_language_is_detected_from_script_and_function_words() -> None:
    assert detect_language("Hur bokar vi en idrottshall?") == "sv"
    assert detect_language("How do we book a sports hall?") == "en"
    assert detect_language("كيف نحجز صالة رياضية؟") == "ar"
    assert detect_language("كيف نحصل على LOK-stöd؟") == "ar"
    assert detect_language("halltider?") is None
    assert detect_language("") is None


def test_particles_written_onto_an_unknown_arabic_word_are_read_off() -> None:
    known = vocabulary(fold("حفل"), fold("مسبح"), "lokal")
    assert known.without_proclitic(fold("لحفل")) == fold("حفل")  # for a party
    assert known.without_proclitic(fold("ولحفل")) == fold("حفل")  # and for a party
    assert known.without_proclitic(fold("بلدية")) is None  # "لدية" is no word the table knows
    assert known.without_proclitic("klokal") is None  # not Arabic


def test_an_unknown_word_with_a_particle_counts_as_known() -> None:
    analyzer = Analyzer(vocabulary(fold("حفل"), fold("موسيقي")))
    _, content = analyzer.analyse(fold("لحفل موسيقي"))
    assert [word.known for word in content] == [1.0, 1.0]
    assert "w:" + min(stems(fold("حفل")), key=len) in analyzer.features(fold("لحفل"))
