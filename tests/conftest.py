"""Fixtures shared across the test packages: the shipped routing and a temporary database."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlmodel import Session

from bot.app import Services, build_services, serving
from bot.config import Settings, load_settings
from bot.db import create_schema, make_engine
from bot.loopback import LoopbackBotApi
from bot.services.conversation import ConversationPolicy
from bot.services.office_hours import OfficeHours
from knowledge.loading import Routing, load_routing

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shipped_routing() -> Routing:
    """The routing table and knowledge base as shipped, built once for the whole run."""
    return load_routing(ROOT / "routing_rules.yaml", ROOT / "knowledge" / "articles")


# The whole suite runs on SQLite, and again on PostgreSQL when .ci/run sets this.
SUITE_DATABASE_URL = os.environ.get("TEST_SUITE_DATABASE_URL")


def database_url(tmp_path: Path) -> str:
    return SUITE_DATABASE_URL or f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = make_engine(database_url(tmp_path))
    if SUITE_DATABASE_URL:
        fresh_schema(engine)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: sa.Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def policy() -> ConversationPolicy:
    return ConversationPolicy(
        hours=OfficeHours(zone=ZoneInfo("Europe/Stockholm")), business_days=2, follow_up_minutes=15
    )


POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")


def fresh_schema(engine: sa.Engine) -> None:
    """An empty PostgreSQL test database: tables, enum types and the migration version."""
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, engine: sa.Engine) -> Iterator[sa.Engine]:
    """The same test on SQLite and on PostgreSQL (``TEST_POSTGRES_URL``, set by .ci/run)."""
    if request.param == "sqlite":
        yield engine
        return
    if not POSTGRES_URL:
        pytest.skip("TEST_POSTGRES_URL is not set (.ci/run sets it)")
    pg = make_engine(POSTGRES_URL)
    fresh_schema(pg)
    create_schema(pg)
    yield pg
    fresh_schema(pg)
    pg.dispose()


TOKEN = "777000:AAE_e2e-test-token"


@pytest.fixture
async def api() -> AsyncIterator[LoopbackBotApi]:
    """The project's loopback Telegram Bot API server on 127.0.0.1."""
    async with LoopbackBotApi(TOKEN) as server:
        yield server


@pytest.fixture
def settings(api: LoopbackBotApi, tmp_path: Path, engine: sa.Engine) -> Settings:
    return load_settings(
        _env_file=None,
        telegram_bot_token=TOKEN,
        telegram_api_url=api.base_url,
        telegram_file_url=api.base_file_url,
        database_url=database_url(tmp_path),
        rules_path=ROOT / "routing_rules.yaml",
        knowledge_path=ROOT / "knowledge" / "articles",
    )


def services_with_threads(settings: Settings, routing: Routing, threads: int) -> Services:
    """Services whose ``call`` has ``threads`` database threads (0: on the event loop)."""
    return build_services(settings.model_copy(update={"database_threads": threads}), routing)


@pytest.fixture
def services(settings: Settings, shipped_routing: Routing) -> Iterator[Services]:
    services = build_services(settings, routing=shipped_routing)
    yield services
    services.close()


@contextlib.asynccontextmanager
async def running_bot(
    settings: Settings, services: Services, *, webhook_port: int = 0
) -> AsyncIterator[Any]:
    """The real Application, started as `concierge run` starts it, stopped at the end."""
    if webhook_port and settings.webhook_secret is None:
        settings = settings.model_copy(update={"webhook_secret": SecretStr("e2e-secret")})
    async with serving(settings, services, webhook_port=webhook_port, poll_timeout=1) as app:
        yield app
