/*
 * pgchat browser client: plain ES module, no framework, no build step.
 *
 * Talks the node_chat long-polling protocol with RELATIVE urls only
 * (`join`, `part`, `send`, `recv`, `who`), so the page also works when it
 * is served under a prefix such as /chat/.
 *
 * Safety: user text only ever reaches the DOM through textContent /
 * text nodes; links are built as elements and only get an href when the
 * URL parses with protocol http: or https: (javascript:, data:, vbscript:
 * and every other scheme stay plain text). There is no innerHTML here.
 * Every nick and message is isolated (unicode-bidi: isolate in style.css),
 * so right-to-left text cannot reorder what surrounds it.
 *
 * No secrets in URLs: join, part and send are POSTed forms with the id in
 * the body; recv is a GET with only since and room in its query, the id in
 * the X-Pgchat-Id header. URLs reach logs (nginx's error log on a failure,
 * proxies); bodies and this header do not.
 * No inline scripts or style attributes either (CSP: script-src/style-src
 * 'self'); visibility is switched with the `hidden` attribute and classes.
 *
 * ---------------------------------------------------------------------
 * Stable ids / classes (contract for tests, see t/browser/chat.mjs):
 *
 *   #join-screen   section holding the join form (hidden while chatting)
 *   #join-form     the join <form>; #nick and #room are its inputs,
 *                  #join-button its submit button
 *   #join-error    inline join error (client validation or server error
 *                  such as "Nick in use" / "Bad nick."); empty when none
 *   #chat          chat section (has the `hidden` attribute until joined)
 *   #log           <ol> of messages; each message is an <li class="line">
 *                  with one of .msg / .join / .part, plus .mention when a
 *                  message from someone else contains your nick and .self
 *                  for your own; data-ts = server timestamp (ms).
 *                  Children: time.time (text HH:MM, title = full date,
 *                  datetime = ISO), span.nick, span.text (links inside
 *                  are <a target=_blank rel="noopener noreferrer">).
 *                  Non-message rows are li.day (date divider) and
 *                  li.notice (e.g. skipped-messages gap) - never .line.
 *                  A message of ours not yet delivered is li.pending
 *                  (data-mid; .retrying while the server is unreachable),
 *                  below the lines, never .line: it becomes a .line when
 *                  its copy with the same mid comes back through recv.
 *                  li.notice.start tops the log once scrollback has
 *                  reached the room's first message.
 *   #new-messages  button shown when lines arrived while scrolled up
 *   #who           <ul> of people in the room, one <li> per nick
 *                  (li.me for yourself)
 *   #who-toggle    toolbar button showing / hiding the who list
 *   #user-count    number of people in the room (toolbar)
 *   #uptime        server uptime, from `starttime` (e.g. "2h 05m")
 *   #rss           server memory, from `rss` (e.g. "12.4 MiB")
 *   #status        text is exactly one of: connected | reconnecting |
 *                  offline (also in data-state)
 *   #banner        connection problem banner; #retry retries at once
 *   #room-name     current room (toolbar)
 *   #leave         leave button (parts and shows the join screen)
 *   #send-form     message form; #input its textarea, #send-button
 *   #send-error    inline send error ("Message too long", ...); empty
 *                  when none
 *   #search-form   the room's search; #search-input its input (Enter or a
 *                  pause in typing searches), #search-status the count
 *                  or the error, #search-results an <ol> of li.result,
 *                  each a button.result-button (data-ts) holding
 *                  time.time, span.nick and span.text, where the words of
 *                  the query are <mark> elements made here (the server
 *                  sends plain text). Clicking one loads /history pages
 *                  back until its line is in #log, scrolls to it and
 *                  marks it li.found (one at a time).
 *
 * Title: "pgchat", or "(N) pgchat" while the tab is hidden and N messages
 * from others arrived; visibility is read from document.hidden /
 * document.visibilityState at every visibilitychange event.
 * ---------------------------------------------------------------------
 */

const NICK_RE = /^[A-Za-z0-9_\-^!]{1,50}$/;
const NICK_MAX = 50;
const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const DEFAULT_ROOM = 'lobby';
const BASE_TITLE = 'pgchat';
const MAX_MESSAGE_BYTES = 4096;
const RECV_BATCH = 200;          // server sends at most this many per reply
const RECV_TIMEOUT_MS = 45000;   // server holds a recv up to 20 s
const REQUEST_TIMEOUT_MS = 20000;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const MAX_LOG_ROWS = 2000;       // older rows are dropped from the DOM
const BOTTOM_SLACK_PX = 48;
const HISTORY_PAGE = 50;         // messages per /history page
const TOP_SLACK_PX = 300;        // scrolled this close to the top: load older
const SEARCH_LIMIT = 50;         // results per search (the server's maximum)
const SEARCH_MAX_CHARS = 200;
const SEARCH_DELAY_MS = 400;     // typing pauses this long: search
const JUMP_MAX_PAGES = 200;      // a jump loads at most 10,000 messages back
const WORD_RE = /[\p{L}\p{N}]+/gu; // roughly what the 'simple' parser calls a word

const $ = (id) => document.getElementById(id);
const el = {
  joinScreen: $('join-screen'),
  joinForm: $('join-form'),
  nick: $('nick'),
  room: $('room'),
  joinError: $('join-error'),
  joinButton: $('join-button'),
  chat: $('chat'),
  log: $('log'),
  newMessages: $('new-messages'),
  who: $('who'),
  whoToggle: $('who-toggle'),
  whoPanel: $('who-panel'),
  userCount: $('user-count'),
  uptime: $('uptime'),
  rss: $('rss'),
  status: $('status'),
  banner: $('banner'),
  bannerText: $('banner-text'),
  retry: $('retry'),
  roomLabel: $('room-label'),
  roomName: $('room-name'),
  leave: $('leave'),
  sendForm: $('send-form'),
  input: $('input'),
  sendButton: $('send-button'),
  sendError: $('send-error'),
  searchForm: $('search-form'),
  searchInput: $('search-input'),
  searchStatus: $('search-status'),
  searchResults: $('search-results'),
};

const state = {
  gen: 0,             // bumped on every join/leave; stale loops exit
  joined: false,
  nick: null,
  room: DEFAULT_ROOM,
  id: null,
  since: 0,           // timestamp of the last message shown (recv cursor)
  catchingUp: true,   // still loading the history after a join
  needWho: true,      // refresh the who list once caught up
  verifySelf: false,  // after a reconnect: check we are still in `who`
  who: new Set(),
  whoPending: null,   // join/part events seen while a `who` is in flight
  failures: 0,        // consecutive recv failures
  retryAt: 0,
  wake: null,         // resolves the current back-off pause early
  pollCtl: null,
  rejoinP: null,
  unread: 0,
  newCount: 0,
  lastDay: null,
  starttime: null,
  stickToBottom: false, // scroll down when our own message comes back
  stuck: true,          // the log was scrolled to the bottom
  more: false,          // older messages exist before the first line shown
  loadingOlder: false,
  outbox: [],           // {mid, text, li}: sends not yet answered 200, in order
  pending: new Map(),   // mid -> li.pending, until its copy is delivered
  outboxGen: -1,        // the session whose outbox loop is running
  outboxWake: null,     // ends the outbox's back-off early
  searchSeq: 0,         // the newest search; older answers are dropped
  jumpSeq: 0,           // the newest jump to a result
};

/* ------------------------------------------------------------------ */
/* helpers                                                             */

function pad2(n) { return String(n).padStart(2, '0'); }

function hhmm(d) { return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`; }

function fullDate(d) {
  try {
    return d.toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'medium' });
  } catch {
    return d.toString();
  }
}

function formatDuration(ms) {
  let s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${pad2(m)}m`;
  if (m) return `${m}m ${pad2(s)}s`;
  return `${s}s`;
}

function formatBytes(n) {
  n = Number(n);
  if (!Number.isFinite(n) || n < 0) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

function utf8Length(s) { return new TextEncoder().encode(s).length; }

function nickColor(nick) {
  let h = 0;
  for (let i = 0; i < nick.length; i++) h = (h * 31 + nick.charCodeAt(i)) >>> 0;
  return h % 8;
}

function isSessionError(err) { return /no such session/i.test(String(err || '')); }

function backoffDelay(failures) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, failures - 1));
  // jitter: 75 % .. 125 % of the step, never above the cap
  return Math.min(BACKOFF_MAX_MS, Math.round(base * (0.75 + Math.random() * 0.5)));
}

function isHidden() {
  return document.hidden === true || document.visibilityState === 'hidden';
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

/** Back-off pause that wake() ends early (retry button, online, send ok). */
function pause(ms) {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      if (state.wake === done) state.wake = null;
      resolve();
    }
    state.wake = done;
  });
}

function wake() {
  if (state.wake) state.wake();
  if (state.outboxWake) state.outboxWake();
}

/** A fresh message id: 128 random bits as hex (the server takes 1-64 of
 *  [A-Za-z0-9_-]). */
function newMid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * fetch wrapper: never throws. Returns {ok, status, data}; status 0 means
 * network error / timeout / abort. `form` is sent as
 * application/x-www-form-urlencoded.
 */
async function request(path, { form = null, headers = {}, timeout = REQUEST_TIMEOUT_MS, signal = null } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeout);
  const onAbort = () => ctl.abort();
  if (signal) {
    if (signal.aborted) ctl.abort();
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  const init = {
    method: form ? 'POST' : 'GET',
    signal: ctl.signal,
    cache: 'no-store',
    credentials: 'same-origin',
    headers: { Accept: 'application/json', ...headers },
  };
  if (form) {
    init.headers['Content-Type'] = 'application/x-www-form-urlencoded';
    init.body = new URLSearchParams(form).toString();
  }
  try {
    const res = await fetch(path, init);
    let data = null;
    try { data = await res.json(); } catch { data = null; }
    if (!data || typeof data !== 'object') data = {};
    return { ok: res.ok, status: res.status, data };
  } catch (err) {
    return { ok: false, status: 0, data: {}, aborted: ctl.signal.aborted, err };
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener('abort', onAbort);
  }
}

/* ------------------------------------------------------------------ */
/* room from the URL                                                   */

/* A hash that is not valid percent-encoding (#%E0) names no room. */
function decodedHash() {
  try {
    return decodeURIComponent(location.hash.replace(/^#/, ''));
  } catch {
    return '';
  }
}

function roomFromUrl() {
  const hash = decodedHash();
  if (hash && ROOM_RE.test(hash)) return hash;
  const q = new URLSearchParams(location.search).get('room');
  if (q && ROOM_RE.test(q)) return q;
  return null;
}

function setUrlRoom(room) {
  if (roomFromUrl() === room) return;
  if (!roomFromUrl() && room === DEFAULT_ROOM) return;
  const url = new URL(location.href);
  url.searchParams.delete('room');
  url.hash = room;
  history.replaceState(history.state, '', url);
}

/* ------------------------------------------------------------------ */
/* toolbar                                                             */

function setStatus(s) {
  if (el.status.textContent !== s) el.status.textContent = s;
  el.status.dataset.state = s;
}

function setRss(rss) {
  if (rss !== undefined && rss !== null) el.rss.textContent = formatBytes(rss);
}

function updateUptime() {
  if (state.starttime) el.uptime.textContent = formatDuration(Date.now() - state.starttime);
}

function applyServerInfo(data) {
  setRss(data.rss);
  const st = Number(data.starttime);
  if (Number.isFinite(st) && st > 0) {
    state.starttime = st;
    el.uptime.title = `Server up since ${fullDate(new Date(st))}`;
    updateUptime();
  }
}

function updateTitle() {
  document.title = state.unread > 0 ? `(${state.unread}) ${BASE_TITLE}` : BASE_TITLE;
}

function showBanner() {
  if (!state.joined || state.failures === 0) {
    el.banner.hidden = true;
    return;
  }
  const secs = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
  const what = navigator.onLine === false ? 'You are offline.' : 'Connection to the server lost.';
  el.bannerText.textContent = secs > 0 ? `${what} Reconnecting in ${secs} s…` : `${what} Reconnecting…`;
  el.banner.hidden = false;
}

/* ------------------------------------------------------------------ */
/* who list                                                            */

const narrowQuery = matchMedia('(max-width: 760px)');

function whoPanelVisible() {
  const toggled = el.chat.classList.contains('who-toggled');
  return narrowQuery.matches ? toggled : !toggled;
}

function updateWhoToggle() {
  el.whoToggle.setAttribute('aria-expanded', String(whoPanelVisible()));
}

function renderWho() {
  const nicks = [...state.who].sort((a, b) => a.localeCompare(b, undefined, { sensitivity: 'base' }));
  const items = nicks.map((n) => {
    const li = document.createElement('li');
    li.className = `nick-c${nickColor(n)}`;
    li.textContent = n;
    if (n === state.nick) {
      li.classList.add('me');
      li.title = 'you';
    }
    return li;
  });
  el.who.replaceChildren(...items);
  el.userCount.textContent = String(nicks.length);
  el.whoToggle.title = `${nicks.length} ${nicks.length === 1 ? 'person' : 'people'} in this room — show or hide the list`;
}

function applyWhoEvent(type, nick) {
  if (type === 'join') state.who.add(nick);
  else if (type === 'part') state.who.delete(nick);
}

async function refreshWho() {
  if (state.whoPending) { state.needWho = true; return; }
  const gen = state.gen;
  const verify = state.verifySelf;
  state.verifySelf = false;
  state.whoPending = [];
  const r = await request(`who?${new URLSearchParams({ room: state.room })}`);
  const events = state.whoPending;
  state.whoPending = null;
  if (gen !== state.gen) return;
  if (!r.ok || !Array.isArray(r.data.nicks)) {
    state.needWho = true; // try again after the next successful recv
    return;
  }
  applyServerInfo(r.data);
  state.who = new Set(r.data.nicks.map(String));
  for (const [type, nick] of events) applyWhoEvent(type, nick);
  renderWho();
  if (verify && state.joined && !state.who.has(state.nick)) {
    // The server lost our session (e.g. restarted); get a new one quietly.
    rejoin({ soft: true });
  }
}

/* ------------------------------------------------------------------ */
/* message log                                                         */

const URL_RE = /\bhttps?:\/\/[^\s<>"`]+/gi;

function trimUrl(url) {
  // Leave sentence punctuation after a URL outside the link.
  for (;;) {
    const last = url.slice(-1);
    if (last === ')') {
      const open = url.split('(').length - 1;
      const close = url.split(')').length - 1;
      if (close <= open) break;
    } else if (!/[.,;:!?'\]}*]/.test(last)) {
      break;
    }
    url = url.slice(0, -1);
  }
  return url;
}

function makeLink(text) {
  let parsed;
  try {
    parsed = new URL(text);
  } catch {
    return document.createTextNode(text);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return document.createTextNode(text);
  }
  const a = document.createElement('a');
  a.href = parsed.href;
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  a.textContent = text;
  return a;
}

function appendLinkified(parent, text) {
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    const url = trimUrl(m[0]);
    if (url.length <= 'https://'.length - 1) continue;
    if (m.index > last) parent.append(text.slice(last, m.index));
    parent.append(makeLink(url));
    last = m.index + url.length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

function mentionsMe(text) {
  if (!state.nick) return false;
  return text.toLowerCase().includes(state.nick.toLowerCase()); // plain substring
}

function renderLine(m, ts) {
  const type = m.type === 'join' || m.type === 'part' ? m.type : 'msg';
  const nick = String(m.nick ?? '');
  const d = new Date(ts);

  const li = document.createElement('li');
  li.className = `line ${type}`;
  li.dataset.ts = String(ts);

  const time = document.createElement('time');
  time.className = 'time';
  time.dateTime = d.toISOString();
  time.title = fullDate(d);
  time.textContent = hhmm(d);

  const nickEl = document.createElement('span');
  nickEl.className = `nick nick-c${nickColor(nick)}`;
  nickEl.textContent = nick;

  const textEl = document.createElement('span');
  textEl.className = 'text';
  if (type === 'msg') {
    const text = String(m.text ?? '');
    appendLinkified(textEl, text);
    if (nick === state.nick) li.classList.add('self');
    else if (mentionsMe(text)) li.classList.add('mention');
  } else {
    textEl.textContent = type === 'join' ? 'joined the room' : 'left the room';
    if (nick === state.nick) li.classList.add('self');
  }

  li.append(time, ' ', nickEl, ' ', textEl);
  return li;
}

function dayDivider(d) {
  const li = document.createElement('li');
  li.className = 'day';
  li.setAttribute('role', 'separator');
  li.textContent = d.toLocaleDateString(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
  return li;
}

function addNotice(text) {
  const atBottom = isAtBottom();
  const li = document.createElement('li');
  li.className = 'notice';
  li.textContent = text;
  el.log.append(li);
  if (atBottom) scrollToBottom();
}

function isAtBottom() {
  const l = el.log;
  return l.scrollHeight - l.scrollTop - l.clientHeight <= BOTTOM_SLACK_PX;
}

function scrollToBottom() {
  el.log.scrollTop = el.log.scrollHeight;
  state.stuck = true;
  state.newCount = 0;
  el.newMessages.hidden = true;
}

function handleMessages(messages, gap) {
  if (gap) {
    addNotice(state.since > 0
      ? 'Some messages were skipped: the connection fell too far behind.'
      : 'Older messages are not shown.');
  }
  const atBottom = isAtBottom();
  const frag = document.createDocumentFragment();
  let added = 0;
  let forceScroll = false;
  for (const m of messages) {
    if (!m || typeof m !== 'object') continue;
    const ts = Number(m.timestamp);
    if (!Number.isFinite(ts) || ts <= state.since) continue; // dedupe
    state.since = ts;
    if (typeof m.mid === 'string' && state.pending.has(m.mid)) {
      state.pending.get(m.mid).remove(); // delivered: the real line replaces it
      state.pending.delete(m.mid);
    }

    const day = new Date(ts).toDateString();
    if (day !== state.lastDay) {
      const first = state.lastDay === null;
      state.lastDay = day;
      if (!first || day !== new Date().toDateString()) frag.append(dayDivider(new Date(ts)));
    }
    frag.append(renderLine(m, ts));
    added++;

    const nick = String(m.nick ?? '');
    if (m.type === 'join' || m.type === 'part') {
      applyWhoEvent(m.type, nick);
      if (state.whoPending) state.whoPending.push([m.type, nick]);
    } else if (nick !== state.nick && !state.catchingUp && isHidden()) {
      state.unread++;
    }
    if (nick === state.nick && state.stickToBottom) forceScroll = true;
  }
  if (!added) return;
  // Lines go above our own messages still pending.
  el.log.insertBefore(frag, el.log.querySelector(':scope > li.pending'));
  if (el.log.childElementCount > MAX_LOG_ROWS) {
    while (el.log.childElementCount > MAX_LOG_ROWS) el.log.firstElementChild.remove();
    setMore(true); // what was dropped can be scrolled back to again
  }
  if (forceScroll) state.stickToBottom = false;
  if (atBottom || forceScroll || state.catchingUp) {
    scrollToBottom();
  } else {
    state.newCount += added;
    el.newMessages.textContent = `${state.newCount} new ${state.newCount === 1 ? 'message' : 'messages'} ↓`;
    el.newMessages.hidden = false;
  }
  renderWho();
  updateTitle();
}

/* ------------------------------------------------------------------ */
/* scrollback                                                          */

function historyUrl(params) {
  return `history?${new URLSearchParams({ room: state.room, limit: String(HISTORY_PAGE), ...params })}`;
}

/** Whether older messages exist; without, the log starts with a notice. */
function setMore(more) {
  state.more = more;
  const start = el.log.querySelector(':scope > li.notice.start');
  if (more && start) start.remove();
  if (!more && !start) {
    const li = document.createElement('li');
    li.className = 'notice start';
    li.textContent = 'This is the beginning of the room.';
    el.log.prepend(li);
  }
}

/** The newest page, before the long poll starts after it. Without an
 *  answer the poll reads from 0, as the classic protocol does. */
async function loadLatest(gen) {
  const r = await request(historyUrl({}));
  if (gen !== state.gen) return;
  if (r.ok && Array.isArray(r.data.messages)) {
    applyServerInfo(r.data);
    handleMessages(r.data.messages, false);
    setMore(r.data.more === true);
    // Caught up: the poll starts at the newest message.
    state.catchingUp = false;
    el.log.removeAttribute('aria-busy');
    scrollToBottom();
    state.needWho = false;
    refreshWho();
  } else {
    state.more = true;
  }
}

/** Loads the page before the first line shown and, while the page does not
 *  fill the screen, the ones before it; stops at the room's first message. */
async function loadOlder() {
  if (await loadOlderPage() && state.more && el.log.scrollTop < TOP_SLACK_PX) loadOlder();
}

/** Loads the page before the first line shown, keeping that line where it
 *  is on the screen. Resolves true when a page came. */
async function loadOlderPage() {
  if (!state.joined || !state.more || state.loadingOlder) return false;
  const first = el.log.querySelector(':scope > li.line');
  if (!first) return false;
  const gen = state.gen;
  const firstTs = Number(first.dataset.ts);
  state.loadingOlder = true;
  const r = await request(historyUrl({ before: String(firstTs) }));
  state.loadingOlder = false;
  if (gen !== state.gen || !r.ok || !Array.isArray(r.data.messages)) return false;
  const anchor = first.getBoundingClientRect().top;
  const frag = document.createDocumentFragment();
  let day = null;
  for (const m of r.data.messages) {
    const ts = Number(m && m.timestamp);
    if (!Number.isFinite(ts) || ts >= firstTs) continue;
    const d = new Date(ts).toDateString();
    if (day !== null && d !== day) frag.append(dayDivider(new Date(ts)));
    day = d;
    frag.append(renderLine(m, ts));
  }
  // One divider where the page meets the lines below, if the day changes.
  const prev = first.previousElementSibling;
  const firstDay = new Date(firstTs).toDateString();
  if (prev && prev.classList.contains('day') && day === firstDay) prev.remove();
  else if (day !== null && day !== firstDay && !(prev && prev.classList.contains('day'))) {
    el.log.insertBefore(dayDivider(new Date(firstTs)), first);
  }
  el.log.prepend(frag);
  setMore(r.data.more === true);
  el.log.scrollTop += first.getBoundingClientRect().top - anchor;
  return true;
}

/* ------------------------------------------------------------------ */
/* search                                                              */

/** The words of a web-style query worth marking in a result: those of its
 *  plain words and "phrases", not those after a '-', not the word "or". */
function searchTerms(q) {
  const terms = new Set();
  for (const m of q.matchAll(/(-?)"([^"]*)"?|(-?)([^\s"]+)/gu)) {
    const phrase = m[2] !== undefined;
    const body = phrase ? m[2] : m[4];
    if ((phrase ? m[1] : m[3]) === '-') continue;
    if (!phrase && body.toLowerCase() === 'or') continue;
    for (const w of body.matchAll(WORD_RE)) terms.add(w[0].toLowerCase());
  }
  return terms;
}

/** Appends text to parent as text nodes, each word of terms in a <mark>. */
function appendMarked(parent, text, terms) {
  let last = 0;
  for (const w of text.matchAll(WORD_RE)) {
    if (!terms.has(w[0].toLowerCase())) continue;
    if (w.index > last) parent.append(text.slice(last, w.index));
    const mark = document.createElement('mark');
    mark.textContent = w[0];
    parent.append(mark);
    last = w.index + w[0].length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

function renderResult(m, terms) {
  const ts = Number(m.timestamp);
  const nick = String(m.nick ?? '');
  const d = new Date(ts);
  const li = document.createElement('li');
  li.className = 'result';
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'result-button';
  button.dataset.ts = String(ts);
  const time = document.createElement('time');
  time.className = 'time';
  time.dateTime = d.toISOString();
  time.title = fullDate(d);
  time.textContent = d.toDateString() === new Date().toDateString()
    ? hhmm(d) : d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
  const nickEl = document.createElement('span');
  nickEl.className = `nick nick-c${nickColor(nick)}`;
  nickEl.textContent = nick;
  const textEl = document.createElement('span');
  textEl.className = 'text';
  appendMarked(textEl, String(m.text ?? ''), terms);
  button.append(time, ' ', nickEl, ' ', textEl);
  button.addEventListener('click', () => jumpTo(ts));
  li.append(button);
  return li;
}

function clearSearch() {
  state.searchSeq++;
  state.jumpSeq++;
  el.searchInput.value = '';
  el.searchStatus.textContent = '';
  el.searchResults.replaceChildren();
}

async function runSearch() {
  const q = el.searchInput.value.trim();
  const seq = ++state.searchSeq;
  if (!q) {
    el.searchStatus.textContent = '';
    el.searchResults.replaceChildren();
    return;
  }
  if ([...q].length > SEARCH_MAX_CHARS) {
    el.searchStatus.textContent = `A search is at most ${SEARCH_MAX_CHARS} characters.`;
    return;
  }
  el.searchStatus.textContent = 'Searching…';
  const params = new URLSearchParams({ room: state.room, q, limit: String(SEARCH_LIMIT) });
  const r = await request(`search?${params}`);
  if (seq !== state.searchSeq) return;
  if (!r.ok || !Array.isArray(r.data.messages)) {
    el.searchStatus.textContent = typeof r.data.error === 'string' ? r.data.error : 'The search failed; try again.';
    return;
  }
  const terms = searchTerms(q);
  const frag = document.createDocumentFragment();
  for (const m of r.data.messages) {
    if (m && typeof m === 'object' && Number.isFinite(Number(m.timestamp))) frag.append(renderResult(m, terms));
  }
  el.searchResults.replaceChildren(frag);
  const n = el.searchResults.childElementCount;
  el.searchStatus.textContent = n === 0 ? 'No messages found.'
    : n >= SEARCH_LIMIT ? `The newest ${n} matches.` : `${n} ${n === 1 ? 'match' : 'matches'}.`;
}

function lineAt(ts) {
  return el.log.querySelector(`:scope > li.line[data-ts="${ts}"]`);
}

/** Shows the message with timestamp ts in the log: loads /history pages
 *  back until it is there, then scrolls to it and marks it li.found. */
async function jumpTo(ts) {
  const gen = state.gen;
  const seq = ++state.jumpSeq;
  let li = lineAt(ts);
  for (let pages = 0; !li && pages < JUMP_MAX_PAGES;) {
    if (gen !== state.gen || seq !== state.jumpSeq) return;
    const first = el.log.querySelector(':scope > li.line');
    if (!state.more || (first && Number(first.dataset.ts) < ts)) break;
    if (state.loadingOlder) {
      await sleep(50);
      continue;
    }
    if (!(await loadOlderPage())) break;
    pages++;
    li = lineAt(ts);
  }
  if (gen !== state.gen || seq !== state.jumpSeq) return;
  if (!li) {
    el.searchStatus.textContent = 'That message cannot be shown in the log now.';
    return;
  }
  for (const old of el.log.querySelectorAll(':scope > li.found')) old.classList.remove('found');
  li.classList.add('found');
  li.scrollIntoView({ block: 'center' });
  state.stuck = isAtBottom();
}

/* ------------------------------------------------------------------ */
/* long-poll loop                                                      */

/**
 * One long poll. Resolves true when the loop should ask again at once
 * (messages, ping, gap, or a fresh session after a rejoin), false when it
 * should back off.
 */
async function pollOnce(gen) {
  const q = new URLSearchParams({ since: String(state.since), room: state.room });
  const headers = state.id ? { 'X-Pgchat-Id': state.id } : {};
  const ctl = new AbortController();
  state.pollCtl = ctl;
  const r = await request(`recv?${q}`, { headers, timeout: RECV_TIMEOUT_MS, signal: ctl.signal });
  if (state.pollCtl === ctl) state.pollCtl = null;
  if (gen !== state.gen) return true;

  if (r.ok && Array.isArray(r.data.messages)) {
    if (state.failures > 0) {
      state.failures = 0;
      state.needWho = true;
      state.verifySelf = true;
      if (state.outboxWake) state.outboxWake(); // the server is back: send now
    }
    setStatus('connected');
    showBanner();
    applyServerInfo(r.data); // rss, and starttime if the server sends it
    handleMessages(r.data.messages, r.data.gap === true);
    if (r.data.messages.length < RECV_BATCH) {
      if (state.catchingUp) {
        state.catchingUp = false;
        el.log.removeAttribute('aria-busy');
        scrollToBottom();
      }
      if (state.needWho) {
        state.needWho = false;
        refreshWho();
      }
    }
    return true; // next long poll at once (also after ping / gap replies)
  }

  if (r.status === 400 && isSessionError(r.data.error)) {
    return (await rejoin()) !== 'retry';
  }
  return false; // network error, timeout, 5xx, 429 or an unexpected reply
}

/** The long-poll loop: runs until the next join/leave bumps state.gen. */
async function pollLoop(gen) {
  while (gen === state.gen) {
    let again = false;
    try {
      again = await pollOnce(gen);
    } catch (err) {
      // A bug must not end the loop silently: log it and back off.
      console.error('pgchat: poll failed', err);
    }
    if (gen !== state.gen) return;
    if (again) continue;

    state.failures++;
    state.needWho = true;
    setStatus(navigator.onLine === false ? 'offline' : 'reconnecting');
    const delay = backoffDelay(state.failures);
    state.retryAt = Date.now() + delay;
    showBanner();
    await pause(delay);
  }
}

/**
 * Get a new session with the same nick (session expired / server lost it).
 * Resolves 'ok', 'retry' (server unreachable, try later) or 'fatal'
 * (nick taken; the join screen is shown). Concurrent callers share one try.
 */
function rejoin({ soft = false } = {}) {
  if (state.rejoinP) return state.rejoinP;
  const gen = state.gen;
  state.rejoinP = (async () => {
    for (let attempt = 1; attempt <= 3; attempt++) {
      const r = await request('join', { form: { nick: state.nick, room: state.room } });
      if (gen !== state.gen) return 'fatal';
      if (r.ok && r.data.id) {
        state.id = String(r.data.id);
        applyServerInfo(r.data);
        state.needWho = true;
        return 'ok';
      }
      if (r.status === 400 || r.status === 409) {
        if (soft) return 'ok'; // our old session is evidently still alive
        if (attempt < 3) { await sleep(1500 * attempt); continue; }
        const err = r.data.error || 'could not join again';
        leaveSession({ sendPart: false });
        showJoinError(`Your session expired and could not be resumed: ${err}. Please join again.`);
        return 'fatal';
      }
      return 'retry';
    }
    return 'retry';
  })().finally(() => { state.rejoinP = null; });
  return state.rejoinP;
}

/* ------------------------------------------------------------------ */
/* join / leave                                                        */

function showJoinError(msg, field = null) {
  el.joinError.textContent = msg;
  for (const f of [el.nick, el.room]) f.removeAttribute('aria-invalid');
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }
}

function validateNick(nick) {
  if (!nick) return 'Please enter a nickname.';
  if (nick.length > NICK_MAX) return `Nicknames can be at most ${NICK_MAX} characters (this one has ${nick.length}).`;
  if (!NICK_RE.test(nick)) {
    const bad = [...new Set([...nick].filter((c) => !/[A-Za-z0-9_\-^!]/.test(c)))]
      .map((c) => (c === ' ' ? 'space' : `“${c}”`)).join(', ');
    return `Nicknames may only use letters, digits and _ - ^ ! (not ${bad}).`;
  }
  return null;
}

function validateRoom(room) {
  if (!ROOM_RE.test(room)) return 'Room names are 1–64 letters, digits, _ or -.';
  return null;
}

async function onJoinSubmit(ev) {
  ev.preventDefault();
  if (el.joinButton.disabled) return;
  const nick = el.nick.value.trim();
  const room = el.room.value.trim() || DEFAULT_ROOM;
  const nickErr = validateNick(nick);
  if (nickErr) return showJoinError(nickErr, el.nick);
  const roomErr = validateRoom(room);
  if (roomErr) return showJoinError(roomErr, el.room);
  showJoinError('');

  el.joinButton.disabled = true;
  el.joinButton.textContent = 'Joining…';
  const r = await request('join', { form: { nick, room } });
  el.joinButton.disabled = false;
  el.joinButton.textContent = 'Join';

  if (r.ok && r.data.id) {
    startSession(r.data, nick, room);
    return;
  }
  const err = r.data.error;
  if (r.status === 400 && err) {
    const field = /room/i.test(err) ? el.room : el.nick;
    showJoinError(/in use/i.test(err) ? `${err} — please choose another nickname.` : err, field);
  } else if (r.status === 429) {
    showJoinError(`${err || 'Too many requests'} — please wait a moment and try again.`);
  } else if (r.status === 0 || r.status >= 500) {
    showJoinError('Cannot reach the chat server right now. Please try again in a moment.');
  } else {
    showJoinError(err || `Unexpected reply from the server (HTTP ${r.status}).`);
  }
}

function startSession(data, nick, room) {
  state.gen++;
  state.joined = true;
  state.nick = String(data.nick || nick);
  state.room = room;
  state.id = String(data.id);
  state.since = 0;
  state.catchingUp = true;
  state.needWho = true;
  state.verifySelf = false;
  state.who = new Set([state.nick]);
  state.failures = 0;
  state.unread = 0;
  state.newCount = 0;
  state.lastDay = null;
  state.outbox = [];
  state.pending.clear();
  state.more = false;
  state.loadingOlder = false;
  applyServerInfo(data);
  try { localStorage.setItem('pgchat.nick', state.nick); } catch { /* private mode */ }
  setUrlRoom(room);

  el.log.replaceChildren();
  el.log.setAttribute('aria-busy', 'true'); // no announcements for the history
  el.sendError.textContent = '';
  el.roomName.textContent = room;
  el.roomLabel.hidden = false;
  el.leave.hidden = false;
  el.joinScreen.hidden = true;
  el.chat.hidden = false;
  renderWho();
  updateTitle();
  setStatus('connected');
  showBanner();
  el.input.focus();
  const gen = state.gen;
  loadLatest(gen).then(() => {
    if (gen !== state.gen) return;
    pollLoop(gen);
    if (state.more && el.log.scrollTop < TOP_SLACK_PX) loadOlder();
  });
}

function sendPartBeacon() {
  if (!state.joined || !state.id) return;
  const body = new URLSearchParams({ id: state.id, room: state.room });
  let sent = false;
  try { sent = navigator.sendBeacon('part', body); } catch { sent = false; }
  if (!sent) {
    fetch('part', { method: 'POST', body, keepalive: true, credentials: 'same-origin' }).catch(() => {});
  }
}

function leaveSession({ sendPart = true } = {}) {
  if (sendPart && state.joined && state.id) {
    request('part', { form: { id: state.id, room: state.room } });
  }
  state.gen++;
  state.joined = false;
  state.id = null;
  if (state.pollCtl) state.pollCtl.abort();
  wake();
  state.failures = 0;
  state.unread = 0;
  updateTitle();
  setStatus('offline');
  showBanner();
  el.chat.hidden = true;
  el.leave.hidden = true;
  el.roomLabel.hidden = true;
  clearSearch();
  el.joinScreen.hidden = false;
  el.nick.value = state.nick || el.nick.value;
  el.room.value = state.room === DEFAULT_ROOM && !roomFromUrl() ? '' : state.room;
  el.nick.focus();
}

/* ------------------------------------------------------------------ */
/* sending                                                             */

function setSendError(msg) { el.sendError.textContent = msg; }

function sendErrorText(r) {
  const err = r.data.error;
  if (r.status === 0) return 'Not sent: cannot reach the server. Press Enter to try again.';
  if (r.status >= 500) return `Not sent: the server is unavailable (HTTP ${r.status}). Press Enter to try again.`;
  if (r.status === 429) return `Not sent: ${err || 'too many messages'} — wait a moment and try again.`;
  if (err) return /too long/i.test(err) ? `${err} (the limit is ${MAX_MESSAGE_BYTES} bytes).` : err;
  return `Not sent: unexpected reply (HTTP ${r.status}).`;
}

/** A line for a message of ours that the server does not have yet. */
function renderPending(text) {
  const li = renderLine({ type: 'msg', nick: state.nick, text }, Date.now());
  li.className = 'pending msg self';
  delete li.dataset.ts;
  li.querySelector('.time').textContent = '';
  li.title = 'sending…';
  return li;
}

/**
 * Queues what is in the input as a message with a fresh mid, shown as
 * pending at once; the outbox sends it.
 */
function sendMessage() {
  if (!state.joined) return;
  const text = el.input.value.replace(/\s+$/u, '');
  if (!text.trim()) return; // blank input is not sent
  const bytes = utf8Length(text);
  if (bytes > MAX_MESSAGE_BYTES) {
    setSendError(`Message too long: ${bytes} bytes, the limit is ${MAX_MESSAGE_BYTES}.`);
    return;
  }
  const item = { mid: newMid(), text, li: renderPending(text) };
  item.li.dataset.mid = item.mid;
  state.pending.set(item.mid, item.li);
  state.outbox.push(item);
  el.log.append(item.li);
  scrollToBottom();
  state.stickToBottom = true;
  el.input.value = '';
  autosize();
  setSendError('');
  runOutbox(state.gen);
}

/** Drops a message the server refused (4xx): its text goes back to the
 *  input when that is empty, so the user may edit and send it again. */
function refuse(item, r) {
  item.li.remove();
  state.pending.delete(item.mid);
  if (!el.input.value) {
    el.input.value = item.text;
    autosize();
  }
  setSendError(sendErrorText(r));
}

/**
 * Sends the outbox in order, one at a time. On a network error or a 5xx
 * the same mid is sent again with the usual back-off until the server
 * answers 200 (stored, or already stored by an attempt whose reply was
 * lost) or a 4xx; so a message typed during an outage arrives once.
 */
async function runOutbox(gen) {
  if (state.outboxGen === gen) return;
  state.outboxGen = gen;
  let failures = 0;
  try {
    while (gen === state.gen && state.outbox.length) {
      const item = state.outbox[0];
      const r = await request('send', { form: { id: state.id, room: state.room, text: item.text, mid: item.mid } });
      if (gen !== state.gen) return;
      if (r.ok) {
        failures = 0;
        state.outbox.shift();
        item.li.classList.remove('retrying');
        setRss(r.data.rss);
        if (state.failures > 0) wake(); // the server is back: poll now
        continue;
      }
      if (r.status === 400 && isSessionError(r.data.error)) {
        const res = await rejoin(); // then the same mid again: (room, nick, mid)
        if (res === 'ok') continue;
        if (res === 'fatal') return;
      } else if (r.status !== 0 && r.status < 500) {
        state.outbox.shift();
        refuse(item, r);
        continue;
      }
      failures++;
      item.li.classList.add('retrying');
      item.li.title = 'not delivered yet: retrying by itself';
      await new Promise((resolve) => {
        const t = setTimeout(done, backoffDelay(failures));
        function done() {
          clearTimeout(t);
          if (state.outboxWake === done) state.outboxWake = null;
          resolve();
        }
        state.outboxWake = done;
      });
    }
  } finally {
    if (state.outboxGen === gen) state.outboxGen = -1;
  }
}

function autosize() {
  const lines = el.input.value.split('\n').length;
  el.input.rows = Math.min(6, Math.max(2, lines));
}

/* ------------------------------------------------------------------ */
/* wiring                                                              */

function onVisible() {
  if (!isHidden()) {
    if (state.unread) {
      state.unread = 0;
      updateTitle();
    }
    if (state.failures > 0) wake();
  }
}

async function previewRoom() {
  const room = el.room.value.trim() || DEFAULT_ROOM;
  if (state.joined || !ROOM_RE.test(room)) return;
  const r = await request(`who?${new URLSearchParams({ room })}`);
  if (state.joined || !r.ok || !Array.isArray(r.data.nicks)) return;
  setRss(r.data.rss);
  el.userCount.textContent = String(r.data.nicks.length);
}

function init() {
  const urlRoom = roomFromUrl();
  el.room.value = urlRoom || '';
  state.room = urlRoom || DEFAULT_ROOM;
  try {
    const saved = localStorage.getItem('pgchat.nick');
    if (saved && NICK_RE.test(saved)) el.nick.value = saved;
  } catch { /* storage unavailable */ }

  el.joinForm.addEventListener('submit', onJoinSubmit);
  el.nick.addEventListener('input', () => {
    if (el.nick.getAttribute('aria-invalid')) showJoinError('');
  });
  el.room.addEventListener('input', () => {
    if (el.room.getAttribute('aria-invalid')) showJoinError('');
  });

  el.sendForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    sendMessage();
  });
  el.input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      sendMessage();
    }
  });
  el.input.addEventListener('input', () => {
    autosize();
    if (el.sendError.textContent) setSendError('');
  });

  let searchTimer = 0;
  el.searchForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearTimeout(searchTimer);
    runSearch();
  });
  el.searchInput.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, SEARCH_DELAY_MS);
  });

  el.log.addEventListener('scroll', () => {
    state.stuck = isAtBottom();
    if (el.log.scrollTop < TOP_SLACK_PX) loadOlder();
    if (!el.newMessages.hidden && state.stuck) scrollToBottom();
  }, { passive: true });
  // Keep following the newest line when the log changes size (rotation,
  // window resize, the composer growing) if the user was at the bottom.
  if (typeof ResizeObserver === 'function') {
    new ResizeObserver(() => {
      if (state.stuck && !el.chat.hidden) el.log.scrollTop = el.log.scrollHeight;
    }).observe(el.log);
  }
  el.newMessages.addEventListener('click', () => {
    scrollToBottom();
    el.input.focus();
  });

  el.whoToggle.addEventListener('click', () => {
    el.chat.classList.toggle('who-toggled');
    updateWhoToggle();
  });
  narrowQuery.addEventListener('change', () => {
    el.chat.classList.remove('who-toggled');
    updateWhoToggle();
  });
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && narrowQuery.matches && el.chat.classList.contains('who-toggled')) {
      el.chat.classList.remove('who-toggled');
      updateWhoToggle();
      el.whoToggle.focus();
    }
  });
  updateWhoToggle();

  el.retry.addEventListener('click', wake);
  el.leave.addEventListener('click', () => leaveSession());

  document.addEventListener('visibilitychange', onVisible);
  window.addEventListener('focus', onVisible);
  window.addEventListener('online', () => { if (state.joined) wake(); });
  window.addEventListener('offline', () => {
    if (state.joined && state.failures > 0) setStatus('offline');
  });

  window.addEventListener('pagehide', sendPartBeacon);
  window.addEventListener('pageshow', (ev) => {
    // Back from the back/forward cache: we parted on pagehide.
    if (ev.persisted && state.joined) {
      rejoin().then(() => wake());
    }
  });

  window.addEventListener('hashchange', () => {
    const room = roomFromUrl();
    if (!room || room === state.room && state.joined) return;
    if (!state.joined) {
      el.room.value = room;
      state.room = room;
      return;
    }
    // Switch rooms with the same nick.
    const nick = state.nick;
    leaveSession();
    el.nick.value = nick;
    el.room.value = room;
    el.joinForm.requestSubmit();
  });

  setInterval(() => {
    updateUptime();
    if (state.failures > 0) showBanner();
  }, 1000);

  // Show how many are in the room (and server memory) before joining.
  previewRoom();
  let previewTimer = 0;
  el.room.addEventListener('input', () => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(previewRoom, 500);
  });

  setStatus('offline');
  updateTitle();
  el.nick.focus();
}

init();
