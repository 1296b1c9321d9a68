"""Take docs/sandbox.png: the sandbox in headless Chromium after a short, real conversation.

    .venv/bin/python docs/sandbox_screenshot.py [OUTPUT.png]

Needs the dev extras (Playwright) and Debian's Chromium at /usr/bin/chromium (or
$CHROMIUM_PATH); emoji show only with a colour emoji font (Debian: fonts-noto-color-emoji).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from playwright.async_api import Page, async_playwright, expect

from bot.sandbox import Sandbox

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PATIENCE = 20_000
ERIK, SARAH, GUNNEL, KARIN = 9201, 9203, 9204, 9101


async def say(page: Page, pane: str, text: str) -> None:
    box = page.locator(f"#{pane}-composer textarea")
    await box.fill(text)
    await box.press("Enter")
    await expect(page.locator(f"#{pane}-messages .msg.out").last).to_contain_text(text)


async def bot_answers(page: Page, before: int) -> None:
    await expect(page.locator("#member-messages .msg.in")).to_have_count(
        before + 1, timeout=PATIENCE
    )


async def scene(page: Page) -> None:
    await page.click(f"#people [data-person='{GUNNEL}']")
    await say(page, "member", "Vi vill hyra en lokal av kommunen för vårt årsmöte")
    await bot_answers(page, 0)
    await page.click(f"#people [data-person='{SARAH}']")
    await say(page, "member", "I would like to talk to a person about a venue for our spring show")
    await bot_answers(page, 0)

    await page.click(f"#people [data-person='{ERIK}']")
    await say(page, "member", "Hur bokar vi träningstider i en idrottshall?")
    await bot_answers(page, 0)
    answer = page.locator("#member-messages .msg.in").last
    await answer.locator(".kb button", has_text="Nej — koppla mig").click()
    await bot_answers(page, 1)

    topic = page.locator("#topics .topic", has_text="träningstider")
    await expect(topic).to_have_count(1, timeout=PATIENCE)
    await topic.click()
    await page.click(f"#coordinators [data-person='{KARIN}']")
    card = page.locator("#desk-messages .msg", has_text="Ta ärendet")
    await card.locator(".kb button", has_text="Ta ärendet").click()
    await expect(page.locator("#desk-messages .msg").first).to_contain_text(
        "Tas av Karin", timeout=PATIENCE
    )
    await say(
        page,
        "desk",
        "Hej Erik! Fritid har lediga tider på tisdagar 18–20. Vill ni att jag bokar dem åt er?",
    )
    await bot_answers(page, 2)
    reply = page.locator("#member-messages .msg.in").last
    await reply.hover()
    await reply.locator(".reply-btn").click()
    await say(page, "member", "Ja tack, gärna! Vi är 24 spelare.")
    await expect(page.locator("#desk-messages .msg.in").last).to_contain_text(
        "24 spelare", timeout=PATIENCE
    )
    await page.mouse.move(0, 0)
    await page.locator("#member-composer textarea").fill("Hur söker vi LOK-stöd?")
    await expect(page.locator("#toast")).to_be_hidden(timeout=PATIENCE)


async def main(output: Path) -> None:
    async with Sandbox(port=0) as sandbox, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = await browser.new_page(viewport={"width": 1400, "height": 860}, locale="sv-SE")
        await page.goto(sandbox.url)
        await page.wait_for_selector("body[data-ready=true]")
        await scene(page)
        await page.screenshot(path=str(output))
        await browser.close()
    sys.stdout.write(f"Wrote {output}\n")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "sandbox.png"
    asyncio.run(main(target))
