"""End to end: an admin changes the routing table while the bot serves members."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import running_bot as running
from sqlmodel import Session, col, select

from bot.app import ConciergeContext, build_services
from bot.cli import main
from bot.config import Settings
from bot.loopback import LoopbackBotApi
from bot.models import RulesVersion
from handlers.admin import watch_rules
from knowledge.loading import Routing

ROOT = Path(__file__).resolve().parents[2]
ADMIN = 8001


@pytest.fixture
def editable(settings: Settings, tmp_path: Path, shipped_routing: Routing) -> Any:
    """The bot on copies of the rules and articles that the test edits like an admin."""
    rules = tmp_path / "routing_rules.yaml"
    shutil.copy(ROOT / "routing_rules.yaml", rules)
    articles = tmp_path / "articles"
    shutil.copytree(ROOT / "knowledge" / "articles", articles)
    admin_settings = settings.model_copy(
        update={
            "rules_path": rules,
            "knowledge_path": articles,
            "admin_user_ids": (ADMIN,),
            "rules_watch_seconds": 3600.0,
        }
    )
    return admin_settings, build_services(admin_settings, routing=shipped_routing), rules


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


async def department_for(api: LoopbackBotApi, question: str) -> str:
    member = api.person(7100, "Ana")
    reply = await member.ask(question, timeout=10)
    return reply["text"].split("\n")[0]


async def test_broken_yaml_held_change_force_and_rollback(
    api: LoopbackBotApi, editable: Any
) -> None:
    settings, services, rules = editable
    admin = api.person(ADMIN, "Admin")
    halls = "Var hittar jag lediga halltider?"
    async with running(settings, services) as app:
        # 1. Broken on purpose while the bot serves: it keeps answering; the admin sees the line.
        original = rules.read_text(encoding="utf-8")
        edit(rules, "  - id: halltider\n", "  - id: halltider\n   bad: [indent\n")
        await watch_rules(ConciergeContext(app))
        notice = api.messages(ADMIN)[-1]["text"]
        assert "kan inte tas i bruk" in notice and f"{rules}:" in notice
        assert "Skol- och fritidsförvaltningen" in await department_for(api, halls)
        # The watcher tells once, not on every check.
        count = len(api.messages(ADMIN))
        await watch_rules(ConciergeContext(app))
        assert len(api.messages(ADMIN)) == count

        # 2. A change that sends hall questions to the wrong department is held back.
        rules.write_text(original, encoding="utf-8")
        start = original.index("  - id: halltider")
        moved = original[:start] + original[start:].replace(
            "department: skola_fritid", "department: fastighet", 1
        )
        rules.write_text(moved, encoding="utf-8")
        held = await admin.ask("/reload", timeout=30)
        assert "hålls tillbaka" in held["text"]
        details = api.messages(ADMIN)[-1]["text"]
        assert "rules edited: halltider" in details
        assert "'Var hittar jag lediga halltider?' skola_fritid → fastighet" in details
        assert "Skol- och fritidsförvaltningen" in await department_for(api, halls)

        # 3. Forced: now live; the member is sent to the new department.
        forced = await admin.ask("/reload force", timeout=30)
        assert "gäller nu" in forced["text"]
        assert "Fastighetsförvaltningen" in await department_for(api, halls)
        live = await admin.ask("/rules", timeout=10)
        assert "force" in live["text"] and "halltider" in live["text"]

        # 4. Rolled back: the previous table is live again, and on disk.
        await admin.ask("/rollback", timeout=30)
        assert "Skol- och fritidsförvaltningen" in await department_for(api, halls)
        assert rules.read_text(encoding="utf-8") == original

        # Not an admin: refused.
        eve = api.person(8666, "Eve")
        refused = await eve.ask("/reload force", timeout=10)
        assert refused["text"] == "Bara administratörer kan ändra routingtabellen."

    with Session(services.engine) as session:
        sources = [
            v.source for v in session.exec(select(RulesVersion).order_by(col(RulesVersion.id)))
        ]
    assert sources == ["start", "force", "rollback"]
    history = CliRunner().invoke(
        main, ["rules", "history", "--database", services.settings.database_url]
    )
    assert history.exit_code == 0 and "rollback" in history.output and "force" in history.output


async def test_a_rule_pointing_at_a_missing_article_never_goes_live(
    api: LoopbackBotApi, editable: Any
) -> None:
    settings, services, rules = editable
    admin = api.person(ADMIN, "Admin")
    edit(rules, "article: boka-idrottshall", "article: finns-inte")
    async with running(settings, services):
        await admin.ask("/reload force", timeout=30)
        errors = api.messages(ADMIN)[-1]["text"]
        assert "finns-inte" in errors and "which is not in the knowledge base" in errors
        assert "Skol- och fritidsförvaltningen" in await department_for(
            api, "Var hittar jag lediga halltider?"
        )


async def test_a_coordinator_adds_a_case_question_to_the_question_set(
    api: LoopbackBotApi, editable: Any, tmp_path: Path
) -> None:
    settings, _, _ = editable
    kim = api.person(9001, "Kim")
    group = api.create_supergroup("Samordnare", forum=True, members=[kim.id])
    desk_settings = settings.model_copy(update={"coordinator_chat_id": group["id"]})
    services = build_services(desk_settings, routing=build_services(settings).routing)
    async with running(desk_settings, services):
        member = api.person(7200, "Ana")
        await member.ask("Jag vill prata med en människa om padel, ring 0701234567", timeout=10)
        card = await api.wait_for_message(
            group["id"], lambda m: "F-" in m.get("text", ""), timeout=10
        )
        query = await kim.press(card, "Lägg till som exempel")
        refusal = await api.wait_for_callback_answer(query["id"], timeout=10)
        assert "Lämna först över" in (refusal.text or "")  # no department yet
        await kim.press(card, "Lämna över till förvaltning")
        await api.drain(timeout=10)
        for _ in range(100):
            if any(
                b["text"] == "Skol- och fritidsförvaltningen (Fritid Helsingborg)"
                for row in api.message(group["id"], card["message_id"])
                .get("reply_markup", {})
                .get("inline_keyboard", [])
                for b in row
            ):
                break
            await asyncio.sleep(0.05)
        await kim.press(
            api.message(group["id"], card["message_id"]),
            "Skol- och fritidsförvaltningen (Fritid Helsingborg)",
        )
        await api.drain(timeout=10)
        for _ in range(100):
            if "Lägg till som exempel" in [
                b["text"]
                for row in api.message(group["id"], card["message_id"])
                .get("reply_markup", {})
                .get("inline_keyboard", [])
                for b in row
            ]:
                break
            await asyncio.sleep(0.05)
        query = await kim.press(
            api.message(group["id"], card["message_id"]), "Lägg till som exempel"
        )
        added = await api.wait_for_callback_answer(query["id"], timeout=10)
        assert "frågesamlingen" in (added.text or "")
    from bot.services.rules_admin import regression_questions

    with Session(services.engine) as session:
        questions = regression_questions(session=session, path=settings.questions_path)
    added_question = questions[-1]
    assert added_question.expect == ("skola_fritid",)
    assert "0701234567" not in added_question.text and "padel" in added_question.text


async def test_a_valid_file_change_goes_live_by_itself_and_admins_are_told(
    api: LoopbackBotApi, editable: Any
) -> None:
    settings, services, rules = editable
    api.person(ADMIN, "Admin")
    question = "Kan vi boka padelbanan på söndagar?"
    async with running(settings, services) as app:
        before = services.routing
        edit(rules, "      sv: [halltid,", "      sv: [padelbana, padelbanan, halltid,")
        await watch_rules(ConciergeContext(app))
        notice = api.messages(ADMIN)[-1]["text"]
        assert "gäller nu" in notice and "rules edited: halltider" in notice
        assert services.routing is not before
        reply = await api.person(7300, "Ana").ask(question, timeout=10)
        assert "Skol- och fritidsförvaltningen" in reply["text"]
    with Session(services.engine) as session:
        assert [v.source for v in session.exec(select(RulesVersion))] == ["start", "file"]
