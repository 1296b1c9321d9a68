"""The sandbox in a real browser: Debian's Chromium, headless, driven by Playwright.

A member asks, escalates, a coordinator claims the case and replies in its topic, and the
member sees the reply; an English and an Arabic question each reach the department for
sports halls, and Arabic reads right to left.
Chromium is never downloaded: the test uses ``/usr/bin/chromium`` (``.ci/run`` installs it
and sets ``REQUIRE_BROWSER=1``, which turns a missing browser into a failure).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import database_url

from bot.sandbox import Sandbox
from knowledge.loading import Routing

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
ERIK, AMIRA, SARAH, GUNNEL, KARIN = 9201, 9202, 9203, 9204, 9101
PATIENCE = 20_000  # milliseconds: the bot answers within one long poll, CI machines are slow


def _browser_or_reason() -> str | None:
    missing = []
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (pip install -e '.[dev]')")
    if not CHROMIUM.is_file():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    return " and ".join(missing) or None


@pytest.fixture
async def view(tmp_path: Path, engine: Any, shipped_routing: Routing) -> AsyncIterator[Any]:
    """A fresh sandbox and a headless Chromium page showing it."""
    reason = _browser_or_reason()
    if reason:
        message = f"the browser test needs {reason}"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (REQUIRE_BROWSER=1)")
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with (
        Sandbox(
            port=0,
            workdir=tmp_path / "work",
            database=database_url(tmp_path),
            routing=shipped_routing,
        ) as sandbox,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            view = await browser.new_page(viewport={"width": 1400, "height": 860}, locale="sv-SE")
            errors: list[str] = []
            view.on("pageerror", lambda error: errors.append(str(error)))
            await view.goto(sandbox.url)
            await view.wait_for_selector("body[data-ready=true]", timeout=PATIENCE)
            yield view
            assert errors == [], f"the page raised: {errors}"
        finally:
            await browser.close()


async def ask(view: Any, member: int, question: str) -> Any:
    """Switch to a member, type the question, press Enter; the bot's reply to it."""
    from playwright.async_api import expect

    await view.click(f"#people [data-person='{member}']")
    await expect(view.locator(f"#people [data-person='{member}']")).to_have_attribute(
        "aria-selected", "true"
    )
    before = await view.locator("#member-messages .msg.in").count()
    box = view.locator("#member-composer textarea")
    await box.fill(question)
    await box.press("Enter")
    await expect(view.locator("#member-messages .msg.out").last).to_contain_text(question)
    await expect(view.locator("#member-messages .msg.in")).to_have_count(
        before + 1, timeout=PATIENCE
    )
    return view.locator("#member-messages .msg.in").last


async def test_a_question_escalated_claimed_and_answered_in_the_browser(view: Any) -> None:
    from playwright.async_api import expect

    answer = await ask(view, ERIK, "Hur bokar vi träningstider i en idrottshall?")
    await expect(answer).to_contain_text("Skol- och fritidsförvaltningen")
    await expect(answer.locator(".text b").first).to_contain_text("Skol- och fritidsförvaltningen")

    await answer.locator(".kb button", has_text="Nej — koppla mig till samordnaren").click()
    confirmation = view.locator("#member-messages .msg.in", has_text="Ärendenummer")
    await expect(confirmation).to_have_count(1, timeout=PATIENCE)
    reference = re.search(r"F-\d{4}-\d{4}", await confirmation.inner_text())
    assert reference is not None

    # The case has its own topic on the coordinator group's side.
    topic = view.locator("#topics .topic", has_text=reference[0])
    await expect(topic).to_have_count(1, timeout=PATIENCE)
    await expect(topic.locator(".badge")).to_be_visible()
    await topic.click()
    card = view.locator("#desk-messages .msg", has_text="Ta ärendet")
    await expect(card).to_contain_text("Hur bokar vi träningstider i en idrottshall?")

    await view.click(f"#coordinators [data-person='{KARIN}']")
    await card.locator(".kb button", has_text="Ta ärendet").click()
    await expect(view.locator("#toast")).to_have_text("Du har tagit ärendet.", timeout=PATIENCE)
    await expect(view.locator("#desk-messages .msg").first).to_contain_text(
        "Tas av Karin", timeout=PATIENCE
    )

    reply = "Hej Erik! Vi ringer dig i morgon om halltiderna."
    box = view.locator("#desk-composer textarea")
    await box.fill(reply)
    await box.press("Enter")
    await expect(view.locator("#desk-messages .msg.out").last).to_contain_text(reply)

    seen = view.locator("#member-messages .msg.in", has_text=reply)
    await expect(seen).to_have_count(1, timeout=PATIENCE)
    await expect(seen).to_contain_text(f"Svar i ärende {reference[0]}")
    await expect(seen).to_contain_text("Föreningssamordnaren, Helsingborgs stad")


async def test_an_english_and_an_arabic_question_in_the_browser(
    view: Any, shipped_routing: Routing
) -> None:
    from playwright.async_api import expect

    # What people write is shown as text, never run as HTML.
    markup = '<img src=x onerror="document.body.dataset.owned=1"> <b>inte fet</b>'
    await ask(view, GUNNEL, markup)
    await expect(view.locator("#member-messages .msg.out .text").last).to_have_text(markup)
    assert await view.locator("#member-messages img, #member-messages .msg.out b").count() == 0
    assert await view.evaluate("document.body.dataset.owned") is None

    halls = next(d for d in shipped_routing.table.departments if d.id == "skola_fritid")
    assert halls.contact.email
    english = await ask(view, SARAH, "How do we book training times in a sports hall?")
    await expect(english).to_contain_text("This belongs to")
    await expect(english.locator(".text b").first).to_have_text(halls.name_en or halls.name)
    await expect(english).to_contain_text(halls.contact.email)
    await expect(english.locator(".kb button", has_text="👍")).to_have_count(1)

    # From tests/data/dev_ar.jsonl, where it is expected at skola_fritid.
    question = "كيف يمكن لنادينا حجز أوقات تدريب في صالة رياضية تابعة للبلدية؟"
    arabic = await ask(view, AMIRA, question)
    asked = view.locator("#member-messages .msg.out .text").last
    assert await asked.evaluate("element => getComputedStyle(element).direction") == "rtl"
    # The page shows the bot's answer: the sports and leisure department and its contact.
    await expect(arabic.locator(".kb button")).to_have_count(2)
    direction = "element => getComputedStyle(element).direction"
    assert await arabic.locator(".text").evaluate(direction) == "rtl"
    await expect(arabic).to_contain_text(halls.contact.email)
    assert halls.contact.phone
    await expect(arabic).to_contain_text(halls.contact.phone)
