"""`concierge sandbox`: try the bot in a browser, without Telegram.

The project's loopback Bot API server plays Telegram on 127.0.0.1, a few made-up members and
coordinators live in it, the real bot runs against it, and a web page shows their chats: a
member's private chat with the bot on one side, the coordinator group with its topics on the
other. The bot cannot tell the difference from Telegram.
"""

from bot.sandbox.cast import CHARACTERS, Cast, Character, create_cast
from bot.sandbox.runner import Sandbox, serve
from bot.sandbox.web import make_web_app

__all__ = ["CHARACTERS", "Cast", "Character", "Sandbox", "create_cast", "make_web_app", "serve"]
