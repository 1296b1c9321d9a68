"""End to end: registering an association, restarting mid-way, joining, routing by it, /find."""

from __future__ import annotations

from conftest import running_bot as running
from sqlmodel import Session, select

from bot.app import Services, build_services
from bot.config import Settings
from bot.loopback import LoopbackBotApi
from bot.models import Association, AssociationMember


async def test_register_restart_join_route_and_find(
    api: LoopbackBotApi, settings: Settings, services: Services
) -> None:
    ana = api.person(6101, "Ana")
    async with running(settings, services):
        assert "Vad heter föreningen" in (await ana.ask("/register", timeout=10))["text"]
        assert (
            "organisationsnummer" in (await ana.ask("Helsingborgs Kammarkör", timeout=10))["text"]
        )
        wrong = await ana.ask("212000-1158", timeout=10)
        assert "Kontrollsiffran" in wrong["text"]
        looks_personal = await ana.ask("850101-1234", timeout=10)
        assert "personnummer" in looks_personal["text"]
        category = await ana.ask("212000-1157", timeout=10)
        assert "Vad sysslar föreningen med" in category["text"]

    # The bot restarts in the middle of the conversation: it goes on where it was.
    restarted = build_services(settings, routing=services.routing)
    async with running(settings, restarted):
        since = api.cursor()
        await ana.press(category, "Kultur")
        count = await api.wait_for_message(ana.chat_id, since=since, timeout=10)
        assert "hur många medlemmar" in count["text"]
        await ana.ask("45", timeout=10)
        contact = await ana.ask("Ordförande", timeout=10)
        listed = await ana.ask("kor@example.se", timeout=10)
        assert "föreningsnätverket" in listed["text"]
        since = api.cursor()
        await ana.press(listed, "Ja")
        subscribe = await api.wait_for_message(ana.chat_id, since=since, timeout=10)
        since = api.cursor()
        await ana.press(subscribe, "Ja")
        done = await api.wait_for_message(ana.chat_id, since=since, timeout=10)
        assert "är registrerad" in done["text"]
        assert contact

        # A category-dependent grant question is answered for a culture association.
        grants = await ana.ask("Vilka bidrag kan vi söka?", timeout=10)
        assert grants["text"].startswith("Det här hör till <b>Kulturförvaltningen") or (
            "Kulturförvaltningen" in grants["text"].split("\n")[0]
        )

        # A second member asks to join; the contact approves.
        bo = api.person(6102, "Bo")
        await bo.ask("/register", timeout=10)
        similar = await bo.ask("Helsingborgs kammarkör", timeout=10)
        assert "Är det er förening" in similar["text"]
        since = api.cursor()
        await bo.press(similar, "Ja")
        await api.wait_for_message(bo.chat_id, since=since, timeout=10)
        request = await api.wait_for_message(
            ana.chat_id, lambda m: "vill gå med" in m["text"], timeout=10
        )
        since = api.cursor()
        await ana.press(request, "Ja")
        welcome = await api.wait_for_message(bo.chat_id, since=since, timeout=10)
        assert "Du är nu med i" in welcome["text"]

        found = await bo.ask("/find kör", timeout=10)
        assert "Helsingborgs Kammarkör" in found["text"] and "kor@example.se" in found["text"]

    with Session(services.engine) as session:
        entry = session.exec(select(Association)).one()
        assert entry.org_number == "212000-1157" and entry.category.value == "culture"
        links = session.exec(select(AssociationMember)).all()
        assert sorted((link.member_id, link.approved) for link in links) == [
            (6101, True),
            (6102, True),
        ]
