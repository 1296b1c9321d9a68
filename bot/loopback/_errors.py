"""Errors raised inside the loopback Bot API server and by its client API."""

from __future__ import annotations

from typing import Any


class LoopbackError(RuntimeError):
    """Misuse of the test-side API (a button that is not there, an unknown chat, a timeout)."""


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(
        self,
        error_code: int,
        description: str,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{error_code} {description}")
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        """The JSON body Telegram sends for this error."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = dict(self.parameters)
        return body


def bad_request(detail: str) -> ApiError:
    """A 400 answer whose description is ``"Bad Request: <detail>"``."""
    return ApiError(400, f"Bad Request: {detail}")


def forbidden(detail: str) -> ApiError:
    """A 403 answer whose description is ``"Forbidden: <detail>"``."""
    return ApiError(403, f"Forbidden: {detail}")


def conflict(detail: str) -> ApiError:
    """A 409 answer whose description is ``"Conflict: <detail>"``."""
    return ApiError(409, f"Conflict: {detail}")


def unauthorized() -> ApiError:
    """What Telegram answers for a token it does not know."""
    return ApiError(401, "Unauthorized")


def method_not_found() -> ApiError:
    """What Telegram answers for a method name it does not know."""
    return ApiError(404, "Not Found: method not found")
