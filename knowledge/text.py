"""Text normalisation for routing: folding, tokens, stems, compounds and typo repair.

Everything the router compares goes through ``Analyzer.features`` so that the routing table and a
member's question are seen the same way: case and diacritics folded (å/ä/ö typed as a/a/o), words
stemmed with the Swedish and the English Snowball stemmers, Swedish compounds split into parts the
table knows, and unknown words mapped to the nearest known word (rapidfuzz) to survive typos.

Arabic is normalised as is usual for Arabic retrieval — short vowels and other marks (tashkeel)
and the tatweel dropped, أ إ آ ٱ → ا, ى → ي, ة → ه, Arabic-Indic digits → 0–9 — and stemmed twice:
with the Snowball Arabic stemmer and with a light stemmer (the clitics و ال بال لل …, the common
suffixes), as members write the same word with different prefixes and endings. Arabic words are
never split as compounds (Arabic has none to split) nor "repaired" to a near known word: a word
one letter away is too often another word of the same root.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import Stemmer
from rapidfuzz import fuzz, process

# Long inputs are cut before analysis: a question is never this long, and the cut keeps the cost of
# one routing call bounded whatever a member pastes.
MAX_ANALYSED_CHARS = 2000
_MIN_COMPOUND_PART = 3
# Shorter words are too often other real words one letter away ("väder" is not "vänder").
_MIN_TYPO_LENGTH = 6

_TOKEN_RE = re.compile(r"[^\W_]+", re.UNICODE)
_ARABIC_RE = re.compile(r"[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff]")

# The languages the analysis knows (Snowball stemmers, function words, language detection).
Language = Literal["sv", "en", "ar"]
LANGUAGES: tuple[Language, ...] = ("sv", "en", "ar")

_SWEDISH_STOPWORDS = """
    och i att det som en på är av för med till den har de inte om ett han men var jag sig från
    vi så kan man när år säga hon under också efter eller nu sin där vid mot ska skall då sina
    vara blev mycket här hur vad vem vilken vilka vilket varför finns få får går gör göra ha
    hade dem dig din du era er ert ni oss vår våra vårt mig min mitt mina något några någon alla
    allt andra annan annat bara blir detta dessa denna deras dess ens hos in ju mer ut upp sedan
    själv skulle sådan sådana utan varit vart vill vilja kunna kunde måste behöver behov jo nej
    ja tack hej hallå
"""
_ENGLISH_STOPWORDS = """
    a an and are as at be but by do does for from have how i if in is it me my of on or our so
    that the their there this to us was we what when where which who why will with would you
    your can could should please hi hello thanks thank any some about
"""
_ARABIC_STOPWORDS = """
    في من على إلى الى عن مع هل ما ماذا كيف متى أين اين لماذا لمن بمن هو هي هم هن نحن أنا انا
    أنت انت أنتم انتم هذا هذه ذلك تلك هؤلاء التي الذي الذين او أو ثم لا نعم لكن كان كانت يكون
    إن أن ان قد لقد كل بعض أي اي عند عندنا عندي لدينا لدي لنا لي لك له لها به بها فيه فيها منه
    منها عليه عليها حتى إذا اذا أيضا ايضا غير بين يمكن يمكننا يمكنني نستطيع أستطيع استطيع نريد
    أريد اريد نود أود اود نحتاج أحتاج احتاج هناك هنا ممكن لو سمحت من فضلك شكرا مرحبا السلام
    عليكم أم وهل فهل كم يجب علينا لكي كي فقط جدا الآن بعد قبل
"""

_FOLD_TABLE = str.maketrans(
    {
        "æ": "a",
        "ø": "o",
        "ß": "ss",
        "ð": "d",
        "þ": "th",
        "ł": "l",
        # Arabic, after NFKD has already taken the hamza and madda off أ إ آ ؤ ئ:
        "\u0640": None,  # tatweel (ـ), drawn only to stretch a word
        "\u0671": "\u0627",  # ٱ → ا
        "\u0649": "\u064a",  # ى → ي
        "\u0629": "\u0647",  # ة → ه
        "\u06cc": "\u064a",  # Persian ی → ي (Persian keyboards)
        "\u06a9": "\u0643",  # Persian ک → ك
        **{chr(0x0660 + digit): str(digit) for digit in range(10)},  # ٠–٩
        **{chr(0x06F0 + digit): str(digit) for digit in range(10)},  # ۰–۹
    }
)


@lru_cache(maxsize=1)
def _drop_table() -> dict[int, str | None]:
    """Combining marks, control and format characters, surrogates → removed; and the folds."""
    table: dict[int, str | None] = {
        code: None
        for code in range(0x30000)
        if unicodedata.category(chr(code)) in ("Mn", "Cc", "Cf", "Cs")
    }
    table.update({code: value for code, value in _FOLD_TABLE.items()})
    return table


def fold(text: str) -> str:
    """Lower-case, drop diacritics (å→a, ä→a, ö→o, é→e), tashkeel and control characters."""
    return unicodedata.normalize("NFKD", text.casefold()).translate(_drop_table())


# Function words carry little routing signal: never repaired, split or cut into n-grams.
_STOPWORDS_BY_LANGUAGE: dict[Language, frozenset[str]] = {
    "sv": frozenset(fold(word) for word in _SWEDISH_STOPWORDS.split()),
    "en": frozenset(fold(word) for word in _ENGLISH_STOPWORDS.split()),
    "ar": frozenset(fold(word) for word in _ARABIC_STOPWORDS.split()),
}
STOPWORDS = frozenset().union(*_STOPWORDS_BY_LANGUAGE.values())
_ONLY_SWEDISH = _STOPWORDS_BY_LANGUAGE["sv"] - _STOPWORDS_BY_LANGUAGE["en"]
_ONLY_ENGLISH = _STOPWORDS_BY_LANGUAGE["en"] - _STOPWORDS_BY_LANGUAGE["sv"]


def words(text: str) -> list[str]:
    """The folded words of ``text`` (letters and digits), stop words kept."""
    return _TOKEN_RE.findall(fold(text[:MAX_ANALYSED_CHARS]))


def detect_language(text: str) -> Language | None:
    """The language ``text`` is most likely written in, or ``None`` when it does not tell.

    Arabic by its script; Swedish or English by their function words and by å, ä and ö.
    """
    found = words(text)
    arabic = sum(1 for word in found if is_arabic(word))
    if arabic and arabic * 2 >= len(found):
        return "ar"
    swedish = sum(1 for word in found if word in _ONLY_SWEDISH)
    swedish += sum(1 for char in text[:MAX_ANALYSED_CHARS] if char in "åäöÅÄÖ")
    english = sum(1 for word in found if word in _ONLY_ENGLISH)
    if swedish == english:
        return None
    return "sv" if swedish > english else "en"


@lru_cache(maxsize=1)
def _stemmers() -> tuple[Stemmer.Stemmer, Stemmer.Stemmer, Stemmer.Stemmer]:
    return Stemmer.Stemmer("swedish"), Stemmer.Stemmer("english"), Stemmer.Stemmer("arabic")


def is_arabic(word: str) -> bool:
    """Whether ``word`` is written in Arabic script."""
    return _ARABIC_RE.search(word) is not None


@lru_cache(maxsize=200_000)
def stems(word: str) -> frozenset[str]:
    """Stems of a folded word: Swedish and English, or for an Arabic word two Arabic stems."""
    swedish, english, arabic = _stemmers()
    if is_arabic(word):
        # Snowball knows ة (a suffix it removes); the folded word has ه in its place.
        snowball = arabic.stemWord(word[:-1] + "\u0629" if word.endswith("\u0647") else word)
        return frozenset((snowball, arabic_light_stem(word)))
    return frozenset((swedish.stemWord(word), english.stemWord(word)))


ARABIC_PROCLITICS = frozenset("وفبلك")
_ARABIC_PREFIXES = ("وال", "بال", "كال", "فال", "ال", "لل")
# Possessive endings ("our", "their" …); after ت they stand on a ة (جمعيتنا = جمعية + نا).
_ARABIC_POSSESSIVES = ("تكما", "تهما", "كما", "هما", "تنا", "تها", "تهم", "تكم", "تهن")
_ARABIC_POSSESSIVES_SHORT = ("نا", "هم", "كم", "هن")
_ARABIC_SUFFIXES = ("ها", "ان", "ات", "ون", "ين", "يه", "ه", "ي")


def arabic_light_stem(word: str) -> str:
    """Light stemming of a folded Arabic word (after Larkey, Ballesteros & Connell's "light10").

    و, then one article prefix (ال and its forms with a preposition), then the alef of an
    indefinite accusative (دعما → دعم) or a possessive ending (جمعيتنا → جمعيه), then each
    common suffix once, as long as enough letters remain:
    الجمعيات → جمع, وبالمسبح → مسبح, مكتبتنا → مكتب.
    """
    if len(word) > 3 and word.startswith("و"):
        word = word[1:]
    for prefix in _ARABIC_PREFIXES:
        if word.startswith(prefix) and len(word) - len(prefix) >= 2:
            word = word[len(prefix) :]
            break
    for ending in _ARABIC_POSSESSIVES:
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            word = word[: -len(ending)] + ("\u0647" if ending.startswith("ت") else "")
            break
    else:
        for ending in _ARABIC_POSSESSIVES_SHORT:
            if word.endswith(ending) and len(word) - len(ending) >= 3:
                word = word[: -len(ending)]
                break
        else:
            if len(word) >= 4 and word.endswith("ا") and word[-2] not in "اهن":
                word = word[:-1]  # the alef of an indefinite accusative: دعما → دعم
    for suffix in _ARABIC_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            word = word[: -len(suffix)]
    return word


@dataclass
class Vocabulary:
    """The words and stems the routing table knows, for compound splitting and typo repair."""

    surface: set[str] = field(default_factory=set)
    stems: set[str] = field(default_factory=set)
    _by_length: dict[int, list[str]] = field(default_factory=dict)
    _nearest_cache: dict[str, tuple[str, float] | None] = field(default_factory=dict)

    def add(self, word: str) -> None:
        if word in STOPWORDS or word.isdigit():
            return
        self.surface.add(word)
        self.stems.update(stems(word))

    def freeze(self) -> None:
        # Sorted, so that a tie between two equally near words is always decided the same way.
        self._by_length = {}
        for word in sorted(self.surface):
            if len(word) >= _MIN_TYPO_LENGTH:
                self._by_length.setdefault(len(word), []).append(word)
        self._nearest_cache = {}

    def knows(self, word: str) -> bool:
        return word in self.surface or not stems(word).isdisjoint(self.stems)

    def _known_part(self, part: str) -> bool:
        if len(part) < _MIN_COMPOUND_PART or part in STOPWORDS:
            return False
        return self.knows(part)

    def split_compound(self, word: str, depth: int = 0, *, repair: bool = False) -> list[str]:
        """Split a Swedish compound into parts the table knows (``föreningsbidrag`` → two parts).

        Tries the longest known head first, allowing the linking ``s`` (förening-s-bidrag).
        Returns ``[]`` when the word cannot be split completely into known parts.
        """
        if depth > 3 or len(word) < 2 * _MIN_COMPOUND_PART or is_arabic(word):
            return []
        for cut in range(len(word) - _MIN_COMPOUND_PART, _MIN_COMPOUND_PART - 1, -1):
            head, tail = word[:cut], word[cut:]
            if self._known_part(head):
                pass
            elif head.endswith("s") and self._known_part(head[:-1]):
                head = head[:-1]
            else:
                continue
            if self._known_part(tail):
                return [head, tail]
            if repair and depth == 0 and len(tail) >= _MIN_TYPO_LENGTH:
                near = self.nearest(tail)  # a compound with a misspelt tail: "aktivitetsbidarg"
                if near is not None:
                    return [head, near[0]]
            rest = self.split_compound(tail, depth + 1)
            if rest:
                return [head, *rest]
        return []

    def without_proclitic(self, word: str) -> str | None:
        """An unknown Arabic word read without the particles written onto it, if then known.

        و ف ب ل ك ("and", "so", "in", "for", "like") are written onto the next word without the
        article that the stemmers remove: لحفل, بمسبح, وكمكتب. One or two of them are taken off
        when what remains (three letters or more) is a word the table knows.
        """
        if not is_arabic(word):
            return None
        for cut in (1, 2):
            bare = word[cut:]
            if len(bare) < 3 or not set(word[:cut]) <= ARABIC_PROCLITICS:
                break
            if bare not in STOPWORDS and self.knows(bare):
                return bare
        return None

    def nearest(self, word: str) -> tuple[str, float] | None:
        """The known word closest to a misspelt ``word`` (rapidfuzz), with its similarity 0–1."""
        if len(word) < _MIN_TYPO_LENGTH or is_arabic(word):
            return None
        if word in self._nearest_cache:
            return self._nearest_cache[word]
        if len(self._nearest_cache) > 50_000:  # bounded: members can type anything
            self._nearest_cache.clear()
        found = self._nearest(word)
        self._nearest_cache[word] = found
        return found

    def _nearest(self, word: str) -> tuple[str, float] | None:
        candidates: list[str] = []
        for length in range(len(word) - 2, len(word) + 3):
            candidates.extend(self._by_length.get(length, ()))
        if not candidates:
            return None
        cutoff = 80.0 if len(word) < 7 else 75.0
        best = process.extractOne(word, candidates, scorer=fuzz.ratio, score_cutoff=cutoff)
        if best is None:
            return None
        return best[0], best[1] / 100.0


class Analyzer:
    """Turns text into weighted features; built once per routing table."""

    def __init__(
        self,
        vocabulary: Vocabulary,
        *,
        char_ngrams: bool = True,
        stemming: bool = True,
        compounds: bool = True,
    ) -> None:
        self.vocabulary = vocabulary
        self.char_ngrams = char_ngrams
        self.compounds = compounds
        self._stems = stems if stemming else _as_is

    def features(self, text: str, *, repair: bool = True) -> dict[str, float]:
        """Feature → weight for ``text``: stems, stem bigrams, compound parts, char n-grams."""
        return self.analyse(text, repair=repair)[0]

    def analyse(
        self, text: str, *, repair: bool = True
    ) -> tuple[dict[str, float], list[ContentWord]]:
        """Features of ``text`` and what was understood of each of its content words.

        Function words are kept as features (IDF weighs them down; they still tell "what is" from
        "how do"), but they are never repaired, split or broken into character n-grams.
        """
        feats: dict[str, float] = {}
        content: list[ContentWord] = []
        previous: str | None = None
        for original in words(text):
            word, weight = original, 1.0
            function_word = word in STOPWORDS or word.isdigit()
            word_features: set[str] = set()
            known = 0.0
            if not function_word:
                known = 1.0 if self.vocabulary.knows(word) else 0.0
                if not known and repair:
                    bare = self.vocabulary.without_proclitic(word)
                    if bare is not None:  # "لحفل", for a party: the table knows "حفل"
                        word, known = bare, 1.0
                near = None if known or not repair else self.vocabulary.nearest(word)
                # A near-certain typo ("idrotshall") is repaired before trying to split it.
                parts = (
                    self.vocabulary.split_compound(word, repair=repair and not known)
                    if self.compounds and not (near and near[1] >= 0.9)
                    else []
                )
                for part in parts:
                    part_features = {f"w:{s}" for s in self._stems(part)}
                    _add(feats, part_features, 0.6)
                    word_features |= part_features
                if parts:
                    known = 1.0
                elif near is not None:
                    word, weight = near[0], near[1] * 0.9
                    known = near[1] * 0.8
            word_stems = self._stems(word)
            own_features = {f"w:{s}" for s in word_stems}
            _add(feats, own_features, weight)
            head = min(word_stems, key=lambda stem: (len(stem), stem))
            if not function_word:
                content.append(
                    ContentWord(original, f"w:{head}", own_features | word_features, known)
                )
            if previous is not None:
                _add(feats, (f"b:{previous}_{head}",), weight)
            previous = head
            if self.char_ngrams and not function_word:
                padded = f" {word} "
                _add(
                    feats,
                    (f"c:{padded[i : i + n]}" for n in (3, 4) for i in range(len(padded) - n + 1)),
                    0.25 * weight,
                )
        return feats, content

    def phrase_stems(self, phrase: str) -> list[frozenset[str]]:
        """Per content word of a keyword or phrase, its own stems (no parts, no repair)."""
        return [
            self._stems(word)
            for word in words(phrase)
            if word not in STOPWORDS and not word.isdigit()
        ]


@dataclass(frozen=True)
class ContentWord:
    """A content word of a question as the router understood it.

    ``known`` is 1.0 when the table has the word or all its compound parts, the similarity when
    it was repaired from a typo, and 0.0 when the table has never seen it.
    """

    original: str
    main_feature: str
    features: set[str]
    known: float

    @property
    def stems(self) -> set[str]:
        return {feature[2:] for feature in self.features}


def _as_is(word: str) -> frozenset[str]:
    return frozenset((word,))


def _add(feats: dict[str, float], keys: Iterable[str], weight: float) -> None:
    for key in keys:
        if feats.get(key, 0.0) < weight:
            feats[key] = weight
