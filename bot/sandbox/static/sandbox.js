// The sandbox page: two chats over the sandbox's JSON API. Plain DOM, no build step.
// Every text shown comes from people or the bot, so it only ever reaches the page through
// textContent and attributes, never as HTML: Telegram's entities are turned into elements.
"use strict";

const state = {
  world: null,
  overview: null,
  version: -1,
  member: null,        // user id of the person in the private chat
  coordinator: null,   // user id of the coordinator acting in the group
  topic: null,         // thread id shown in the group (null: the general chat)
  seen: {},            // chat or topic key -> messages seen, for the badges
  replyTo: { member: null, desk: null },
  shown: { member: "", desk: "" },
};

const HINTS = {
  member: [
    "Hur bokar vi träningstider i en idrottshall?",
    "How do we apply for a grant for our culture association?",
    "كيف نحجز أوقات التدريب في صالة رياضية؟",
    "Vi vill hyra en lokal av kommunen",
    "Jag vill prata med en människa",
    "/start", "/mycases", "/register", "/find", "/subscribe", "/events", "/language", "/mydata",
  ],
  admin: ["/reload", "/reload force", "/rules", "/rollback", "/start", "/help"],
  desk: [
    "/queue", "/mine", "/stats", "#intern ", "/close Tack, nu är det ordnat.", "/associations",
    "/announce nyheter | Nya halltider | Från januari gäller nya tider i idrottshallarna.",
    "/event dialogmoten | Dialogmöte | 2030-03-10 18:00 | Rådhuset | Välkomna!",
  ],
};

const PALETTE = ["#e17076", "#7bc862", "#e5a64e", "#65aadd", "#a695e7", "#ee7aae", "#6ec9cb", "#faa774"];

// -- small helpers ---------------------------------------------------------------------------

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function $(selector) { return document.querySelector(selector); }

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const reason = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    throw new Error(reason);
  }
  return body;
}

function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

let toastTimer = null;
function toast(message, isError) {
  const el = $("#toast");
  el.textContent = message;
  el.classList.toggle("error", Boolean(isError));
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, isError ? 6000 : 3500);
}

function avatar(person) {
  const el = h("span", { class: "avatar", "aria-hidden": "true", text: (person.first_name || "?")[0] });
  el.style.setProperty("--avatar", PALETTE[Math.abs(person.id) % PALETTE.length]);
  return el;
}

function person(id) { return state.world.people.find((p) => p.id === id); }

function clock(seconds) {
  if (!seconds) return "";
  const date = new Date(seconds * 1000);
  return date.toLocaleTimeString("sv-SE", { hour: "2-digit", minute: "2-digit" });
}

function size(bytes) {
  if (bytes === null || bytes === undefined) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

// -- Telegram's entities, as elements -----------------------------------------------------------
// Offsets are in UTF-16 code units, which is what JavaScript strings index by.

function safeHref(url) {
  try {
    const parsed = new URL(url);  // an absolute URL, or it throws
    if (["http:", "https:", "mailto:", "tel:"].includes(parsed.protocol)) return parsed.href;
  } catch (_) { /* not a URL: shown as plain text */ }
  return null;
}

function entityElement(entity, text, actor) {
  const link = (href) => (href
    ? h("a", { href, target: "_blank", rel: "noopener noreferrer" })
    : h("span", {}));
  switch (entity.type) {
    case "bold": return h("b");
    case "italic": return h("i");
    case "underline": return h("u");
    case "strikethrough": return h("s");
    case "code": return h("code");
    case "pre": return h("pre");
    case "blockquote":
    case "expandable_blockquote": return h("blockquote");
    case "spoiler": {
      const el = h("span", { class: "spoiler", title: "Visa · Show" });
      el.addEventListener("click", () => el.classList.add("shown"));
      return el;
    }
    case "text_link": return link(safeHref(entity.url || ""));
    case "url": return link(safeHref(/^[a-z]+:/i.test(text) ? text : `http://${text}`));
    case "email": return link(safeHref(`mailto:${text}`));
    case "phone_number": return link(safeHref(`tel:${text.replace(/[^+\d]/g, "")}`));
    case "bot_command": {
      if (!actor) return h("span", { class: "command" });
      return h("span", {
        class: "command", role: "button", tabindex: "0", title: "Skicka · Send",
        onclick: () => actor(text),
      });
    }
    default: return h("span", { class: entity.type.replace(/[^a-z_]/g, "") });
  }
}

function renderText(text, entities, actor) {
  const root = h("div", { class: "text", dir: "auto" });
  const list = (entities || [])
    .filter((e) => Number.isInteger(e.offset) && Number.isInteger(e.length) && e.length > 0)
    .map((e) => ({ ...e, end: e.offset + e.length }))
    .sort((a, b) => a.offset - b.offset || b.length - a.length);

  function build(container, start, end, items) {
    let pos = start;
    let i = 0;
    while (i < items.length) {
      const entity = items[i];
      const from = Math.max(entity.offset, pos);
      const to = Math.min(entity.end, end);
      if (from >= to) { i += 1; continue; }
      if (from > pos) container.append(text.slice(pos, from));
      const inner = [];
      let j = i + 1;
      while (j < items.length && items[j].offset < to) {
        inner.push({ ...items[j], offset: Math.max(items[j].offset, from), end: Math.min(items[j].end, to) });
        j += 1;
      }
      const el = entityElement(entity, text.slice(from, to), actor);
      build(el, from, to, inner);
      container.append(el);
      pos = to;
      i = j;
    }
    if (pos < end) container.append(text.slice(pos, end));
  }
  build(root, 0, text.length, list);
  return root;
}

// -- messages ----------------------------------------------------------------------------------

function renderMessage(message, pane, chatId, viewer) {
  const mine = !message.from_bot && message.sender.id === viewer;
  const actor = (command) => sendText(pane, command);
  const bubble = h("div", { class: "bubble", dir: "auto" });
  if (!mine && (pane === "desk" || message.from_bot)) {
    bubble.append(h("div", { class: message.from_bot ? "sender bot" : "sender", text: message.sender.name }));
  }
  if (message.reply_to) {
    bubble.append(h("div", { class: "quote", dir: "auto" },
      h("b", { text: message.reply_to.sender }), message.reply_to.text || "…"));
  }
  if (message.file) {
    const file = message.file;
    if (file.kind === "photo" && file.url) {
      bubble.append(h("img", { class: "photo", src: file.url, alt: "bild · photo" }));
    } else if (file.url) {
      bubble.append(h("a", { class: "file", href: file.url, target: "_blank", rel: "noopener" },
        "📄 ", file.name, " ", h("span", { class: "size", text: size(file.size) })));
    } else {
      bubble.append(h("span", { class: "file", text: `${file.name}` }));
    }
  }
  if (message.text) bubble.append(renderText(message.text, message.entities, actor));
  bubble.append(h("div", { class: "meta", text: clock(message.date) + (message.edited ? " · redigerad" : "") }));

  const el = h("div", { class: mine ? "msg out" : "msg in", dataset: { id: message.id } }, bubble);
  if (message.buttons && message.buttons.length) {
    const kb = h("div", { class: "kb" });
    message.buttons.forEach((row, r) => {
      const rowEl = h("div", { class: "kb-row" });
      row.forEach((button, c) => {
        if (button.url) {
          rowEl.append(h("a", { href: button.url, target: "_blank", rel: "noopener noreferrer", text: `${button.text} ↗` }));
        } else {
          rowEl.append(h("button", {
            type: "button", text: button.text, disabled: Boolean(button.disabled),
            onclick: (event) => press(pane, chatId, message.id, r, c, event.currentTarget),
          }));
        }
      });
      kb.append(rowEl);
    });
    el.append(kb);
  }
  el.append(h("button", {
    type: "button", class: "reply-btn", title: "Svara · Reply", "aria-label": "Svara", text: "↩",
    onclick: () => setReply(pane, message),
  }));
  return el;
}

function renderMessages(pane, container, data, chatId, viewer, emptyText) {
  const key = JSON.stringify([data.messages, viewer]);
  if (state.shown[pane] === key) return;
  state.shown[pane] = key;
  const nearBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 80;
  const previousCount = container.querySelectorAll(".msg").length;
  container.replaceChildren();
  if (!data.messages.length) container.append(h("p", { class: "empty", text: emptyText }));
  for (const message of data.messages) container.append(renderMessage(message, pane, chatId, viewer));
  if (nearBottom || data.messages.length !== previousCount) container.scrollTop = container.scrollHeight;
}

// -- actions -------------------------------------------------------------------------------------

function paneTarget(pane) {
  if (pane === "member") return { as: state.member, chat: state.member, thread: null };
  return { as: state.coordinator, chat: state.world.desk.chat_id, thread: state.topic };
}

async function sendText(pane, text) {
  const target = paneTarget(pane);
  const replyTo = state.replyTo[pane];
  try {
    await post("/api/send", { ...target, text, reply_to: replyTo ? replyTo.id : null });
    setReply(pane, null);
    return true;
  } catch (error) {
    toast(error.message, true);
    return false;
  }
}

async function press(pane, chatId, messageId, row, column, button) {
  const target = paneTarget(pane);
  button.disabled = true;
  try {
    const result = await post("/api/press", { as: target.as, chat: chatId, message: messageId, row, column });
    if (result.answer && result.answer.text) toast(result.answer.text);
  } catch (error) {
    toast(error.message, true);
  } finally {
    button.disabled = false;
  }
}

async function upload(pane, file) {
  const target = paneTarget(pane);
  const form = new FormData();
  form.append("as", target.as);
  form.append("chat", target.chat);
  if (target.thread !== null) form.append("thread", target.thread);
  const replyTo = state.replyTo[pane];
  if (replyTo) form.append("reply_to", replyTo.id);
  form.append("file", file, file.name);
  try {
    await api("/api/upload", { method: "POST", body: form });
    setReply(pane, null);
  } catch (error) {
    toast(error.message, true);
  }
}

function setReply(pane, message) {
  state.replyTo[pane] = message ? { id: message.id } : null;
  const box = $(`#${pane}-composer .replying`);
  if (!message) { box.hidden = true; box.replaceChildren(); return; }
  box.replaceChildren(
    h("span", { dir: "auto" }, "↩ Svarar ", h("b", { text: message.sender.name }), ": ",
      (message.text || (message.file && message.file.name) || "").slice(0, 80)),
    h("button", { type: "button", title: "Avbryt · Cancel", text: "✕", onclick: () => setReply(pane, null) }),
  );
  box.hidden = false;
  $(`#${pane}-composer textarea`).focus();
}

function wireComposer(pane) {
  const form = $(`#${pane}-composer`);
  const textarea = form.querySelector("textarea");
  const grow = () => { textarea.style.height = "auto"; textarea.style.height = `${Math.min(textarea.scrollHeight, 128)}px`; };
  textarea.addEventListener("input", grow);
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = textarea.value.trim();
    if (!text) return;
    const button = form.querySelector(".send");
    button.disabled = true;
    if (await sendText(pane, text)) { textarea.value = ""; grow(); }
    button.disabled = false;
    textarea.focus();
  });
  const input = form.querySelector("input[type=file]");
  input.addEventListener("change", async () => {
    if (input.files && input.files[0]) await upload(pane, input.files[0]);
    input.value = "";
  });
}

function renderHints(pane) {
  const box = $(`#${pane}-hints`);
  const who = pane === "member" ? person(state.member) : null;
  const hints = pane === "desk" ? HINTS.desk : (who && who.admin ? HINTS.admin : HINTS.member);
  const textarea = $(`#${pane}-composer textarea`);
  box.replaceChildren(h("span", { class: "hint-label", text: "Prova:" }));
  for (const hint of hints) {
    box.append(h("button", {
      type: "button", text: hint, dir: "auto",
      onclick: () => { textarea.value = hint; textarea.focus(); textarea.dispatchEvent(new Event("input")); },
    }));
  }
}

// -- the two panes ---------------------------------------------------------------------------------

function unread(key, count) {
  if (state.seen[key] === undefined) state.seen[key] = 0;
  return Math.max(0, count - state.seen[key]);
}

function personChip(p, selected, onSelect, badge) {
  return h("button", {
    type: "button", class: "person", role: "tab", "aria-selected": selected ? "true" : "false",
    dataset: { person: p.id }, onclick: onSelect, title: `${p.label} · språk ${p.language_code}`,
  },
  avatar(p),
  h("span", { class: "who" }, h("span", { class: "name", text: p.first_name }), h("span", { class: "aff", text: p.affiliation })),
  badge ? h("span", { class: "badge", text: badge }) : null);
}

function renderPeople() {
  const counts = state.overview ? state.overview.chats : {};
  $("#people").replaceChildren(...state.world.people.map((p) => personChip(
    p, p.id === state.member,
    () => { state.member = p.id; setReply("member", null); renderHints("member"); refresh(); },
    p.id === state.member ? 0 : unread(`chat:${p.id}`, counts[p.id] || 0),
  )));
  $("#coordinators").replaceChildren(...state.world.people.filter((p) => p.role === "coordinator").map((p) => personChip(
    p, p.id === state.coordinator, () => { state.coordinator = p.id; renderPeople(); refresh(); }, 0,
  )));
  const who = person(state.member);
  const bot = state.world.bot;
  const role = who.role === "coordinator" ? "samordnare och admin · coordinator and admin" : who.affiliation;
  $("#member-head").replaceChildren(
    avatar({ id: bot.id, first_name: bot.name }),
    h("div", {}, h("div", { class: "title", text: `${bot.name} ` }, h("span", { class: "en", text: `@${bot.username}` })),
      h("div", { class: "status", text: `${who.first_name} (${role}) · Telegram-språk: ${who.language_code}` })),
  );
}

function renderTopics() {
  const topics = state.overview ? state.overview.topics : [];
  const general = topics.filter((t) => t.thread_id === null);
  const rest = topics.filter((t) => t.thread_id !== null).sort((a, b) => b.last - a.last || b.thread_id - a.thread_id);
  $("#topics").replaceChildren(...[...general, ...rest].map((topic) => {
    const key = `topic:${topic.thread_id}`;
    const selected = topic.thread_id === state.topic;
    const badge = selected ? 0 : unread(key, topic.count);
    const dot = h("span", { class: "dot" });
    if (topic.icon_color) dot.style.setProperty("--dot", `#${topic.icon_color.toString(16).padStart(6, "0")}`);
    return h("button", {
      type: "button", class: topic.closed ? "topic closed" : "topic", role: "tab",
      "aria-selected": selected ? "true" : "false", dataset: { thread: topic.thread_id === null ? "general" : topic.thread_id },
      onclick: () => { state.topic = topic.thread_id; setReply("desk", null); renderTopics(); refresh(); },
    }, dot, h("span", { class: "tname", dir: "auto", text: (topic.closed ? "🔒 " : "") + topic.name }),
    badge ? h("span", { class: "badge", text: badge }) : null);
  }));
  const current = topics.find((t) => t.thread_id === state.topic);
  $("#topic-head").replaceChildren(...[
    h("div", {},
      h("div", { class: "title", dir: "auto", text: current ? current.name : "Allmänt" }),
      h("div", { class: "status", text: state.topic === null
        ? "Gruppens allmänna chatt: /queue, /stats, /announce … · the group's general chat"
        : "Det du skriver här når medlemmen · what you write here reaches the member" })),
    current && current.closed ? h("span", { class: "closed", text: "🔒 stängt · closed" }) : null,
  ].filter(Boolean));
}

function renderKeyboard(rows) {
  const box = $("#member-keyboard");
  if (!rows || !rows.length) { box.hidden = true; box.replaceChildren(); return; }
  box.replaceChildren(...rows.map((row) => h("div", { class: "kb-row" },
    ...row.map((label) => h("button", { type: "button", text: label, onclick: () => sendText("member", label) })))));
  box.hidden = false;
}

function renderWhere() {
  const info = state.world.info || {};
  const admin = state.world.people.find((p) => p.admin);
  const parts = [];
  if (info.rules_path) {
    parts.push("Regeltabell (en kopia): ", h("code", { text: info.rules_path }),
      admin ? ` — ändra den och skriv /reload som ${admin.first_name}. ` : ". ");
  }
  if (info.database) parts.push("Databas: ", h("code", { text: info.database }));
  $("#where").replaceChildren(...parts);
}

// -- keeping up ------------------------------------------------------------------------------------

let refreshing = null;
let again = false;

async function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    do {
      again = false;
      try {
        const thread = state.topic === null ? "general" : state.topic;
        const [overview, member, desk] = await Promise.all([
          api("/api/overview"),
          api(`/api/chats/${state.member}/messages`),
          api(`/api/chats/${state.world.desk.chat_id}/messages?thread=${thread}`).catch(() => null),
        ]);
        state.overview = overview;
        if (!desk) { state.topic = null; again = true; continue; }
        state.seen[`chat:${state.member}`] = overview.chats[state.member] || 0;
        const topic = overview.topics.find((t) => t.thread_id === state.topic);
        if (topic) state.seen[`topic:${state.topic}`] = topic.count;
        renderPeople();
        renderTopics();
        const who = person(state.member);
        renderMessages("member", $("#member-messages"), member, state.member, state.member,
          `Det här är ${who.first_name}s chatt med boten. Skriv en fråga, eller /start. · Ask a question, or /start.`);
        renderKeyboard(member.keyboard);
        renderMessages("desk", $("#desk-messages"), desk, state.world.desk.chat_id, state.coordinator,
          state.topic === null
            ? "Nya ärenden får ett eget ämne här till vänster. · New cases get a topic of their own."
            : "Inga meddelanden ännu.");
        const composer = $("#desk-composer");
        composer.querySelector("textarea").disabled = Boolean(desk.closed);
        composer.querySelector(".send").disabled = Boolean(desk.closed);
      } catch (error) {
        toast(`Kunde inte läsa chatten: ${error.message}`, true);
      }
    } while (again);
  })();
  try { await refreshing; } finally { refreshing = null; }
  return undefined;
}

async function follow() {
  for (;;) {
    try {
      const change = await api(`/api/changes?after=${state.version}`);
      if (change.version !== state.version) {
        state.version = change.version;
        await refresh();
      }
    } catch (_) {
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
  }
}

async function start() {
  state.world = await api("/api/world");
  state.version = state.world.version;
  state.member = state.world.people.find((p) => p.role === "member").id;
  state.coordinator = state.world.people.find((p) => p.role === "coordinator").id;
  const overview = await api("/api/overview");
  for (const [id, count] of Object.entries(overview.chats)) state.seen[`chat:${id}`] = count;
  for (const topic of overview.topics) state.seen[`topic:${topic.thread_id}`] = topic.count;
  $("#desk-title").replaceChildren(state.world.desk.title, " ", h("span", { class: "en", text: "coordinator group" }));
  renderWhere();
  wireComposer("member");
  wireComposer("desk");
  renderHints("member");
  renderHints("desk");
  await refresh();
  document.body.dataset.ready = "true";
  follow();
}

document.addEventListener("DOMContentLoaded", () => {
  start().catch((error) => toast(`Sandlådan svarar inte: ${error.message}`, true));
});
