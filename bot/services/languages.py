"""Which language a member writes in, and keeping the member's language up to date.

The detector is lingua (offline, no network), limited to the supported languages' detector
codes (``bot/locales/*.toml``) and built once, on first use. Members mix languages: an English
or Arabic question often carries a Swedish name ("föreningsregistret", "LOK-stöd"), and a word
with å, ä or ö alone would make lingua say Swedish. So the text is split into single-language
sections and the language of most of its words wins, only when it has a clear majority; short
texts decide nothing. A member who chose a language with /language keeps it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlmodel import Session

from bot.models import Member

if TYPE_CHECKING:
    import lingua

logger = logging.getLogger(__name__)

# Fewer words than this, or fewer letters, and the member's language stays as it is:
# "ok", "tack!", "LOK-stöd?" or a name says nothing about the language they read.
MIN_WORDS = 3
MIN_LETTERS = 10
# The winning language must have at least this share of the text's words.
MIN_SHARE = 0.6
_WORD = re.compile(r"[^\W\d_]+")


class LanguageSource(StrEnum):
    """Where a member's language came from; only ``chosen`` stops detection."""

    TELEGRAM = "telegram"  # the Telegram client's language, on first contact
    DETECTED = "detected"  # from what the member wrote
    CHOSEN = "chosen"  # the member picked it with /language


class LanguageDetector:
    """lingua for the given languages (locale code → ISO 639-1 code), built on first use."""

    def __init__(self, detector_codes: Mapping[str, str], *, low_accuracy: bool = True) -> None:
        self._codes = dict(detector_codes)
        self._low_accuracy = low_accuracy
        self._lock = threading.Lock()
        self._detector: lingua.LanguageDetector | None = None
        self._by_iso: dict[str, str] = {}
        self.build_seconds: float | None = None

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._codes)

    @classmethod
    def for_supported_languages(cls) -> LanguageDetector:
        from bot.texts import languages, locale

        return cls({code: locale(code).detector for code in languages()})

    def _built(self) -> lingua.LanguageDetector:
        if self._detector is not None:
            return self._detector
        with self._lock:
            if self._detector is None:
                started = time.perf_counter()
                from lingua import IsoCode639_1, LanguageDetectorBuilder

                iso = {code: IsoCode639_1.from_str(value) for code, value in self._codes.items()}
                builder = LanguageDetectorBuilder.from_iso_codes_639_1(*iso.values())
                if self._low_accuracy:
                    # Trigram models only: about 20 MB instead of 100 MB, and on members'
                    # questions as accurate as the full models (bench/language_detection.py).
                    builder = builder.with_low_accuracy_mode()
                detector = builder.build()
                self._by_iso = {value.name.lower(): code for code, value in iso.items()}
                # Models load on the first detection; do it now, under the lock, once.
                detector.detect_language_of("warm up")
                self.build_seconds = time.perf_counter() - started
                logger.info(
                    "language detector for %s ready in %.2f s",
                    ", ".join(self._codes),
                    self.build_seconds,
                )
                self._detector = detector
        assert self._detector is not None
        return self._detector

    def detect(self, text: str) -> str | None:
        """The supported language most of ``text`` is written in; ``None`` when unsure."""
        words = _WORD.findall(text)
        if len(words) < MIN_WORDS or sum(len(word) for word in words) < MIN_LETTERS:
            return None
        sections = self._built().detect_multiple_languages_of(text)
        counts: Counter[str] = Counter()
        for section in sections:
            code = self._by_iso.get(section.language.iso_code_639_1.name.lower())
            if code is not None:
                counts[code] += section.word_count
        if not counts:
            return None
        language, count = counts.most_common(1)[0]
        return language if count / sum(counts.values()) >= MIN_SHARE else None


def observe_language(
    *, session: Session, user_id: int, text: str, detector: LanguageDetector
) -> Member | None:
    """The member after reading ``text``: a clear other language becomes their language
    (``detected``); a language the member chose with /language is never overridden."""
    member = session.get(Member, user_id)
    if member is not None and follow_language(member, text, detector):
        session.add(member)
        session.commit()
    return member


def follow_language(member: Member, text: str, detector: LanguageDetector) -> bool:
    """``observe_language`` on a member in hand (not written); whether the language changed."""
    if member.language_source == LanguageSource.CHOSEN:
        return False
    detected = detector.detect(text)
    if detected is None or detected == member.language:
        return False
    logger.info("member %s writes in %s (was %s)", member.id, detected, member.language)
    member.language = detected
    member.language_source = LanguageSource.DETECTED
    return True
