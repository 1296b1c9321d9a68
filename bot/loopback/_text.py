"""Message text as Telegram treats it: HTML parse mode, entities, trimming, limits.

:func:`parse_html` follows tdlib's ``parse_html`` (``td/telegram/MessageEntity.cpp``),
including its error messages and UTF-8 byte offsets, so a bot that passes here fails
and succeeds where Telegram would. One deliberate difference, on by default
(``strict_ampersand``): Telegram keeps a ``&`` that does not start an entity as a
literal character, while the loopback rejects it, because such a text is nearly
always an unescaped value that will break as soon as it contains ``<``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ._errors import ApiError, bad_request

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024

_ALLOWED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SPACES = frozenset(" \t\r\n\v")
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
# tdlib's MessageEntity::get_type_priority, used to order entities sharing a range.
_PRIORITY = {
    "blockquote": 0,
    "expandable_blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "text_mention": 49,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}
_SIMPLE = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_BOT_COMMAND = re.compile(r"(?<![\w/<>])/[a-zA-Z0-9_]{1,64}(?:@[a-zA-Z0-9_]{3,32})?(?![\w/<>])")
_MENTION = re.compile(r"(?<!\w)@[a-zA-Z0-9_]{2,32}(?!\w)")
_URL = re.compile(r"(?<![\w@])https?://[^\s<>\"]+[^\s<>\".,;:!?)\]'\"]")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _entities_error(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


@dataclass
class _Open:
    tag: str
    argument: str
    offset: int
    text_start: int
    expandable: bool = False


@dataclass
class _Parser:
    source: str
    strict_ampersand: bool
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    out: list[str] = field(default_factory=list)
    out_len: int = 0
    utf16: int = 0
    entities: list[dict[str, Any]] = field(default_factory=list)

    def at(self, index: int) -> str:
        return self.source[index] if index < len(self.source) else ""

    def is_space(self, index: int) -> bool:
        char = self.at(index)
        return char == "" or char in _SPACES

    def decode_entity(self, pos: int) -> tuple[str, int] | None:
        """tdlib's decode_html_entity: the character and the position after it, or None."""
        end = pos + 1
        if self.at(end) == "#":
            end += 1
            value = 0
            if self.at(end) == "x":
                end += 1
                while self.at(end) and self.at(end) in "0123456789abcdefABCDEF":
                    value = value * 16 + int(self.at(end), 16)
                    end += 1
            else:
                while self.at(end) and self.at(end) in "0123456789":
                    value = value * 10 + int(self.at(end))
                    end += 1
            if value == 0 or value >= 0x10FFFF or end - pos >= 10:
                return None
            char = chr(value)
        else:
            while self.at(end).isascii() and self.at(end).isalpha():
                end += 1
            name = self.source[pos + 1 : end]
            if name not in _NAMED_ENTITIES:
                return None
            char = _NAMED_ENTITIES[name]
        if self.at(end) == ";":
            end += 1
        return char, end

    def emit(self, char: str) -> None:
        self.out.append(char)
        self.out_len += len(char)
        self.utf16 += utf16_len(char)

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        stack: list[_Open] = []
        i = 0
        size = len(self.source)
        while i < size:
            char = self.source[i]
            if char == "&":
                decoded = self.decode_entity(i)
                if decoded is not None:
                    self.emit(decoded[0])
                    i = decoded[1]
                    continue
                if self.strict_ampersand:
                    raise _entities_error(
                        f'character "&" at byte offset {_byte_offset(self.source, i)} '
                        'does not start an entity; escape it as "&amp;"'
                    )
            if char != "<":
                self.emit(char)
                i += 1
                continue
            begin = i
            i += 1
            if self.at(i) != "/":
                opened, i = self.start_tag(begin, i)
                stack.append(opened)
            else:
                i = self.end_tag(begin, i, stack)
            i += 1
        if stack:
            raise _entities_error(f"Can't find end tag corresponding to start tag {stack[-1].tag}")
        for entity in self.entities:
            if entity["type"] == "code":
                entity.pop("language", None)
        self.entities.sort(key=lambda e: (e["offset"], -e["length"], _PRIORITY.get(e["type"], 50)))
        return "".join(self.out), self.entities

    def start_tag(self, begin: int, i: int) -> tuple[_Open, int]:
        offset = _byte_offset(self.source, begin)
        while not self.is_space(i) and self.at(i) != ">":
            i += 1
        if self.at(i) == "":
            raise _entities_error(f"Unclosed start tag at byte offset {offset}")
        tag = self.source[begin + 1 : i].lower()
        if tag not in _ALLOWED_TAGS:
            raise _entities_error(f'Unsupported start tag "{tag}" at byte offset {offset}')
        argument = ""
        expandable = False
        while self.at(i) != ">":
            while self.at(i) != "" and self.is_space(i):
                i += 1
            if self.at(i) == ">":
                break
            name_start = i
            while not self.is_space(i) and self.at(i) not in ("=", ">"):
                i += 1
            name = self.source[name_start:i]
            if not name:
                raise _entities_error(
                    f'Empty attribute name in the tag "{tag}" at byte offset {offset}'
                )
            while self.at(i) != "" and self.is_space(i):
                i += 1
            if self.at(i) != "=":
                if tag == "blockquote" and name == "expandable" and self.at(i) != "":
                    expandable = True
                    continue
                raise _entities_error(
                    "Expected equal sign in declaration of an attribute of the tag "
                    f'"{tag}" at byte offset {offset}'
                )
            i += 1
            while self.at(i) != "" and self.is_space(i):
                i += 1
            if self.at(i) == "":
                raise _entities_error(f'Unclosed start tag "{tag}" at byte offset {offset}')
            value_chars: list[str] = []
            if self.at(i) not in ("'", '"'):
                token_start = i
                while self.at(i) != "" and (self.at(i) in _ASCII_ALNUM or self.at(i) in ".-"):
                    i += 1
                value = self.source[token_start:i].lower()
                if not self.is_space(i) and self.at(i) != ">":
                    raise _entities_error(
                        "Unexpected end of name token at byte offset "
                        f"{_byte_offset(self.source, token_start)}"
                    )
            else:
                quote = self.at(i)
                i += 1
                while self.at(i) != quote and self.at(i) != "":
                    if self.at(i) == "&":
                        decoded = self.decode_entity(i)
                        if decoded is not None:
                            value_chars.append(decoded[0])
                            i = decoded[1]
                            continue
                    value_chars.append(self.at(i))
                    i += 1
                if self.at(i) == quote:
                    i += 1
                value = "".join(value_chars)
            if self.at(i) == "":
                raise _entities_error(f"Unclosed start tag at byte offset {offset}")
            if tag == "a" and name == "href":
                argument = value
            elif tag == "code" and name == "class" and value.startswith("language-"):
                argument = value.removeprefix("language-")
            elif tag == "span" and name == "class" and value.startswith("tg-"):
                argument = value.removeprefix("tg-")
            elif tag == "tg-emoji" and name == "emoji-id":
                argument = value
        if tag == "span" and argument != "spoiler":
            raise _entities_error(
                f'Tag "span" must have class "tg-spoiler" at byte offset {offset}'
            )
        return _Open(tag, argument, self.utf16, self.out_len, expandable), i

    def end_tag(self, begin: int, i: int, stack: list[_Open]) -> int:
        offset = _byte_offset(self.source, begin)
        if not stack:
            raise _entities_error(f"Unexpected end tag at byte offset {offset}")
        while not self.is_space(i) and self.at(i) != ">":
            i += 1
        end_name = self.source[begin + 2 : i].lower()
        while self.at(i) != "" and self.is_space(i):
            i += 1
        if self.at(i) != ">":
            raise _entities_error(f"Unclosed end tag at byte offset {offset}")
        opened = stack.pop()
        if end_name and end_name != opened.tag:
            raise _entities_error(
                f'Unmatched end tag at byte offset {offset}, expected "</{opened.tag}>", '
                f'found "</{end_name}>"'
            )
        if self.utf16 > opened.offset:
            self.add_entity(opened)
        return i

    def add_entity(self, opened: _Open) -> None:
        offset, length = opened.offset, self.utf16 - opened.offset
        base: dict[str, Any] = {"offset": offset, "length": length}
        tag = opened.tag
        last = self.entities[-1] if self.entities else None
        same_range = last is not None and last["offset"] == offset and last["length"] == length
        if tag in _SIMPLE:
            self.entities.append({"type": _SIMPLE[tag], **base})
        elif tag == "blockquote":
            kind = "expandable_blockquote" if opened.expandable else "blockquote"
            self.entities.append({"type": kind, **base})
        elif tag == "tg-emoji":
            if not opened.argument.isdigit() or int(opened.argument) == 0:
                raise _entities_error("Invalid custom emoji identifier specified")
            self.entities.append(
                {"type": "custom_emoji", **base, "custom_emoji_id": opened.argument}
            )
        elif tag == "a":
            url = opened.argument or "".join(self.out)[opened.text_start :]
            self.add_link(base, url)
        elif tag == "pre":
            if same_range and last is not None and last["type"] == "code" and last.get("language"):
                last["type"] = "pre"
            else:
                self.entities.append({"type": "pre", **base})
        elif tag == "code":
            if same_range and last is not None and last["type"] == "pre" and opened.argument:
                last["language"] = opened.argument
            else:
                entity = {"type": "code", **base}
                if opened.argument:
                    entity["language"] = opened.argument
                self.entities.append(entity)

    def add_link(self, base: dict[str, Any], url: str) -> None:
        url = url.strip()
        match = re.fullmatch(r"tg://user\?id=(\d+)", url)
        if match:
            user_id = int(match.group(1))
            user = self.users.get(user_id, {"id": user_id, "is_bot": False, "first_name": "User"})
            self.entities.append({"type": "text_mention", **base, "user": dict(user)})
            return
        scheme = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*):", url)
        if scheme is None:
            if "." not in url or " " in url:
                return  # Telegram silently drops links it cannot check.
            url = f"http://{url}"
        elif scheme.group(1).lower() not in ("http", "https", "tg", "ton", "mailto"):
            return
        self.entities.append({"type": "text_link", **base, "url": url})


def parse_html(
    text: str,
    *,
    strict_ampersand: bool = True,
    users: dict[int, dict[str, Any]] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-flavoured HTML into plain text and Bot API entities.

    Raises :class:`ApiError` (400 ``Bad Request: can't parse entities: ...``).
    """
    parser = _Parser(text, strict_ampersand, dict(users or {}))
    return parser.run()


def check_entities(raw: object, name: str) -> list[dict[str, Any]]:
    """Validate an explicit ``entities``/``caption_entities`` list."""
    if not isinstance(raw, list):
        raise bad_request(f"can't parse {name} JSON object")
    out: list[dict[str, Any]] = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("type"), str)
            or not isinstance(item.get("offset"), int)
            or not isinstance(item.get("length"), int)
        ):
            raise bad_request(f"can't parse {name}: entity must have type, offset and length")
        out.append(dict(item))
    return out


def trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Strip surrounding whitespace as Telegram does, shifting and clipping entities."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    total = utf16_len(stripped)
    kept: list[dict[str, Any]] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


def format_text(
    text: str | None,
    parse_mode: str | None,
    entities: list[dict[str, Any]] | None,
    *,
    strict_ampersand: bool,
    users: dict[int, dict[str, Any]] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Turn ``text`` + ``parse_mode``/``entities`` into what a Message carries."""
    if not text:
        return "", []
    if entities is not None:
        plain, found = text, entities
    elif parse_mode is None or parse_mode == "":
        plain, found = text, []
    else:
        mode = parse_mode.lower()
        if mode == "html":
            plain, found = parse_html(text, strict_ampersand=strict_ampersand, users=users)
        elif mode in ("markdown", "markdownv2"):
            # Not parsed: the text is kept as sent, without entities.
            plain, found = text, []
        else:
            raise bad_request("unsupported parse_mode")
    return trim(plain, found)


def detect_entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram finds by itself in a person's text: commands, mentions, URLs."""
    found: list[dict[str, Any]] = []
    for kind, pattern in (("bot_command", _BOT_COMMAND), ("mention", _MENTION), ("url", _URL)):
        for match in pattern.finditer(text):
            found.append(
                {
                    "type": kind,
                    "offset": utf16_len(text[: match.start()]),
                    "length": utf16_len(match.group(0)),
                }
            )
    found.sort(key=lambda e: (e["offset"], -e["length"]))
    return found
