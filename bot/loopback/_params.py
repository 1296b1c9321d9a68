"""Decoding Bot API request parameters the way Telegram does.

A Bot API call may carry its parameters in the query string, as a JSON body, as
``application/x-www-form-urlencoded`` or as ``multipart/form-data``. In the two form
encodings every value is a string: python-telegram-bot sends strings as they are and
JSON-encodes everything else (numbers, booleans, objects, arrays), so ``chat_id=42``,
``disable_notification=true`` and ``reply_markup={"inline_keyboard": ...}``. Which
parameters are JSON is therefore a property of the parameter, not of the value: a text
that happens to read ``[1]`` must stay a string. :class:`Params` decodes on access,
through typed accessors that know what they expect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._errors import bad_request

_INTEGER = re.compile(r"[+-]?\d+\Z")

#: Parameters whose form-encoded value is a JSON document.
JSON_PARAMETERS = frozenset(
    {
        "reply_markup",
        "reply_parameters",
        "link_preview_options",
        "entities",
        "caption_entities",
        "commands",
        "scope",
        "allowed_updates",
        "media",
        "permissions",
        "results",
        "options",
    }
)


@dataclass(frozen=True)
class Upload:
    """A file sent in a ``multipart/form-data`` part."""

    filename: str
    content: bytes
    content_type: str


class Params:
    """The parameters of one Bot API call, decoded on access."""

    def __init__(self, values: Mapping[str, object]) -> None:
        self.raw: dict[str, object] = dict(values)

    def has(self, name: str) -> bool:
        """Whether the parameter is present with a non-empty value."""
        value = self.raw.get(name)
        return value is not None and value != ""

    def text(self, name: str, *, required: bool = False, empty: str | None = None) -> str | None:
        """A string parameter; ``empty`` is the error detail when it is required but missing."""
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(empty or f"{name} is empty")
            return None
        if isinstance(value, Upload):
            raise bad_request(f"{name} must be a String")
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float | str):
            return str(value)
        raise bad_request(f"{name} must be a String")

    def integer(
        self, name: str, *, required: bool = False, empty: str | None = None
    ) -> int | None:
        """An integer parameter (a JSON number or a decimal string)."""
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(empty or f"{name} is empty")
            return None
        if isinstance(value, bool):
            raise bad_request(f"{name} must be an Integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INTEGER.match(value.strip()):
            return int(value.strip())
        raise bad_request(f"{name} must be an Integer")

    def number(self, name: str) -> float | None:
        """A (possibly fractional) number parameter."""
        value = self.raw.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise bad_request(f"{name} must be a Number")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise bad_request(f"{name} must be a Number")

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean parameter (``true``/``false``, ``1``/``0`` or a JSON boolean)."""
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value != 0
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "1"):
                return True
            if lowered in ("false", "0"):
                return False
        raise bad_request(f"{name} must be a Boolean")

    def json(self, name: str, *, required: bool = False) -> Any:
        """A JSON-valued parameter (an object or array, or its JSON-encoded string)."""
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(f"{name} is empty")
            return None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object") from None
        if isinstance(value, Upload):
            raise bad_request(f"can't parse {name} JSON object")
        return value

    def json_object(self, name: str, *, required: bool = False) -> dict[str, Any] | None:
        """A parameter that must be a JSON object."""
        value = self.json(name, required=required)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise bad_request(f"can't parse {name} JSON object")
        return value

    def json_list(self, name: str, *, required: bool = False) -> list[Any] | None:
        """A parameter that must be a JSON array."""
        value = self.json(name, required=required)
        if value is None:
            return None
        if not isinstance(value, list):
            raise bad_request(f"can't parse {name} JSON object")
        return value

    def chat_id(self, name: str = "chat_id") -> int | str:
        """A chat identifier: an integer or ``@username``."""
        value = self.raw.get(name)
        if value is None or value == "":
            raise bad_request(f"{name} is empty")
        if isinstance(value, bool):
            raise bad_request("chat not found")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            stripped = value.strip()
            if _INTEGER.match(stripped):
                return int(stripped)
            if stripped.startswith("@") and len(stripped) > 1:
                return stripped
        raise bad_request("chat not found")

    def file(self, name: str) -> Upload | str | None:
        """A file parameter: an upload (directly or via ``attach://``) or a file_id/URL."""
        value = self.raw.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, Upload):
            return value
        if isinstance(value, str):
            if value.startswith("attach://"):
                attached = self.raw.get(value.removeprefix("attach://"))
                if isinstance(attached, Upload):
                    return attached
                raise bad_request(f"file {value} not found in the request")
            return value
        raise bad_request(f"wrong type of the {name} parameter")

    def snapshot(self) -> dict[str, Any]:
        """The parameters as a test would like to read them: JSON parameters decoded,
        numbers and booleans of the form encodings left as strings, uploads summarised."""
        out: dict[str, Any] = {}
        for name, value in self.raw.items():
            if isinstance(value, Upload):
                out[name] = {
                    "upload": value.filename,
                    "size": len(value.content),
                    "content_type": value.content_type,
                }
            elif name in JSON_PARAMETERS and isinstance(value, str):
                try:
                    out[name] = json.loads(value)
                except ValueError:
                    out[name] = value
            else:
                out[name] = value
        return out


async def read_params(request: web.Request) -> Params:
    """Collect the parameters of a request from its query string and its body."""
    values: dict[str, object] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        content_type = request.content_type
        if content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad_request("can't parse JSON body") from None
            if body is not None and not isinstance(body, dict):
                raise bad_request("JSON body must be an object")
            values.update(body or {})
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for name, item in form.items():
                if isinstance(item, web.FileField):
                    values[name] = Upload(
                        filename=item.filename,
                        content=item.file.read(),
                        content_type=item.content_type,
                    )
                elif isinstance(item, str):
                    values[name] = item
                else:
                    values[name] = bytes(item).decode("utf-8", "replace")
    return Params(values)
