"""The made-up people of the sandbox and the coordinator group they work in."""

from __future__ import annotations

from dataclasses import dataclass

from bot.loopback import LoopbackBotApi


@dataclass(frozen=True)
class Character:
    """A made-up Telegram user: an association member, or a coordinator who is also an admin."""

    user_id: int
    first_name: str
    language_code: str
    #: The association (members) or the role (coordinators), shown beside the name.
    affiliation: str
    coordinator: bool = False

    @property
    def label(self) -> str:
        return f"{self.first_name} ({self.affiliation})"

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.user_id,
            "first_name": self.first_name,
            "language_code": self.language_code,
            "affiliation": self.affiliation,
            "label": self.label,
            "role": "coordinator" if self.coordinator else "member",
            "admin": self.coordinator,
        }


#: Association members first (the page starts with the first one), then the coordinators.
#: Names and associations are invented; their languages are what their Telegram apps say.
CHARACTERS: tuple[Character, ...] = (
    Character(9201, "Erik", "sv", "IFK Sundsvik, fotboll"),
    Character(9202, "Amira", "ar", "Arabiska kulturföreningen"),
    Character(9203, "Sarah", "en", "Öresund English Theatre"),
    Character(9204, "Gunnel", "sv", "Seniorklubben Pålsjö"),
    Character(9101, "Karin", "sv", "föreningssamordnare", coordinator=True),
    Character(9102, "Johan", "sv", "föreningssamordnare", coordinator=True),
)

DESK_TITLE = "Föreningssamordnare · Helsingborgs stad"


@dataclass(frozen=True)
class Cast:
    """Who is in the sandbox: the characters, and the coordinator group's chat id."""

    characters: tuple[Character, ...]
    desk_chat_id: int

    @property
    def coordinators(self) -> tuple[Character, ...]:
        return tuple(c for c in self.characters if c.coordinator)

    @property
    def members(self) -> tuple[Character, ...]:
        return tuple(c for c in self.characters if not c.coordinator)

    def character(self, user_id: int) -> Character | None:
        return next((c for c in self.characters if c.user_id == user_id), None)


def create_cast(
    api: LoopbackBotApi, characters: tuple[Character, ...] = CHARACTERS, *, forum: bool = True
) -> Cast:
    """Create the people and the coordinator group (a forum; the first coordinator owns it)."""
    for character in characters:
        api.person(character.user_id, character.first_name, language_code=character.language_code)
    coordinators = [c.user_id for c in characters if c.coordinator]
    group = api.create_supergroup(
        DESK_TITLE,
        forum=forum,
        owner=coordinators[0] if coordinators else None,
        admins=coordinators[1:],
    )
    return Cast(characters=characters, desk_chat_id=int(group["id"]))
