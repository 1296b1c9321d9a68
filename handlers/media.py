"""What members send that is not text: a polite reply; a document joins an open case."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import Application, MessageHandler, filters

from bot.app import ConciergeContext
from bot.services import conversation
from bot.services import desk as desk_service
from bot.texts import text
from handlers import desk
from handlers.common import current_member, send


async def document_received(update: Update, context: ConciergeContext) -> None:
    """Attach a document to the member's open case, or explain that text is needed."""
    message = update.effective_message
    member = await current_member(update, context)
    if message is None or member is None or message.document is None:
        return
    document = message.document
    outcome = await context.services.call(
        conversation.receive_document,
        member_id=member.id,
        file_id=document.file_id,
        file_name=document.file_name or "",
        caption=message.caption or "",
        update_id=update.update_id,
    )
    if outcome is None:
        await send(context, message.chat_id, text("document_no_case", member.language))
    else:
        case = outcome.case
        added = text("document_added", member.language, reference=case.reference or "")
        await send(context, message.chat_id, added)
        await desk.relay_member_message(context, case, member.first_name, outcome.text)
        case = await context.services.call(desk_service.get_case, case_id=case.id or 0)
        if case.desk_chat_id is not None:
            notice = text(
                "desk_member_sent_file", desk.DESK_LANGUAGE, name=document.file_name or "—"
            )
            await desk.post_on_case(context, case, notice)
            await context.bot.copy_message(
                case.desk_chat_id,
                message.chat_id,
                message.message_id,
                message_thread_id=case.desk_thread_id,
            )


async def other_media_received(update: Update, context: ConciergeContext) -> None:
    """Stickers, photos, voice and the like: ask for the question in words."""
    message = update.effective_message
    member = await current_member(update, context)
    if message is None or member is None:
        return
    await send(context, message.chat_id, text("media_unsupported", member.language))


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    private = filters.ChatType.PRIVATE
    app.add_handler(MessageHandler(private & filters.Document.ALL, document_received))
    app.add_handler(
        MessageHandler(
            private & ~filters.TEXT & ~filters.Document.ALL & ~filters.COMMAND,
            other_media_received,
        )
    )
