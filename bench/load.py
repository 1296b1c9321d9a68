"""Load: N members at once through the loopback server and the real bot in webhook mode, beside a
bare python-telegram-bot echo bot on the same harness (the ceiling).

The loopback Bot API server runs in this process and POSTs updates to the bot's webhook, up to
100 at a time (the bots' ``max_connections``; one chat's updates one after another). Each bot
runs in its own process: ``concierge run`` (webhook mode, a fresh SQLite file unless
``--database-url``) and an echo bot (PTB's own ``run_webhook``, one handler that replies the
text). Each member, in a closed loop: asks a question from the development sets (a mix the bot
answers with an article, clarifies, or escalates to a case; Swedish and English), waits for the
bot's first reply, thinks, asks again. A member whose question became a case hands over to a new
member (a member with an open case would write to the case, not ask something new).

Latency: from the update being queued in the server to the bot's reply arriving at the server.
Errors: webhook answers other than 2xx, error replies ("något gick fel"), no reply in time.

    python bench/load.py [--members 200] [--duration 30] [--warmup 5] [--think 0 3]
                         [--bots concierge echo] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bot.loopback import BotEvent, LoopbackBotApi, Person
from knowledge.loading import load_routing

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "555000:BENCH-load-token"
SECRET = "bench-load-secret"
QUESTION_FILES = (
    ROOT.parent / "shared" / "eval" / "dev.jsonl",
    ROOT / "tests" / "data" / "dev_en.jsonl",
)
# What members ask: mostly questions the knowledge base answers, some it must clarify, some
# for a person; Swedish more often than English.
ACTION_SHARE = {"answer": 0.6, "clarify": 0.2, "escalate": 0.2}
LANGUAGE_SHARE = {"sv": 0.7, "en": 0.3}
FIRST_MEMBER = 1_000_000
REFERENCE = re.compile(r"F-\d{4}-\d+")
ERROR_TEXTS = ("något gick fel", "something went wrong")
# Telegram's webhook connections at once (setWebhook max_connections, both bots ask for 100).
CONNECTIONS = 100


# --- the questions ---


def question_pools(files: tuple[Path, ...]) -> dict[tuple[str, str], list[str]]:
    """Questions by (language, what the router does with them)."""
    routing = load_routing(ROOT / "routing_rules.yaml", ROOT / "knowledge" / "articles")
    pools: dict[tuple[str, str], list[str]] = {}
    for path in files:
        if not path.exists():
            raise SystemExit(f"{path}: question set not found")
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            question = json.loads(line)["text"]
            decision = routing.router.route(question)
            if decision.language in ("sv", "en"):
                pools.setdefault((decision.language, decision.action), []).append(question)
    return pools


def pick_language(rng: random.Random) -> str:
    return rng.choices(list(LANGUAGE_SHARE), weights=list(LANGUAGE_SHARE.values()))[0]


def pick_question(
    pools: dict[tuple[str, str], list[str]], language: str, rng: random.Random
) -> str:
    action = rng.choices(list(ACTION_SHARE), weights=list(ACTION_SHARE.values()))[0]
    pool = pools.get((language, action)) or pools[("sv", action)]
    return rng.choice(pool)


# --- the bots, each in its own process ---


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def bot_command(
    kind: str, api: LoopbackBotApi, port: int, folder: Path, args: Any
) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "PYTHONPATH": str(args.code or ROOT),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": api.base_url,
        "TELEGRAM_FILE_URL": api.base_file_url,
        "WEBHOOK_URL": f"http://127.0.0.1:{port}/hook",
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_LISTEN": "127.0.0.1",
        "WEBHOOK_PORT": str(port),
    }
    if kind == "echo":
        return [sys.executable, str(Path(__file__).resolve()), "--serve-echo"], env
    if args.desk:
        coordinator = api.person(9001, "Kim")
        desk = api.create_supergroup("Föreningssamordnare", forum=True, members=[coordinator.id])
        env["COORDINATOR_CHAT_ID"] = str(desk["id"])
    env.update(
        {
            "DATABASE_URL": args.database_url or f"sqlite:///{folder / 'load.sqlite3'}",
            "RULES_PATH": str(ROOT / "routing_rules.yaml"),
            "KNOWLEDGE_PATH": str(ROOT / "knowledge" / "articles"),
            # Measure the bot, not the pacing meant for Telegram's 30 messages/s.
            "TELEGRAM_RATE": "10000",
            # Members here write far more than 20 a minute on purpose.
            "MEMBER_MESSAGES_PER_MINUTE": "0",
            "CONCIERGE_CACHE_DIR": str(folder / "cache"),
            "WEBHOOK_REUSE_PORT": "true" if args.instances > 1 else "false",
        }
    )
    command = [sys.executable, "-c", "from bot.cli import main; main(['run'])"]
    return command, env


def serve_echo() -> None:
    """The ceiling: PTB's own webhook server and one handler that replies the text."""
    from telegram import Update
    from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

    async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None and message.text:
            await message.reply_text(message.text)

    app = (
        ApplicationBuilder()
        .token(os.environ["TELEGRAM_BOT_TOKEN"])
        .base_url(os.environ["TELEGRAM_API_URL"])
        .concurrent_updates(int(os.environ.get("CONCURRENT_UPDATES", "16")))
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT, echo))
    app.run_webhook(
        listen=os.environ["WEBHOOK_LISTEN"],
        port=int(os.environ["WEBHOOK_PORT"]),
        url_path="hook",
        webhook_url=os.environ["WEBHOOK_URL"],
        secret_token=os.environ["WEBHOOK_SECRET"],
        max_connections=CONNECTIONS,
        allowed_updates=["message", "callback_query"],
    )


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def waiting_for_cpu(pid: int) -> float:
    """Seconds the process's threads were ready to run but waited for a core (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the members ---


@dataclass
class Run:
    """What one bot did under one load."""

    bot: str
    members: int
    think: float
    # Processes of the bot sharing the webhook port (SO_REUSEPORT), one per core.
    instances: int = 1
    # Which round of --repeat (each round runs every bot once, one after another).
    round: int = 0
    latencies: list[float] = field(default_factory=list)
    completed: int = 0
    timeouts: int = 0
    error_replies: int = 0
    webhook_errors: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    webhook_failures: Counter[int | str] = field(default_factory=Counter)
    peak_rss: float = 0.0
    cpu: float = 0.0
    harness_cpu: float = 0.0
    # Share of the time the bot's and the harness's threads waited for a core: other load.
    starved: tuple[float, float] = (0.0, 0.0)
    seconds: float = 0.0

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    @property
    def cpu_per_update(self) -> float:
        return self.cpu / self.throughput * 1000 if self.throughput else 0.0

    @property
    def errors(self) -> int:
        return self.timeouts + self.error_replies + self.webhook_errors


def outcome_of(message: dict[str, Any]) -> str:
    text = message.get("text", "")
    if any(error in text.lower() for error in ERROR_TEXTS):
        return "error"
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    data = [button.get("callback_data", "") for row in rows for button in row]
    if any(d.startswith("fb:") for d in data):
        return "answer"
    if any(d.startswith("cl:") for d in data):
        return "clarify"
    if REFERENCE.search(text):
        return "escalate"
    return "other"


async def load(
    api: LoopbackBotApi,
    run: Run,
    pools: dict[tuple[str, str], list[str]],
    *,
    warmup: float,
    duration: float,
    patience: float,
    seed: int,
) -> None:
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[tuple[float, dict[str, Any]]]] = {}

    def arrived(event: BotEvent) -> None:
        future = waiting.get(event.chat_id)
        if event.kind == "new" and future is not None and not future.done():
            future.set_result((time.perf_counter(), event.message))

    stop_watching = api.watch(arrived)
    started = time.perf_counter()
    measure_from = started + warmup
    measure_until = measure_from + duration
    next_id = iter(range(FIRST_MEMBER, FIRST_MEMBER + 10_000_000))

    async def member(slot: int) -> None:
        rng = random.Random(seed * 100_003 + slot)

        def newcomer() -> tuple[Person, str]:
            language = pick_language(rng)
            return api.person(next(next_id), f"Medlem {slot}", language_code=language), language

        person, language = newcomer()
        # Not all at once at the start.
        await asyncio.sleep(rng.uniform(0, min(1.0, warmup)))
        while time.perf_counter() < measure_until:
            question = pick_question(pools, language, rng)
            future: asyncio.Future[tuple[float, dict[str, Any]]] = loop.create_future()
            waiting[person.id] = future
            sent_at = time.perf_counter()
            await person.send(question)
            counted = measure_from <= sent_at < measure_until
            try:
                replied_at, reply = await asyncio.wait_for(future, patience)
            except TimeoutError:
                if counted:
                    run.timeouts += 1
                # Its reply may still come: the next question goes to a new member.
                waiting.pop(person.id, None)
                person, language = newcomer()
                continue
            outcome = outcome_of(reply)
            if counted:
                run.latencies.append(replied_at - sent_at)
                run.outcomes[outcome] += 1
                if outcome == "error":
                    run.error_replies += 1
            if measure_from <= replied_at < measure_until:
                run.completed += 1
            if outcome == "escalate":
                waiting.pop(person.id, None)
                person, language = newcomer()
            if run.think:
                await asyncio.sleep(rng.uniform(0.5 * run.think, 1.5 * run.think))
        waiting.pop(person.id, None)

    try:
        await asyncio.gather(*(member(slot) for slot in range(run.members)))
    finally:
        stop_watching()
    run.seconds = duration
    failed = [
        delivery.status or "no answer in time"
        for delivery in api.webhook_deliveries
        if delivery.status is None or not 200 <= delivery.status < 300
    ]
    run.webhook_errors = len(failed)
    run.webhook_failures = Counter(failed)


async def measure(
    kind: str, members: int, think: float, pools: dict[tuple[str, str], list[str]], args: Any
) -> Run:
    run = Run(kind, members, think, instances=args.instances if kind == "concierge" else 1)
    folder = Path(tempfile.mkdtemp(prefix=f"load-{kind}-"))
    if kind == "concierge" and (args.database_url or "").startswith("postgresql"):
        reset_postgres(args.database_url)
    async with LoopbackBotApi(TOKEN, webhook_connections=CONNECTIONS) as api:
        port = free_port()
        command, env = bot_command(kind, api, port, folder, args)
        log = (folder / "bot.log").open("wb")
        processes = []
        for _ in range(run.instances):
            processes.append(
                await asyncio.create_subprocess_exec(
                    *command, env=env, cwd=folder, stdout=log, stderr=log
                )
            )
        pids = [process.pid for process in processes]
        try:
            deadline = time.monotonic() + 120
            while len(api.calls("setWebhook")) < run.instances:  # each instance registers
                if any(p.returncode is not None for p in processes) or (
                    time.monotonic() > deadline
                ):
                    raise SystemExit(f"{kind} did not start; see {folder / 'bot.log'}")
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # the webhook is registered just after listening
            cpu_before = sum(cpu_seconds(pid) for pid in pids)
            harness_before = time.process_time()
            starved_before = (
                sum(waiting_for_cpu(pid) for pid in pids),
                waiting_for_cpu(os.getpid()),
            )
            profiler = await start_profiler(pids[0], kind, run.think, args)
            await load(
                api,
                run,
                pools,
                warmup=args.warmup,
                duration=args.duration,
                patience=args.timeout,
                seed=args.seed,
            )
            seconds = args.warmup + args.duration
            run.cpu = (sum(cpu_seconds(pid) for pid in pids) - cpu_before) / seconds
            run.harness_cpu = (time.process_time() - harness_before) / seconds
            run.starved = (
                (sum(waiting_for_cpu(pid) for pid in pids) - starved_before[0]) / seconds,
                (waiting_for_cpu(os.getpid()) - starved_before[1]) / seconds,
            )
            run.peak_rss = sum(peak_rss_mb(pid) for pid in pids)
            if profiler is not None:
                await profiler.wait()
            if args.hold:
                print(f"{kind} pids {pids}; Enter to stop", file=sys.stderr)
                await asyncio.to_thread(sys.stdin.readline)
        finally:
            for process in processes:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            log.close()
    if args.keep:
        print(f"{kind}: database and log kept in {folder}", file=sys.stderr)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return run


async def start_profiler(
    pid: int, kind: str, think: float, args: Any
) -> asyncio.subprocess.Process | None:
    """py-spy on the bot for the whole load (collapsed stacks, for flame graphs or grep)."""
    if not args.profile:
        return None
    output = Path(args.profile) / f"{kind}-think{think:g}.txt"
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--output", str(output)]
    command += ["--duration", str(int(args.warmup + args.duration)), "--rate", "200"]
    # Only the thread holding the GIL (what costs CPU), unless waiting is what is looked for.
    command.append("--idle" if args.profile_idle else "--gil")
    return await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


def echo_of_round(runs: list[Run]) -> dict[tuple[float, int], Run]:
    """The echo bot's run per think time and round (measured right before or after the bot's:
    the machine's speed drifts over minutes)."""
    return {(run.think, run.round): run for run in runs if run.bot == "echo"}


def ratio_to_echo(run: Run, echo: dict[tuple[float, int], Run]) -> float | None:
    """The run's updates/s over the echo bot's of its round; none with think time (the echo bot
    then answers all that is asked: no ceiling to compare with)."""
    ceiling = echo.get((run.think, run.round))
    if run.bot == "echo" or run.think or ceiling is None or not ceiling.throughput:
        return None
    return run.throughput / ceiling.throughput


def table(runs: list[Run]) -> str:
    echo = echo_of_round(runs)
    lines = [
        "| bot | members | think (s) | updates/s | p50 (ms) | p95 (ms) | p99 (ms) "
        "| errors (webhook / error replies / timeouts) | peak RSS (MB) "
        "| bot CPU per update (ms) | × echo |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for run in runs:
        value = ratio_to_echo(run, echo)
        ratio = "—" if value is None else f"{value:.2f}"
        name = f"{run.bot} ×{run.instances}" if run.instances > 1 else run.bot
        lines.append(
            f"| {name} | {run.members} | {run.think:g} | {run.throughput:.0f} "
            f"| {run.percentile(0.50):.0f} | {run.percentile(0.95):.0f} "
            f"| {run.percentile(0.99):.0f} "
            f"| {run.errors} ({run.webhook_errors} / {run.error_replies} / {run.timeouts}) "
            f"| {run.peak_rss:.0f} | {run.cpu_per_update:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0, help="Seconds measured.")
    parser.add_argument("--warmup", type=float, default=5.0, help="Seconds before measuring.")
    parser.add_argument(
        "--think",
        type=float,
        nargs="+",
        default=[0.0, 3.0],
        help="Each member's pause between a reply and the next question, seconds on average "
        "(one run per value; 0: as fast as the bot answers).",
    )
    parser.add_argument("--bots", nargs="+", choices=["concierge", "echo"], default=None)
    parser.add_argument(
        "--database-url",
        help="The bot's database (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test; "
        "its schema is dropped first); default a fresh SQLite file.",
    )
    parser.add_argument(
        "--desk",
        action="store_true",
        help="Give the bot a coordinator group: each case is also put on the desk (Telegram "
        "allows 20 messages a minute in a group, and the bot keeps to it).",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="Processes of the bot on the one webhook port (WEBHOOK_REUSE_PORT; the kernel "
        "spreads connections), e.g. one per core. The echo bot is always one process.",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Rounds per think time, each running every bot once, one after another: the "
        "machine's speed drifts over minutes, so a ratio is taken within a round and the "
        "median of the rounds is printed.",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="No reply by then: error.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hold", action="store_true", help="Keep the bot up after a run.")
    parser.add_argument(
        "--keep", action="store_true", help="Keep each run's database and bot log (else removed)."
    )
    parser.add_argument(
        "--code",
        type=Path,
        help="Run the bot from another copy of the code (e.g. `git archive` of an older commit), "
        "to compare before and after a change.",
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="Record the bot with py-spy (collapsed stacks) into DIR."
    )
    parser.add_argument(
        "--profile-idle", action="store_true", help="With --profile: waiting threads too."
    )
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        serve_echo()
        return 0
    bots = args.bots or ["concierge", "echo"]
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    pools = question_pools(QUESTION_FILES)
    runs: list[Run] = []
    for think in args.think:
        for round_ in range(args.repeat):
            for kind in bots:
                run = asyncio.run(measure(kind, args.members, think, pools, args))
                run.round = round_
                runs.append(run)
                print(
                    f"{kind}, think {think:g} s: {run.throughput:.0f}/s, "
                    f"p99 {run.percentile(0.99):.0f} ms, "
                    f"bot CPU {run.cpu:.2f} cores, {run.cpu_per_update:.1f} ms "
                    f"an update, harness CPU {run.harness_cpu:.2f} cores, waiting for a core: "
                    f"bot {run.starved[0]:.2f}, harness {run.starved[1]:.2f}; "
                    f"mix {dict(run.outcomes)}; webhook failures {dict(run.webhook_failures)}",
                    file=sys.stderr,
                )
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(table(runs))
    print(
        f"\n{args.members} members, {args.duration:g} s measured after {args.warmup:g} s; "
        f"the bot on {database}; asked: "
        + ", ".join(f"{share:.0%} {action}" for action, share in ACTION_SHARE.items())
        + " (by the router), "
        + ", ".join(f"{share:.0%} {language}" for language, share in LANGUAGE_SHARE.items())
    )
    print(
        "Waiting for a core (other load on the machine), seconds a second: "
        + "; ".join(
            f"{run.bot} think {run.think:g}: bot {run.starved[0]:.2f}, "
            f"harness {run.starved[1]:.2f}"
            for run in runs
        )
    )
    echo = echo_of_round(runs)
    for think in args.think:
        ratios = [
            value
            for run in runs
            if run.think == think and (value := ratio_to_echo(run, echo)) is not None
        ]
        if len(ratios) > 1:
            print(
                f"× echo at think {think:g}, each round against the echo bot of its round: "
                + ", ".join(f"{ratio:.2f}" for ratio in ratios)
                + f"; median {statistics.median(ratios):.2f}"
            )
    print("Goals: ≥ 0.5 × the echo bot's updates/s; p99 ≤ 100 ms with 200 members; no errors.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
