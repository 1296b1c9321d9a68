"""Broadcast throughput: an announcement to N subscribers through the outbox.

The real bot runs against the loopback Bot API server with Telegram's flood control enforced
(about 30 messages a second overall, one a second per chat: faster sending gets 429
``retry_after``). Prints the sustained rate, the 429s met, and the delivery counts.

    python bench/broadcast.py [--subscribers 2000] [--rate 28]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from sqlmodel import Session

from bot.app import build_application, build_services
from bot.config import load_settings
from bot.loopback import LoopbackBotApi
from bot.services import associations, members, outbox

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:BENCH-broadcast-token"


class ServerThread:
    """The loopback server on its own event loop in a thread, as Telegram is another machine:
    its work then does not delay the bot's pacing."""

    def __init__(self) -> None:
        self.api = LoopbackBotApi(TOKEN)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LoopbackBotApi:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.api.start(), self.loop).result(timeout=30)
        return self.api

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.api.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


async def run(subscribers: int, rate: float, enforce: bool = True) -> dict[str, float]:
    with ServerThread() as api:
        if enforce:
            api.enforce_limits(overall_per_second=30, per_chat_interval=1.0)
        folder = Path(tempfile.mkdtemp())
        settings = load_settings(
            _env_file=None,
            telegram_bot_token=TOKEN,
            telegram_api_url=api.base_url,
            telegram_file_url=api.base_file_url,
            database_url=f"sqlite:///{folder / 'bench.sqlite3'}",
            rules_path=ROOT / "routing_rules.yaml",
            knowledge_path=ROOT / "knowledge" / "articles",
            telegram_rate=rate,
        )
        services = build_services(settings)
        ids = range(100_000, 100_000 + subscribers)
        with Session(services.engine, expire_on_commit=False) as session:
            for member_id in ids:
                api.person(member_id, "M")
                members.touch_member(
                    session=session, user_id=member_id, first_name="M", language_code="sv"
                )
                associations.set_subscription(
                    session=session, member_id=member_id, topic="nyheter", on=True
                )
            broadcast = outbox.create_broadcast(
                session=session, kind="announcement", topic="nyheter", title="Bench", text="Bench"
            )
        app = build_application(settings, services)
        await app.initialize()
        assert app.post_init is not None
        await app.post_init(app)
        await app.start()
        started = time.perf_counter()
        try:
            while True:
                with Session(services.engine) as session:
                    state = outbox.progress(session=session, broadcast_id=broadcast.id or 0)
                if state.done:
                    break
                await asyncio.sleep(0.2)
        finally:
            elapsed = time.perf_counter() - started
            await app.stop()
            await app.shutdown()
        delivered = Counter(len(api.messages(member_id)) for member_id in ids)
        sends = sorted(r.at for r in api.requests if r.method == "sendMessage" and r.status == 200)
        refusals = api.flood_refusals
    sent = state.counts.get("sent", 0)
    return {
        "subscribers": subscribers,
        "seconds": elapsed,
        "rate": sent / elapsed,
        "sustained": (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 else 0.0,
        "sent": sent,
        "flood_429": refusals,
        "twice": sum(count for times, count in delivered.items() if times > 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument(
        "--rate", type=float, default=28.0, help="The bot's own overall limit (TELEGRAM_RATE)."
    )
    parser.add_argument(
        "--no-limits",
        action="store_true",
        help="Let the server accept any rate (measures the pipeline itself).",
    )
    args = parser.parse_args()
    result = asyncio.run(run(args.subscribers, args.rate, enforce=not args.no_limits))
    print(
        "| subscribers | sent | seconds (start to done) | messages/s sustained | "
        "messages/s incl. start | 429s from flood control | received twice |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {result['subscribers']:,.0f} | {result['sent']:,.0f} | {result['seconds']:.1f} | "
        f"{result['sustained']:.1f} | {result['rate']:.1f} | {result['flood_429']:.0f} | "
        f"{result['twice']:.0f} |"
    )
    print("\nGoal: ≥ 25 messages/s sustained with Telegram's limits enforced by the server.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
