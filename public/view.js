/*
 * view.js -- the page of the pgchat client: its elements, the toolbar,
 * the who list and the message log, kept in step with `state`.
 *
 * The log shows each message once, in cursor order: handleMessages() is
 * the one way messages reach it, from the history, the stream or a poll,
 * and it moves state.since on.
 */

import { state, canDelete } from './state.js';
import {
  dayDivider, formatBytes, formatDuration, fullDate, nickColor, renderLine, renderNotice,
} from './render.js';

const BASE_TITLE = 'pgchat';
const MAX_LOG_ROWS = 2000;       // older rows are dropped from the DOM
const BOTTOM_SLACK_PX = 48;

const $ = (id) => document.getElementById(id);
export const el = {
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
  outboxStatus: $('outbox-status'),
  searchForm: $('search-form'),
  searchInput: $('search-input'),
  searchStatus: $('search-status'),
  searchResults: $('search-results'),
};

export function isHidden() {
  return document.hidden === true || document.visibilityState === 'hidden';
}

/* ------------------------------------------------------------------ */
/* toolbar                                                             */

/** s is exactly one of connected | reconnecting | offline. */
export function setStatus(s) {
  if (el.status.textContent !== s) el.status.textContent = s;
  el.status.dataset.state = s;
}

export function setRss(rss) {
  if (rss !== undefined && rss !== null) el.rss.textContent = formatBytes(rss);
}

export function updateUptime() {
  if (state.starttime) el.uptime.textContent = formatDuration(Date.now() - state.starttime);
}

/** The rss and starttime that a reply of the server carries. */
export function applyServerInfo(data) {
  setRss(data.rss);
  const st = Number(data.starttime);
  if (Number.isFinite(st) && st > 0) {
    state.starttime = st;
    el.uptime.title = `Server up since ${fullDate(new Date(st))}`;
    updateUptime();
  }
}

export function updateTitle() {
  document.title = state.unread > 0 ? `(${state.unread}) ${BASE_TITLE}` : BASE_TITLE;
}

export function showBanner() {
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

export const narrowQuery = matchMedia('(max-width: 760px)');

function whoPanelVisible() {
  const toggled = el.chat.classList.contains('who-toggled');
  return narrowQuery.matches ? toggled : !toggled;
}

export function updateWhoToggle() {
  el.whoToggle.setAttribute('aria-expanded', String(whoPanelVisible()));
}

export function renderWho() {
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

export function applyWhoEvent(type, nick) {
  if (type === 'join') state.who.add(nick);
  else if (type === 'part') state.who.delete(nick);
}

/* ------------------------------------------------------------------ */
/* message log                                                         */

export function isAtBottom() {
  const l = el.log;
  return l.scrollHeight - l.scrollTop - l.clientHeight <= BOTTOM_SLACK_PX;
}

/* Whether new lines should scroll the log: the user was at the bottom at
 * their last scroll, or is now. The geometry alone is not enough: when the
 * log shrinks (a resize, a rotation), it is off the bottom until the
 * ResizeObserver's callback, and a line that comes in between would leave
 * a reader who never scrolled behind a "new messages" button. */
function following() {
  return state.stuck || isAtBottom();
}

export function scrollToBottom() {
  el.log.scrollTop = el.log.scrollHeight;
  state.stuck = true;
  state.newCount = 0;
  el.newMessages.hidden = true;
}

function addNotice(text) {
  const atBottom = following();
  el.log.append(renderNotice(text));
  if (atBottom) scrollToBottom();
}

/** Whether older messages exist; without, the log starts with a notice. */
export function setMore(more) {
  state.more = more;
  const start = el.log.querySelector(':scope > li.notice.start');
  if (more && start) start.remove();
  if (!more && !start) el.log.prepend(renderNotice('This is the beginning of the room.', 'start'));
}

/** Catching up is over: the log scrolls to the newest and is announced. */
export function endCatchUp() {
  if (!state.catchingUp) return;
  state.catchingUp = false;
  el.log.removeAttribute('aria-busy');
  scrollToBottom();
}

/*
 * Puts each message's rows in the log, in order: above our own messages
 * still pending, and above a message of ours the server refused when it
 * was stored before that refusal (li.refused's data-after): a refused
 * line stays where it was typed, between what came before and after it.
 */
function insertRows(rows) {
  const stops = [...el.log.querySelectorAll(':scope > li.pending, :scope > li.refused')];
  let at = 0;
  let frag = document.createDocumentFragment();
  const stopFor = (ts) => {
    while (at < stops.length && stops[at].classList.contains('refused') && Number(stops[at].dataset.after) < ts) at++;
    return at < stops.length ? stops[at] : null;
  };
  let anchor = rows.length ? stopFor(rows[0][0]) : null;
  for (const [ts, nodes] of rows) {
    const here = stopFor(ts);
    if (here !== anchor) {
      el.log.insertBefore(frag, anchor);
      frag = document.createDocumentFragment();
      anchor = here;
    }
    frag.append(...nodes);
  }
  el.log.insertBefore(frag, anchor);
}

/** The line of the message at ts, if shown, becomes its tombstone. */
function buryLine(ts) {
  const li = el.log.querySelector(`:scope > li.line[data-ts="${ts}"]`);
  if (!Number.isFinite(ts) || !li) return;
  li.replaceWith(renderLine({ type: 'deleted', nick: li.querySelector('.nick')?.textContent }, ts, state.nick));
}

/**
 * Shows the messages after state.since (the rest are copies, dropped) and
 * moves the cursor on; a message of ours replaces its pending line. gap:
 * some before these were skipped (the reader fell too far behind).
 */
export function handleMessages(messages, gap) {
  if (gap) {
    addNotice(state.since > 0
      ? 'Some messages were skipped: the connection fell too far behind.'
      : 'Older messages are not shown.');
  }
  const atBottom = following();
  const rows = []; // [ts, the rows of one message (a day divider, its line)]
  let added = 0;
  let forceScroll = false;
  for (const m of messages) {
    if (!m || typeof m !== 'object') continue;
    const ts = Number(m.timestamp);
    if (!Number.isFinite(ts) || ts <= state.since) continue; // dedupe
    state.since = ts;
    if (m.type === 'delete') { // a moderator's: the line it names loses its text
      buryLine(Number(m.text));
      continue;
    }
    if (typeof m.mid === 'string' && state.pending.has(m.mid)) {
      state.pending.get(m.mid).remove(); // delivered: the real line replaces it
      state.pending.delete(m.mid);
    }

    const nodes = [];
    const day = new Date(ts).toDateString();
    if (day !== state.lastDay) {
      const first = state.lastDay === null;
      state.lastDay = day;
      if (!first || day !== new Date().toDateString()) nodes.push(dayDivider(new Date(ts)));
    }
    nodes.push(renderLine(m, ts, state.nick, canDelete(String(m.nick ?? ''), ts)));
    rows.push([ts, nodes]);
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
  insertRows(rows);
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
