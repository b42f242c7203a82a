/*
 * outbox.js -- sending: what the user types becomes a pending line with a
 * fresh mid at once, and the outbox sends the lines one at a time, in the
 * order typed, retrying the same mid until the server answers, so that a
 * message arrives exactly once even when a reply is lost, the server is
 * down for a while, or the rate limit says to wait.
 *
 * Nothing typed is dropped without the user's action: a 429 is a wait, not
 * a verdict (the line keeps its place until Retry-After has passed); a real
 * refusal (400: too long, control characters, ...) stays in the log where
 * it was typed, marked not sent, with Edit and Delete; and the queue is
 * kept in localStorage per room and nick until the server has each
 * message, so that the next load of the room sends what a reload, a crash
 * or a closed laptop left behind.
 */

import { state, limits, MID_WINDOW_MS } from './state.js';
import { backoffDelay, isSessionError, newMid, outboxPause, request, sleep, wake } from './transport.js';
import { renderPending, setLineActions } from './render.js';
import { el, scrollToBottom, setRss } from './view.js';
import { rejoin } from './session.js';

const STORE_PREFIX = 'pgchat.outbox:';
const RETRY_JITTER_MS = 250;      // after a Retry-After, so that tabs do not return together
const ASK_MARGIN_MS = 10 * 60000; // resent this close to the mid window: ask first
const MID_RE = /^[A-Za-z0-9_-]{1,64}$/;

function utf8Length(s) { return new TextEncoder().encode(s).length; }

export function setSendError(msg) { el.sendError.textContent = msg; }

/** Grows the input with its lines, 2 to 6 rows. */
export function autosize() {
  const lines = el.input.value.split('\n').length;
  el.input.rows = Math.min(6, Math.max(2, lines));
}

/* ------------------------------------------------------------------ */
/* the queue in localStorage                                           */

function storeKey(room, nick) { return `${STORE_PREFIX}${room}:${nick}`; }

/* Writes the session's unacknowledged and refused messages, in the order
 * typed; an empty queue removes the key. */
function saveOutbox() {
  if (!state.nick) return;
  const key = storeKey(state.room, state.nick);
  const items = [
    ...state.outbox.map(({ mid, text, at }) => ({ mid, text, at })),
    ...state.refused.map(({ mid, text, at, reason, after }) => ({ mid, text, at, reason, after })),
  ].sort((a, b) => a.at - b.at);
  try {
    if (items.length) localStorage.setItem(key, JSON.stringify(items));
    else localStorage.removeItem(key);
  } catch { /* storage full or unavailable: the page still sends */ }
}

/* What an earlier page of room and nick left unsent, oldest first; what
 * does not look like our own record is skipped. */
function loadSaved(room, nick) {
  let items;
  try {
    items = JSON.parse(localStorage.getItem(storeKey(room, nick)) || '[]');
  } catch {
    return [];
  }
  if (!Array.isArray(items)) return [];
  return items.filter((i) => i && typeof i === 'object' && typeof i.mid === 'string' && MID_RE.test(i.mid)
    && typeof i.text === 'string' && Number.isFinite(i.at))
    .sort((a, b) => a.at - b.at);
}

/* ------------------------------------------------------------------ */
/* how the queue looks                                                 */

const STATE_TITLES = {
  sending: 'sending…',
  waiting: 'queued: waiting for the rate limit',
  retrying: 'not delivered yet: retrying by itself',
  held: 'queued behind a message that waits for your answer',
};

/* The count under the input; quiet (no alert, no error colour). */
function updateOutboxStatus() {
  const n = state.outbox.length;
  const what = n === 1 ? '1 message' : `${n} messages`;
  let s = '';
  if (state.outboxState === 'waiting') s = `${what} queued — waiting for the rate limit…`;
  else if (state.outboxState === 'retrying') s = `${what} queued — the server is unreachable, retrying by itself…`;
  else if (state.outboxState === 'held') s = `${what} queued — a message typed over a day ago waits for your answer.`;
  else if (n > 1) s = `${what} queued — sending…`;
  if (!n) s = '';
  if (el.outboxStatus.textContent !== s) el.outboxStatus.textContent = s;
  el.outboxStatus.dataset.state = n ? state.outboxState : '';
}

/* s: '' | 'sending' | 'waiting' | 'retrying' | 'held'; every queued line
 * shows it. */
function setOutboxState(s) {
  state.outboxState = s;
  for (const item of state.outbox) {
    if (item.held) continue;
    item.li.classList.toggle('waiting', s === 'waiting');
    item.li.classList.toggle('retrying', s === 'retrying');
    item.li.title = STATE_TITLES[s] || STATE_TITLES.sending;
  }
  updateOutboxStatus();
}

/* ------------------------------------------------------------------ */
/* refusals and old messages: the user decides                         */

function dropRefused(item) {
  state.refused = state.refused.filter((i) => i !== item);
  item.li.remove();
  saveOutbox();
}

/* Edit: the text goes back into the input (before a draft already there,
 * which is kept) and the refused line goes. */
function editRefused(item) {
  dropRefused(item);
  const draft = el.input.value;
  el.input.value = draft.trim() ? `${item.text}\n${draft}` : item.text;
  autosize();
  el.input.focus();
  el.input.setSelectionRange(item.text.length, item.text.length);
}

/* Marks item's line as refused, where it stands: lines that come later go
 * below it, those stored before (`after`) above it (view.js). */
function showRefused(item) {
  const li = item.li;
  li.className = 'refused msg self';
  li.dataset.after = String(item.after);
  li.title = '';
  li.setAttribute('aria-label', `${item.text} — not sent: ${item.reason}`);
  setLineActions(li, `Not sent: ${item.reason}`, [
    { label: 'Edit', name: 'Edit the message that was not sent', className: 'edit', onClick: () => editRefused(item) },
    {
      label: 'Delete', name: 'Delete the message that was not sent', className: 'delete',
      onClick: () => { dropRefused(item); el.input.focus(); },
    },
  ]);
}

function refusalReason(r) {
  const err = typeof r.data.error === 'string' && r.data.error ? r.data.error : `HTTP ${r.status}`;
  return /too long/i.test(err) ? `${err} (the limit is ${limits.messageBytes} bytes).` : `${err}.`;
}

/* A refusal that waiting cannot cure: the line stays, marked not sent. */
function refuse(item, r) {
  state.pending.delete(item.mid);
  item.reason = refusalReason(r);
  item.after = Math.max(state.lastAckTs, state.since);
  state.refused.push(item);
  showRefused(item);
  saveOutbox();
}

/* A message typed longer ago than the server's mid window: the server can
 * no longer tell whether it stored it, so the user says whether to send. */
function showHeld(item) {
  const li = item.li;
  li.classList.add('held');
  li.classList.remove('waiting', 'retrying');
  const hours = Math.floor((Date.now() - item.at) / 3600000);
  li.title = 'typed over a day ago: send it again?';
  setLineActions(li, `Typed ${hours} hours ago and perhaps sent then; the server no longer remembers. Send it again?`, [
    {
      label: 'Send again', name: 'Send the message typed over a day ago again', className: 'resend',
      onClick: () => { release(item); runOutbox(state.gen); },
    },
    {
      label: 'Delete', name: 'Delete the message typed over a day ago', className: 'delete',
      onClick: () => {
        state.outbox = state.outbox.filter((i) => i !== item);
        state.pending.delete(item.mid);
        item.li.remove();
        saveOutbox();
        updateOutboxStatus();
        el.input.focus();
        runOutbox(state.gen);
      },
    },
  ]);
}

function release(item) {
  item.held = false;
  item.li.classList.remove('held');
  for (const old of item.li.querySelectorAll(':scope > .note, :scope > .actions')) old.remove();
  item.li.title = STATE_TITLES.sending;
  el.input.focus();
}

/* ------------------------------------------------------------------ */
/* sending                                                             */

function newItem(mid, text, at) {
  const li = renderPending(text, state.nick);
  li.dataset.mid = mid;
  return { mid, text, at, li, held: false };
}

/**
 * Queues what is in the input as a message with a fresh mid, shown as
 * pending at once; the outbox sends it.
 */
export function sendMessage() {
  if (!state.joined) return;
  const text = el.input.value.replace(/\s+$/u, '');
  if (!text.trim()) return; // blank input is not sent
  const bytes = utf8Length(text);
  if (bytes > limits.messageBytes) {
    setSendError(`Message too long: ${bytes} bytes, the limit is ${limits.messageBytes}.`);
    return;
  }
  const item = newItem(newMid(), text, Date.now());
  state.pending.set(item.mid, item.li);
  state.outbox.push(item);
  saveOutbox();
  el.log.append(item.li);
  scrollToBottom();
  state.stickToBottom = true;
  el.input.value = '';
  autosize();
  setSendError('');
  setOutboxState(state.outboxState || 'sending');
  runOutbox(state.gen);
}

/**
 * At the start of a session: shows what an earlier page of this room and
 * nick left unsent, and sends it first. A message older than the server's
 * mid window waits for the user's word, and so do those after it.
 */
export function restoreOutbox() {
  for (const s of loadSaved(state.room, state.nick)) {
    if (state.pending.has(s.mid) || state.refused.some((i) => i.mid === s.mid)) continue;
    const item = newItem(s.mid, s.text, s.at);
    el.log.append(item.li);
    if (typeof s.reason === 'string') {
      item.reason = s.reason;
      item.after = Number.isFinite(s.after) ? s.after : 0;
      state.refused.push(item);
      showRefused(item);
      continue;
    }
    state.pending.set(item.mid, item.li);
    state.outbox.push(item);
    if (Date.now() - item.at >= MID_WINDOW_MS - ASK_MARGIN_MS) {
      item.held = true;
      showHeld(item);
    }
  }
  if (state.outbox.length) {
    setOutboxState('sending');
    runOutbox(state.gen);
  }
}

/* The server has item (stored now, or by an earlier attempt: same mid). */
function acknowledged(item, data) {
  const ts = Number(data.timestamp);
  if (Number.isFinite(ts)) {
    state.lastAckTs = Math.max(state.lastAckTs, ts);
    // Its copy went by unseen (a gap, or stored long before the newest
    // page): no copy will come to replace the pending line.
    if (ts <= state.since && state.pending.get(item.mid) === item.li) {
      item.li.remove();
      state.pending.delete(item.mid);
    }
  }
  item.li.classList.remove('waiting', 'retrying');
  item.li.title = 'sent';
  setRss(data.rss);
  saveOutbox();
}

/**
 * Sends the outbox in order, one at a time, each until the server has it.
 * A 429 waits its Retry-After (or the back-off where it has none) and
 * sends the same mid again; a network error or a 5xx the same with the
 * back-off, which wake() cuts short; a lost session rejoins first. Only
 * another 4xx refuses a message, which then stays in the log, not sent.
 */
async function runOutbox(gen) {
  if (state.outboxGen === gen) return;
  state.outboxGen = gen;
  let failures = 0; // network errors and 5xx in a row
  let limited = 0;  // 429s in a row
  try {
    while (gen === state.gen && state.outbox.length) {
      const item = state.outbox[0];
      if (item.held) {
        setOutboxState('held');
        return;
      }
      const r = await request('send', { form: { id: state.id, room: state.room, text: item.text, mid: item.mid } });
      if (gen !== state.gen) return;
      if (r.ok) {
        failures = 0;
        limited = 0;
        if (state.outbox[0] === item) state.outbox.shift();
        acknowledged(item, r.data);
        if (state.outboxState === 'retrying') setOutboxState('sending');
        else updateOutboxStatus();
        if (state.failures > 0) wake(); // the server is back: read now
        continue;
      }
      if (r.status === 429) {
        // Back-pressure, not a verdict: the line keeps its place.
        limited++;
        setOutboxState('waiting');
        const wait = r.retryAfter ?? backoffDelay(limited);
        await sleep(wait + Math.round(Math.random() * RETRY_JITTER_MS));
        continue;
      }
      if (r.status === 400 && isSessionError(r.data.error)) {
        const res = await rejoin(); // then the same mid again: (room, nick, mid)
        if (res === 'ok') continue;
        if (res === 'fatal') return;
      } else if (r.status !== 0 && r.status < 500) {
        state.outbox.shift();
        refuse(item, r);
        updateOutboxStatus();
        continue;
      }
      failures++;
      setOutboxState('retrying');
      await outboxPause(backoffDelay(failures));
    }
  } finally {
    if (state.outboxGen === gen) {
      state.outboxGen = -1;
      if (gen === state.gen && !state.outbox.length) setOutboxState('');
    }
  }
}
