"""Fixtures shared across the test packages: the shipped routing and a temporary database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from bot.db import create_schema, make_engine
from bot.services.conversation import ConversationPolicy
from knowledge.loading import Routing, load_routing

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shipped_routing() -> Routing:
    """The routing table and knowledge base as shipped, built once for the whole run."""
    return load_routing(ROOT / "routing_rules.yaml", ROOT / "knowledge" / "articles")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'test.sqlite3'}")
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
        zone=ZoneInfo("Europe/Stockholm"), business_days=2, follow_up_minutes=15
    )
