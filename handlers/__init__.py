"""Telegram handlers, one module per feature, each with ``register(app)``."""

from __future__ import annotations

from typing import Any

from telegram.ext import Application


def register_all(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    from handlers import (
        admin,
        announce,
        desk,
        errors,
        malformed,
        media,
        member,
        privacy,
        question,
        registry,
        updates,
    )

    malformed.register(app)
    updates.register(app)
    member.register(app)
    admin.register(app)
    registry.register(app)
    announce.register(app)
    privacy.register(app)
    desk.register(app)  # before question: its button handler catches whatever is left
    question.register(app)
    media.register(app)
    member.register_fallbacks(app)
    errors.register(app)
