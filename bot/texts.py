"""Everything the bot says, in Swedish and English, and how it is put into Telegram HTML.

Values a person typed are HTML-escaped when they are put into a text; pre-formatted HTML is
passed as ``Html``. Nothing longer than Telegram's 4,096 characters is sent unsplit.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from knowledge.rules import Department

TELEGRAM_LIMIT = 4096
LANGUAGES = ("sv", "en")


class Html(str):
    """Text that is already valid Telegram HTML and must not be escaped again."""

    __slots__ = ()


TEXTS: dict[str, dict[str, str]] = {
    "start": {
        "sv": (
            "Hej {name}! 👋 Jag är <b>Föreningslotsen</b>, föreningarnas väg in till "
            "Helsingborgs stad.\n\n"
            "Skriv din fråga med egna ord, till exempel om lokaler, bidrag, föreningsregistret "
            "eller tillstånd. Jag svarar direkt när jag kan, visar vem på staden som hjälper er, "
            "och kopplar dig annars till föreningssamordnaren – med ett ärendenummer och besked "
            "om när du får svar.\n\n{privacy}"
        ),
        "en": (
            "Hi {name}! 👋 I am <b>Föreningslotsen</b>, the associations' way into the City of "
            "Helsingborg.\n\n"
            "Write your question in your own words, for example about premises, grants, the "
            "association register or permits. I answer right away when I can, show who in the "
            "city can help you, and otherwise connect you with the association coordinator – "
            "with a case number and when you will hear back.\n\n{privacy}"
        ),
    },
    "privacy": {
        "sv": (
            "🔒 <b>Om dina uppgifter:</b> det du skriver till staden blir allmän handling och kan "
            "lämnas ut. Skriv därför inte känsliga personuppgifter (t.ex. hälsa eller "
            "personnummer). Vi sparar bara ditt Telegram-id, förnamn, språk och dina frågor: "
            "frågor som botten besvarar i {question_days} dagar, ärenden enligt stadens "
            "gallringsbeslut ({case_days} dagar). /mydata visar allt, /forget raderar. "
            "Ansvarig: {responsible}. Läs mer: {url}"
        ),
        "en": (
            "🔒 <b>About your data:</b> what you write to the city becomes a public record "
            "(allmän handling) and may be disclosed. So do not share sensitive personal details "
            "(e.g. health or ID numbers). We keep only your Telegram id, first name, language and "
            "your questions: questions the bot answers for {question_days} days, cases as the "
            "city's retention decision says ({case_days} days). /mydata shows it all, /forget "
            "deletes. Responsible: {responsible}. More: {url}"
        ),
    },
    "help": {
        "sv": (
            "<b>Så använder du Föreningslotsen</b>\n"
            "• Skriv din fråga som vanlig text.\n"
            "• Skriv <i>prata med samordnaren</i> för att nå en person.\n"
            "• /mycases – dina ärenden och deras status\n"
            "• /language – byt språk (svenska/English)\n"
            "• /start – välkomsttext och information om dina uppgifter"
        ),
        "en": (
            "<b>How to use Föreningslotsen</b>\n"
            "• Write your question as plain text.\n"
            "• Write <i>talk to a human</i> to reach a person.\n"
            "• /mycases – your cases and their status\n"
            "• /language – change language (svenska/English)\n"
            "• /start – welcome text and how your data is handled"
        ),
    },
    "language_choose": {"sv": "Välj språk:", "en": "Choose a language:"},
    "language_set": {
        "sv": "Klart! Jag skriver på svenska.",
        "en": "Done! I will write in English.",
    },
    "answer_intro": {
        "sv": "Det här hör till <b>{department}</b>.",
        "en": "This belongs to <b>{department}</b>.",
    },
    "contact_card": {"sv": "📇 <b>Kontakt: {name}</b>", "en": "📇 <b>Contact: {name}</b>"},
    "contact_phone": {"sv": "☎️ {value}", "en": "☎️ {value}"},
    "contact_email": {"sv": "✉️ {value}", "en": "✉️ {value}"},
    "contact_web": {"sv": "🌐 {value}", "en": "🌐 {value}"},
    "contact_hours": {"sv": "🕘 {value}", "en": "🕘 {value}"},
    "button_helped": {"sv": "👍 Det hjälpte", "en": "👍 That helped"},
    "button_not_helped": {
        "sv": "Nej — koppla mig till samordnaren",
        "en": "No — connect me to the coordinator",
    },
    "clarify": {
        "sv": "Jag är inte säker på vart din fråga hör. Vilket av de här stämmer bäst?",
        "en": "I am not sure where your question belongs. Which of these fits best?",
    },
    "button_none": {
        "sv": "Inget av dessa — prata med samordnaren",
        "en": "None of these — talk to the coordinator",
    },
    "escalated": {
        "sv": (
            "Jag har skickat din fråga till föreningssamordnaren. 📨\n\n"
            "Ärendenummer: <b>{reference}</b>\n"
            "Du får svar här i chatten senast <b>{due}</b>. Vill du lägga till något, svara på "
            "det här meddelandet.{out_of_hours}"
        ),
        "en": (
            "I have passed your question to the association coordinator. 📨\n\n"
            "Case number: <b>{reference}</b>\n"
            "You will get an answer here in the chat by <b>{due}</b>. To add something, reply "
            "to this message.{out_of_hours}"
        ),
    },
    "escalated_again": {
        "sv": "Din fråga finns redan hos samordnaren som ärende <b>{reference}</b>.",
        "en": "Your question is already with the coordinator as case <b>{reference}</b>.",
    },
    "added_to_case": {
        "sv": "Tack! Jag har lagt till det i ärende <b>{reference}</b>.",
        "en": "Thanks! I have added it to case <b>{reference}</b>.",
    },
    "ask_which_case": {
        "sv": "Gäller det här ditt öppna ärende <b>{reference}</b> eller är det en ny fråga?",
        "en": "Is this about your open case <b>{reference}</b>, or a new question?",
    },
    "button_belongs": {"sv": "Till ärende {reference}", "en": "Add to case {reference}"},
    "button_new_question": {"sv": "Ny fråga", "en": "New question"},
    "thanks_feedback": {
        "sv": "Tack för att du berättade! 😊",
        "en": "Thanks for letting us know! 😊",
    },
    "small_talk_greeting": {
        "sv": "Hej! 👋 Skriv din fråga med egna ord, så hjälper jag dig.",
        "en": "Hi! 👋 Write your question in your own words and I will help.",
    },
    "small_talk_thanks": {"sv": "Varsågod! 😊", "en": "You're welcome! 😊"},
    "small_talk_need_words": {
        "sv": (
            "Jag förstod inte riktigt. Skriv din fråga med några ord – eller skriv "
            "<i>prata med samordnaren</i> så kopplar jag dig till en person."
        ),
        "en": (
            "I did not quite understand. Write your question in a few words – or write "
            "<i>talk to a human</i> and I will connect you with a person."
        ),
    },
    "unknown_command": {
        "sv": "Det kommandot känner jag inte igen. Skriv /help för att se vad jag kan.",
        "en": "I do not know that command. Write /help to see what I can do.",
    },
    "admin_refused": {
        "sv": "Bara administratörer kan ändra routingtabellen.",
        "en": "Only administrators can change the routing table.",
    },
    "admin_invalid": {
        "sv": "❌ Ändringen kan inte tas i bruk – den gamla tabellen fortsätter att gälla. Rätta:",
        "en": "❌ The change cannot be used – the old table stays live. Fix:",
    },
    "admin_held": {
        "sv": (
            "⏸ Ändringen hålls tillbaka: den gör routingen sämre på frågesamlingen. "
            "Skriv /reload force för att ändå ta den i bruk."
        ),
        "en": (
            "⏸ The change is held back: it makes routing worse on the question set. "
            "Write /reload force to use it anyway."
        ),
    },
    "admin_live": {
        "sv": "✅ Den nya routingtabellen gäller nu.",
        "en": "✅ The new routing table is live.",
    },
    "admin_no_change": {
        "sv": "Inget har ändrats sedan den tabell som gäller nu.",
        "en": "Nothing has changed since the live table.",
    },
    "admin_no_history": {"sv": "Ingen tabell är registrerad än.", "en": "No table recorded yet."},
    "admin_no_previous": {
        "sv": "Det finns ingen tidigare tabell att gå tillbaka till.",
        "en": "There is no earlier table to go back to.",
    },
    "admin_rules": {
        "sv": (
            "<b>Routingtabellen som gäller</b>\n"
            "Version {hash} sedan {when} ({source}, av {by})\n"
            "{departments} förvaltningar, {rules} regler\n"
            "Frågesamlingen: korrekt {correct}, svarsprecision {precision}\n"
            "Ändring: {summary}"
        ),
        "en": (
            "<b>The live routing table</b>\n"
            "Version {hash} since {when} ({source}, by {by})\n"
            "{departments} departments, {rules} rules\n"
            "Question set: correct {correct}, answer precision {precision}\n"
            "Change: {summary}"
        ),
    },
    "admin_suggestions": {
        "sv": "💡 Veckans förslag till routingtabellen (frågor som inte hamnade rätt direkt):",
        "en": "💡 This week's suggestions for the routing table (questions not placed at once):",
    },
    "desk_button_example": {"sv": "Lägg till som exempel", "en": "Add as example"},
    "desk_example_added": {
        "sv": "Frågan finns nu i frågesamlingen (utan personuppgifter).",
        "en": "The question is now in the question set (without personal details).",
    },
    "desk_example_refused": {
        "sv": "Lämna först över ärendet till en förvaltning, eller så finns frågan redan.",
        "en": "Hand the case over to a department first, or the question is already there.",
    },
    "register_name": {
        "sv": (
            "📝 Vi registrerar er förening! (Skriv /cancel när du vill för att "
            "avbryta.)\n\nVad heter föreningen?"
        ),
        "en": (
            "📝 Let's register your association! (Write /cancel at any time to stop.)\n\nWhat "
            "is the association called?"
        ),
    },
    "register_similar": {
        "sv": "Det finns redan en förening som heter <b>{name}</b>. Är det er förening?",
        "en": "There is already an association called <b>{name}</b>. Is it yours?",
    },
    "register_org_number": {
        "sv": "Vilket organisationsnummer har föreningen? (t.ex. 802000-1234)",
        "en": "What is the association's organisation number? (e.g. 802000-1234)",
    },
    "register_org_format": {
        "sv": (
            "«{value}» ser inte ut som ett organisationsnummer. Skriv tio siffror, t.ex. "
            "802000-1234."
        ),
        "en": (
            "«{value}» does not look like an organisation number. Write ten digits, e.g. "
            "802000-1234."
        ),
    },
    "register_org_third_digit": {
        "sv": (
            "Det ser ut som ett personnummer (tredje siffran är 0 eller 1). En förenings "
            "nummer har 2 eller mer där. Försök igen."
        ),
        "en": (
            "That looks like a personal identity number (third digit 0 or 1). An "
            "association's number has 2 or more there. Try again."
        ),
    },
    "register_org_check_digit": {
        "sv": "Kontrollsiffran (den sista) stämmer inte – kolla numret och skriv det igen.",
        "en": (
            "The check digit (the last one) does not match – check the number and write it again."
        ),
    },
    "register_category": {
        "sv": "Vad sysslar föreningen med?",
        "en": "What does the association do?",
    },
    "register_members_count": {
        "sv": "Ungefär hur många medlemmar har ni? (en siffra)",
        "en": "About how many members do you have? (a number)",
    },
    "register_members_count_problem": {
        "sv": "Skriv antalet som en siffra, t.ex. 45.",
        "en": "Write the number as digits, e.g. 45.",
    },
    "register_role": {
        "sv": "Vilken roll har du i föreningen? (t.ex. ordförande, kassör)",
        "en": "What is your role in the association? (e.g. chair, treasurer)",
    },
    "register_contact": {
        "sv": (
            "Vilken e-post eller vilket telefonnummer ska staden och andra föreningar nå er "
            "på? (frivilligt)"
        ),
        "en": (
            "Which e-mail or phone number should the city and other associations use? (optional)"
        ),
    },
    "register_contact_problem": {
        "sv": (
            "Det ser inte ut som en e-postadress eller ett telefonnummer. Försök igen, eller "
            "hoppa över."
        ),
        "en": "That does not look like an e-mail address or a phone number. Try again, or skip.",
    },
    "register_listed": {
        "sv": "Vill ni synas i föreningsnätverket (/find), så att andra föreningar kan hitta er?",
        "en": (
            "Do you want to be listed in the association network (/find) for other associations?"
        ),
    },
    "register_subscribe": {
        "sv": "Vill du få inbjudningar till dialogmöten, utbildningar och nyheter från staden?",
        "en": "Do you want invitations to dialogue meetings, training and news from the city?",
    },
    "register_done": {
        "sv": "✅ <b>{name}</b> är registrerad. Tack! Nu kan svaren anpassas för er förening.",
        "en": "✅ <b>{name}</b> is registered. Thanks! Answers can now fit your association.",
    },
    "register_join_requested": {
        "sv": (
            "<b>{name}</b> finns redan i registret. Jag har frågat föreningens kontaktperson "
            "om du får gå med."
        ),
        "en": (
            "<b>{name}</b> is already registered. I have asked its contact person to let you join."
        ),
    },
    "register_updated": {
        "sv": "✅ Uppgifterna för <b>{name}</b> är uppdaterade och bekräftade. Tack!",
        "en": "✅ The entry for <b>{name}</b> is updated and confirmed. Thanks!",
    },
    "register_not_started": {
        "sv": "Skriv /register för att börja.",
        "en": "Write /register to start.",
    },
    "register_cancelled": {
        "sv": "Registreringen är avbruten.",
        "en": "The registration is cancelled.",
    },
    "nothing_to_cancel": {
        "sv": "Det finns inget att avbryta.",
        "en": "There is nothing to cancel.",
    },
    "join_request": {
        "sv": "{member} vill gå med i <b>{name}</b> i Föreningslotsen. Godkänner du?",
        "en": "{member} wants to join <b>{name}</b> in Föreningslotsen. Do you approve?",
    },
    "join_approved": {
        "sv": "Du är nu med i <b>{name}</b>. ✅",
        "en": "You are now in <b>{name}</b>. ✅",
    },
    "join_refused": {
        "sv": "Kontaktpersonen för <b>{name}</b> godkände inte förfrågan.",
        "en": "The contact person of <b>{name}</b> did not approve the request.",
    },
    "join_decided": {"sv": "Tack, det är noterat.", "en": "Thanks, noted."},
    "button_yes": {"sv": "Ja", "en": "Yes"},
    "button_no": {"sv": "Nej", "en": "No"},
    "button_skip": {"sv": "Hoppa över", "en": "Skip"},
    "category_sports": {"sv": "Idrott", "en": "Sports"},
    "category_culture": {"sv": "Kultur", "en": "Culture"},
    "category_social": {"sv": "Socialt", "en": "Social"},
    "category_disability": {"sv": "Funktionsnedsättning", "en": "Disability"},
    "category_seniors": {"sv": "Seniorer", "en": "Seniors"},
    "category_immigrant": {"sv": "Invandrare/integration", "en": "Immigrant/integration"},
    "category_environment": {"sv": "Miljö", "en": "Environment"},
    "category_other": {"sv": "Annat", "en": "Other"},
    "find_choose": {
        "sv": "Vilken sorts föreningar söker du?",
        "en": "Which kind of associations are you looking for?",
    },
    "find_none": {
        "sv": "Jag hittade inga föreningar som matchar.",
        "en": "I found no matching associations.",
    },
    "find_line": {
        "sv": "• <b>{name}</b> ({category}) {contact}",
        "en": "• <b>{name}</b> ({category}) {contact}",
    },
    "subscribe_choose": {
        "sv": "Vad vill du få meddelanden om? Tryck för att slå på eller av.",
        "en": "What do you want messages about? Press to switch on or off.",
    },
    "topic_dialogmoten": {"sv": "Dialogmöten", "en": "Dialogue meetings"},
    "topic_utbildning": {"sv": "Utbildningar", "en": "Training"},
    "topic_nyheter": {"sv": "Nyheter", "en": "News"},
    "confirm_entry": {
        "sv": (
            "Det är ett år sedan <b>{name}</b> bekräftade sina uppgifter i "
            "föreningsregistret. Stämmer de fortfarande?"
        ),
        "en": (
            "It is a year since <b>{name}</b> confirmed its entry in the association "
            "register. Is it still right?"
        ),
    },
    "button_entry_ok": {"sv": "Ja, det stämmer", "en": "Yes, it is right"},
    "button_entry_update": {"sv": "Uppdatera", "en": "Update"},
    "entry_confirmed": {
        "sv": "Tack! Uppgifterna är bekräftade.",
        "en": "Thanks! The entry is confirmed.",
    },
    "desk_associations": {
        "sv": "<b>Föreningsregistret</b>: {total} föreningar – {counts}",
        "en": "<b>Association register</b>: {total} associations – {counts}",
    },
    "desk_association_line": {
        "sv": "• {name} · {org} · {category}{stale}",
        "en": "• {name} · {org} · {category}{stale}",
    },
    "announce_usage": {
        "sv": "Skriv /announce ämne | rubrik | text. Ämnen: {topics}.",
        "en": "Write /announce topic | title | text. Topics: {topics}.",
    },
    "announce_too_long": {
        "sv": "Meddelandet är för långt för Telegram (högst {limit} tecken). Korta det.",
        "en": "The message is too long for Telegram (at most {limit} characters). Shorten it.",
    },
    "event_usage": {
        "sv": "Skriv /event ämne | rubrik | 2026-12-10 18:00 | plats | text. Ämnen: {topics}.",
        "en": "Write /event topic | title | 2026-12-10 18:00 | place | text. Topics: {topics}.",
    },
    "broadcast_progress": {
        "sv": (
            "📤 «{title}»: {sent}/{total} skickade · {blocked} blockerade · {failed} misslyckade"
        ),
        "en": "📤 «{title}»: {sent}/{total} sent · {blocked} blocked · {failed} failed",
    },
    "broadcast_done": {
        "sv": (
            "✅ «{title}» klart: {sent}/{total} skickade · {blocked} blockerade · "
            "{failed} misslyckade · {uncertain} osäkra (avbrott)"
        ),
        "en": (
            "✅ «{title}» done: {sent}/{total} sent · {blocked} blocked · {failed} failed · "
            "{uncertain} uncertain (interrupted)"
        ),
    },
    "events_none": {"sv": "Inga kommande evenemang just nu.", "en": "No upcoming events."},
    "button_sign_up": {"sv": "Anmäl mig", "en": "Sign me up"},
    "signed_up": {"sv": "Du är anmäld! Vi påminner dig dagen före.", "en": "You are signed up!"},
    "already_signed_up": {"sv": "Du är redan anmäld.", "en": "You are already signed up."},
    "command_events": {"sv": "Kommande evenemang", "en": "Upcoming events"},
    "mydata_caption": {
        "sv": "Här är allt vi har sparat om dig. /forget raderar det som får raderas.",
        "en": "Here is everything we store about you. /forget deletes what may be deleted.",
    },
    "forget_confirm": {
        "sv": (
            "Vill du att vi raderar dina uppgifter? Profil, frågor, prenumerationer och "
            "föreningskopplingar raderas direkt. Ärenden som staden har handlagt är allmänna "
            "handlingar: de kopplas bort från ditt Telegram-konto och sparas bara till "
            "gallringsdatum."
        ),
        "en": (
            "Do you want us to delete your data? Profile, questions, subscriptions and "
            "association links are deleted at once. Cases the city has handled are public "
            "records: they are detached from your Telegram account and kept only until their "
            "retention date."
        ),
    },
    "forget_yes": {"sv": "Ja, radera", "en": "Yes, delete"},
    "forget_no": {"sv": "Avbryt", "en": "Cancel"},
    "forget_cancelled": {"sv": "Inget har raderats.", "en": "Nothing was deleted."},
    "forgotten": {
        "sv": "Klart – dina uppgifter är raderade.",
        "en": "Done – your data is deleted.",
    },
    "forgotten_kept": {
        "sv": (
            "Klart – dina uppgifter är raderade. Dessa ärenden är allmänna handlingar och sparas, "
            "utan koppling till dig, till och med:\n{kept}"
        ),
        "en": (
            "Done – your data is deleted. These cases are public records and are kept, no "
            "longer linked to you, until:\n{kept}"
        ),
    },
    "command_mydata": {"sv": "Se allt vi sparat om dig", "en": "See your data"},
    "command_forget": {"sv": "Radera dina uppgifter", "en": "Delete your data"},
    "already_done": {"sv": "Det är redan klart. 👍", "en": "That is already done. 👍"},
    "button_stale": {
        "sv": "Den här knappen gäller inte längre. Skriv gärna din fråga igen.",
        "en": "This button no longer works. Please write your question again.",
    },
    "button_not_yours": {
        "sv": "Den här knappen hör till någon annans fråga.",
        "en": "This button belongs to someone else's question.",
    },
    "no_cases": {"sv": "Du har inga ärenden ännu.", "en": "You have no cases yet."},
    "cases_header": {"sv": "<b>Dina ärenden</b>", "en": "<b>Your cases</b>"},
    "case_line": {
        "sv": "• <b>{reference}</b> – {status} – {question}",
        "en": "• <b>{reference}</b> – {status} – {question}",
    },
    "status_open": {"sv": "väntar på samordnaren", "en": "waiting for the coordinator"},
    "status_claimed": {"sv": "handläggs", "en": "being handled"},
    "status_handed_over": {"sv": "överlämnat", "en": "handed over"},
    "status_closed": {"sv": "avslutat", "en": "closed"},
    "document_added": {
        "sv": "Tack! Filen är bifogad till ärende <b>{reference}</b>.",
        "en": "Thanks! The file is attached to case <b>{reference}</b>.",
    },
    "document_no_case": {
        "sv": (
            "Tack för filen! Jag kan bara läsa text. Skriv din fråga som text, så hjälper jag "
            "dig – en fil kan du skicka när du har ett öppet ärende."
        ),
        "en": (
            "Thanks for the file! I can only read text. Write your question as text and I will "
            "help – you can send a file once you have an open case."
        ),
    },
    "media_unsupported": {
        "sv": "Jag kan bara läsa text. Skriv din fråga med ord, så hjälper jag dig. 🙂",
        "en": "I can only read text. Write your question in words and I will help. 🙂",
    },
    "group_hint": {
        "sv": "Skriv till mig i en privat chatt, så hjälper jag dig där.",
        "en": "Write to me in a private chat and I will help you there.",
    },
    "error": {
        "sv": (
            "Oj, något gick fel hos oss. 😕 Försök igen om en stund, eller skriv "
            "<i>prata med samordnaren</i>."
        ),
        "en": (
            "Oops, something went wrong on our side. 😕 Please try again in a moment, or write "
            "<i>talk to a human</i>."
        ),
    },
    # -- the coordinator's desk (city staff) and what the member sees of it ------------------
    "desk_card": {
        "sv": (
            "🗂 <b>{reference}</b> · {status}\n\n"
            "<b>Fråga:</b> {question}\n"
            "<b>Medlem:</b> {member} · förening: {association} · språk: {lang}\n"
            "<b>Förslag:</b> {suggestion}\n"
            "<b>Inkom:</b> {received} · <b>svar senast:</b> {due}"
        ),
        "en": (
            "🗂 <b>{reference}</b> · {status}\n\n"
            "<b>Question:</b> {question}\n"
            "<b>Member:</b> {member} · association: {association} · language: {lang}\n"
            "<b>Suggestion:</b> {suggestion}\n"
            "<b>Received:</b> {received} · <b>answer by:</b> {due}"
        ),
    },
    "desk_suggestion": {
        "sv": "{department} ({score}) – {contact}",
        "en": "{department} ({score}) – {contact}",
    },
    "desk_no_suggestion": {"sv": "inget (frågan gick direkt till er)", "en": "none"},
    "desk_status_open": {"sv": "🟡 Öppet – ingen har tagit det", "en": "🟡 Open – unclaimed"},
    "desk_status_claimed": {"sv": "🔵 Tas av {name}", "en": "🔵 Handled by {name}"},
    "desk_status_handed_over": {
        "sv": "🟣 Överlämnat till {department} ({name})",
        "en": "🟣 Handed over to {department} ({name})",
    },
    "desk_status_closed": {"sv": "⚪️ Stängt av {name}", "en": "⚪️ Closed by {name}"},
    "desk_blocked_suffix": {
        "sv": " · ⚠️ medlemmen har blockerat botten",
        "en": " · ⚠️ the member has blocked the bot",
    },
    "desk_button_claim": {"sv": "Ta ärendet", "en": "Claim"},
    "desk_button_hand_over": {"sv": "Lämna över till förvaltning", "en": "Hand over"},
    "desk_button_close": {"sv": "Stäng", "en": "Close"},
    "desk_button_back": {"sv": "« Tillbaka", "en": "« Back"},
    "desk_claimed": {"sv": "Du har tagit ärendet.", "en": "You have claimed the case."},
    "desk_claimed_by_other": {
        "sv": "{name} har redan tagit ärendet.",
        "en": "{name} has already claimed the case.",
    },
    "desk_already_yours": {"sv": "Ärendet är redan ditt.", "en": "The case is already yours."},
    "desk_closed_already": {"sv": "Ärendet är redan stängt.", "en": "The case is already closed."},
    "desk_unknown_case": {"sv": "Ärendet finns inte.", "en": "No such case."},
    "desk_not_coordinator": {
        "sv": "Bara föreningssamordnare kan arbeta med ärenden.",
        "en": "Only association coordinators can work on cases.",
    },
    "desk_choose_department": {
        "sv": "Vilken förvaltning ska ta över {reference}?",
        "en": "Which department takes over {reference}?",
    },
    "desk_member_wrote": {"sv": "👤 <b>{member}:</b> {text}", "en": "👤 <b>{member}:</b> {text}"},
    "desk_member_reopened": {
        "sv": "🔁 Medlemmen skrev igen och ärendet är öppnat på nytt.",
        "en": "🔁 The member wrote again; the case is open again.",
    },
    "desk_member_sent_file": {
        "sv": "📎 Medlemmen skickade en fil: {name}",
        "en": "📎 The member sent a file: {name}",
    },
    "desk_reply_sent": {"sv": "✅ Skickat till medlemmen.", "en": "✅ Sent to the member."},
    "desk_note_kept": {
        "sv": "📝 Intern anteckning, inte skickad.",
        "en": "📝 Internal note, not sent.",
    },
    "desk_member_blocked": {
        "sv": (
            "⚠️ Medlemmen har blockerat botten – meddelandet kom inte fram. Ärendet är markerat."
        ),
        "en": "⚠️ The member has blocked the bot – the message was not delivered. Case marked.",
    },
    "desk_rating": {
        "sv": "⭐ Medlemmen gav betyget {rating}/5.",
        "en": "⭐ The member rated {rating}/5.",
    },
    "desk_reminder_due_soon": {
        "sv": "⏰ {reference} ska besvaras senast {due} och har inget svar än.",
        "en": "⏰ {reference} must be answered by {due} and has no answer yet.",
    },
    "desk_reminder_overdue": {
        "sv": "🔴 {reference} skulle ha besvarats senast {due}. Medlemmen väntar.",
        "en": "🔴 {reference} should have been answered by {due}. The member is waiting.",
    },
    "desk_queue_header": {
        "sv": "<b>Kön – {count} öppna ärenden</b>",
        "en": "<b>Queue – {count} open cases</b>",
    },
    "desk_queue_empty": {"sv": "Kön är tom. 🎉", "en": "The queue is empty. 🎉"},
    "desk_queue_line": {
        "sv": "{state} <b>{reference}</b> · {age} · {status} · {question}",
        "en": "{state} <b>{reference}</b> · {age} · {status} · {question}",
    },
    "desk_digest_header": {
        "sv": "☀️ <b>God morgon! Dagens kö</b>",
        "en": "☀️ <b>Good morning! Today's queue</b>",
    },
    "desk_case_usage": {"sv": "Skriv /case F-ÅÅÅÅ-NNNN.", "en": "Write /case F-YYYY-NNNN."},
    "desk_mine_empty": {"sv": "Du har inga öppna ärenden.", "en": "You have no open cases."},
    "desk_close_where": {
        "sv": "Skriv /close i ärendets ämne, eller som svar på ärendekortet.",
        "en": "Write /close in the case's topic, or as a reply to the case card.",
    },
    "desk_stats_usage": {
        "sv": "Skriv /stats, /stats 7d, /stats 12w eller /stats all.",
        "en": "Write /stats, /stats 7d, /stats 12w or /stats all.",
    },
    "desk_stats": {
        "sv": (
            "<b>Statistik {since}–{until}</b>\n"
            "Ärenden: {cases} · per status: {statuses}\n"
            "Per förvaltning: {departments}\n"
            "Median till första svar: {first} · till stängt: {close} (arbetstimmar)\n"
            "Frågor: {questions} · lösta utan person: {without}\n"
            "👍 {helpful} · 👎 {not_helpful} · betyg: {rating}"
        ),
        "en": (
            "<b>Statistics {since}–{until}</b>\n"
            "Cases: {cases} · by status: {statuses}\n"
            "By department: {departments}\n"
            "Median to first response: {first} · to closed: {close} (office hours)\n"
            "Questions: {questions} · resolved without a person: {without}\n"
            "👍 {helpful} · 👎 {not_helpful} · rating: {rating}"
        ),
    },
    "member_reply": {
        "sv": (
            "💬 <b>Svar i ärende {reference}</b>\n\n{text}\n\n"
            "<i>Föreningssamordnaren, Helsingborgs stad</i>"
        ),
        "en": (
            "💬 <b>Reply in case {reference}</b>\n\n{text}\n\n"
            "<i>The association coordinator, City of Helsingborg</i>"
        ),
    },
    "member_handed_over": {
        "sv": (
            "Ditt ärende <b>{reference}</b> har lämnats över till <b>{department}</b>, som tar "
            "det vidare.\n\n{card}"
        ),
        "en": (
            "Your case <b>{reference}</b> has been handed over to <b>{department}</b>, who take "
            "it from here.\n\n{card}"
        ),
    },
    "member_closed": {
        "sv": (
            "Ärende <b>{reference}</b> är nu avslutat.{note}\n\n"
            "Hur nöjd är du med hjälpen? (1 = inte alls, 5 = mycket)"
        ),
        "en": (
            "Case <b>{reference}</b> is now closed.{note}\n\n"
            "How satisfied are you with the help? (1 = not at all, 5 = very)"
        ),
    },
    "member_closed_note": {"sv": "\n\n<i>{note}</i>", "en": "\n\n<i>{note}</i>"},
    "member_rated": {"sv": "Tack för ditt betyg! ⭐", "en": "Thank you for your rating! ⭐"},
    "member_reopened": {
        "sv": (
            "Jag har öppnat ärende <b>{reference}</b> igen och lagt till det du skrev. Du får "
            "svar senast <b>{due}</b>."
        ),
        "en": (
            "I have reopened case <b>{reference}</b> and added what you wrote. You will get an "
            "answer by <b>{due}</b>."
        ),
    },
    "out_of_hours": {
        "sv": "\n\n🕔 Vi har stängt just nu. Vi läser din fråga från <b>{opening}</b>.",
        "en": "\n\n🕔 We are closed right now. We will read your question from <b>{opening}</b>.",
    },
    "button_already_rated": {
        "sv": "Du har redan gett ett betyg. Tack!",
        "en": "You have already rated. Thanks!",
    },
    "command_start": {"sv": "Välkommen och information om dina uppgifter", "en": "Welcome"},
    "command_help": {"sv": "Så använder du botten", "en": "How to use the bot"},
    "command_language": {"sv": "Byt språk", "en": "Change language"},
    "command_mycases": {"sv": "Dina ärenden", "en": "Your cases"},
    "command_register": {"sv": "Registrera er förening", "en": "Register your association"},
    "command_find": {"sv": "Hitta andra föreningar", "en": "Find other associations"},
    "command_subscribe": {"sv": "Välj vad du vill få meddelanden om", "en": "Choose messages"},
    "command_unsubscribe": {"sv": "Sluta få meddelanden", "en": "Stop messages"},
    "command_cancel": {"sv": "Avbryt registreringen", "en": "Cancel the registration"},
}

WEEKDAYS = {
    "sv": ["måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag", "söndag"],
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
}
MONTHS = {
    "sv": [
        "januari",
        "februari",
        "mars",
        "april",
        "maj",
        "juni",
        "juli",
        "augusti",
        "september",
        "oktober",
        "november",
        "december",
    ],
    "en": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
}


def text(key: str, language: str, **values: object) -> Html:
    """The catalogue text ``key`` in ``language`` (Swedish if missing), values escaped."""
    variants = TEXTS[key]
    template = variants.get(language) or variants["sv"]
    escaped = {
        name: value if isinstance(value, Html) else html.escape(str(value), quote=False)
        for name, value in values.items()
    }
    return Html(template.format(**escaped))


def format_due(moment: datetime, zone: ZoneInfo, language: str) -> str:
    local = moment.astimezone(zone)
    weekday = WEEKDAYS[language if language in WEEKDAYS else "sv"][local.weekday()]
    month = MONTHS[language if language in MONTHS else "sv"][local.month - 1]
    if language == "en":
        return f"{weekday} {local.day} {month} at {local:%H:%M}"
    return f"{weekday} {local.day} {month} kl. {local:%H.%M}"


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")


def markdown_to_html(markdown: str) -> Html:
    """The knowledge base's Markdown (bold, italic, lists, headings, links) as Telegram HTML."""
    lines = []
    for raw in markdown.splitlines():
        line = html.escape(raw.rstrip(), quote=False)
        heading = re.match(r"^#{1,6}\s+(.*)$", line)
        if heading:
            line = f"<b>{heading.group(1)}</b>"
        line = re.sub(r"^(\s*)[-*]\s+", lambda m: f"{m.group(1)}• ", line)
        line = _BOLD.sub(r"<b>\1</b>", line)
        line = _ITALIC.sub(r"<i>\1</i>", line)
        line = _LINK.sub(lambda m: f'<a href="{m.group(2)}">{m.group(1)}</a>', line)
        lines.append(line)
    return Html(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip())


def contact_card(department: Department, language: str) -> Html:
    name = department.name_en if language == "en" and department.name_en else department.name
    lines = [text("contact_card", language, name=name)]
    contact = department.contact
    for field in ("phone", "email", "web", "hours"):
        value = getattr(contact, field)
        if value:
            lines.append(text(f"contact_{field}", language, value=value))
    return Html("\n".join(lines))


def department_name(department: Department, language: str) -> str:
    return department.name_en if language == "en" and department.name_en else department.name


def split_message(message: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split at paragraph, then line, then word boundaries into parts of at most ``limit``.

    Texts are built so that no HTML tag spans a line, so splitting between lines keeps every
    part valid; a single over-long line is cut between words (a typed text carries no tags).
    """
    if len(message) <= limit:
        return [message]
    parts: list[str] = []
    current = ""
    for piece in _pieces(message, limit):
        candidate = f"{current}\n{piece}" if current else piece
        if len(candidate) <= limit:
            current = candidate
        else:
            if current:
                parts.append(current)
            current = piece
    if current:
        parts.append(current)
    return parts


def _pieces(message: str, limit: int) -> Iterable[str]:
    for line in message.split("\n"):
        while len(line) > limit:
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            # Never cut inside an HTML entity such as &amp;.
            amp = line.rfind("&", max(0, cut - 8), cut)
            if amp != -1 and ";" not in line[amp:cut]:
                cut = amp
            yield line[:cut]
            line = line[cut:].lstrip(" ")
        yield line
