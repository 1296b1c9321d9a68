"""Settings from the environment (and an optional `.env`), validated once at start."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.services.office_hours import OfficeHours
from knowledge.loading import default_knowledge_path, default_questions_path, default_rules_path

_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class Settings(BaseSettings):
    """Everything the bot needs to start; a bad value stops the start naming the variable."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    telegram_bot_token: SecretStr
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_file_url: str | None = None
    # Messages per second to Telegram overall (its limit is about 30).
    telegram_rate: float = Field(default=27.0, gt=0, le=10_000)
    # A member sending more messages than this within a minute is asked to slow down (0: off).
    member_messages_per_minute: int = Field(default=20, ge=0, le=10_000)
    # Updates handled at once by one instance (one member's updates always one after another).
    concurrent_updates: int = Field(default=16, ge=1, le=1000)
    # Threads for database work; 0: on the event loop's thread (none given: 0 on SQLite, else
    # the CPU count + 4, at most 32).
    database_threads: int | None = Field(default=None, ge=0, le=64)
    # How often an instance that does not lead tries to take the lead (the scheduled work).
    leader_check_seconds: float = Field(default=10.0, gt=0, le=300)
    database_url: str = "sqlite:///foreningslotsen.sqlite3"
    coordinator_chat_id: int | None = None
    admin_user_ids: Annotated[tuple[int, ...], NoDecode] = ()
    # Who works cases: these ids, and (always) the members of the coordinator group.
    coordinator_user_ids: Annotated[tuple[int, ...], NoDecode] = ()
    rules_path: Path = Field(default_factory=default_rules_path)
    knowledge_path: Path = Field(default_factory=default_knowledge_path)
    timezone: str = "Europe/Stockholm"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    # Several instances on one machine listen on the same port and the kernel spreads the
    # connections between them (SO_REUSEPORT): one process per core.
    webhook_reuse_port: bool = False
    # What members are promised: an answer from a person within this many business days.
    response_business_days: int = Field(default=2, ge=1, le=30)
    # A message within this many minutes of a case confirmation belongs to that case.
    follow_up_minutes: int = Field(default=15, ge=0, le=24 * 60)
    # How long case records (public records) are kept: set by the city's retention decision
    # (gallringsbeslut); this default is an example to verify.
    case_retention_days: int = Field(default=730, ge=1, le=36500)
    # Questions the bot answered without a person, and their feedback (operational data).
    question_retention_days: int = Field(default=30, ge=1, le=36500)
    # A member's message this many days after a case was closed can reopen it.
    reopen_days: int = Field(default=14, ge=0, le=365)
    # A coordinator's message in a case topic starting with this stays on the desk.
    internal_prefix: str = Field(default="#intern", min_length=1, max_length=32)
    office_opens: time = time(8, 0)
    office_closes: time = time(17, 0)
    # The desk is reminded this many office hours before a deadline, and again when it passes.
    reminder_hours_before: float = Field(default=4.0, ge=0, le=100)
    # A weekday morning digest of the queue, at this local time.
    digest_time: time = time(8, 0)
    # The regression check on every reload: the project's question set and when to hold back.
    questions_path: Path = Field(default_factory=default_questions_path)
    min_correct: float = Field(default=0.85, ge=0, le=1)
    min_answer_precision: float = Field(default=0.97, ge=0, le=1)
    max_drop: float = Field(default=0.01, ge=0, le=1)
    # How often the rules file and the knowledge base are checked for changes (seconds).
    rules_watch_seconds: float = Field(default=10.0, gt=0, le=3600)
    privacy_url: str = "https://helsingborg.se/personuppgifter"
    responsible: str = "Kommunstyrelsen, Helsingborgs stad"

    @field_validator("admin_user_ids", "coordinator_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [part for part in re.split(r"[,\s]+", value.strip()) if part]
            try:
                return tuple(int(part) for part in parts)
            except ValueError:
                raise ValueError("write user ids as numbers separated by commas") from None
        return value

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not re.fullmatch(r"\d+:[A-Za-z0-9_-]{10,}", value.get_secret_value()):
            raise ValueError("expected the token BotFather gave, like 123456:ABC-DEF1234ghIkl")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}', e.g. Europe/Stockholm") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.office_opens >= self.office_closes:
            raise ValueError("OFFICE_OPENS must be before OFFICE_CLOSES")
        if self.webhook_url:
            if urlsplit(self.webhook_url).scheme not in ("http", "https"):
                raise ValueError("WEBHOOK_URL must be an http(s) address")
            if self.webhook_secret is None:
                raise ValueError("WEBHOOK_SECRET is required when WEBHOOK_URL is set")
            if not _SECRET_RE.match(self.webhook_secret.get_secret_value()):
                raise ValueError("WEBHOOK_SECRET may hold 1-256 of A-Z, a-z, 0-9, _ and -")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def office_hours(self) -> OfficeHours:
        return OfficeHours(zone=self.zone, opens=self.office_opens, closes=self.office_closes)

    @property
    def webhook_path(self) -> str:
        return urlsplit(self.webhook_url or "").path.lstrip("/")


class SettingsInvalid(Exception):
    """Configuration that cannot start the bot; the message names each variable."""


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            variable = "_".join(str(part) for part in error["loc"]).upper() or "configuration"
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "missing":
                message = "is not set"
            lines.append(f"{variable}: {message}")
        raise SettingsInvalid("\n".join(lines)) from None
