/*
 * app.js -- the pgchat browser client's entry: wires the page's events to
 * the modules. Plain ES modules, no framework, no build step:
 *
 *   state.js      the session and room state, limits, the room in the URL
 *   transport.js  requests, back-off, reading the room (stream or poll)
 *   render.js     the elements of lines, links, marked search words
 *   view.js       the page: toolbar, who list, the message log
 *   history.js    scrollback and search
 *   session.js    join, leave, rejoin, the who list from the server
 *   outbox.js     sending, in order and exactly once across retries,
 *                 rate limits and reloads
 *
 * Each imports only those above it in this list, and app.js imports them.
 *
 * The room is read over an EventSource stream (/events, the session in its
 * HttpOnly cookie) and, where that never opens (no EventSource, a proxy
 * that refuses or holds streams), over node_chat's long-poll (/recv); the
 * classic client keeps long-poll. See transport.js for what goes where:
 * no session id is ever in a URL.
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
 *                  (data-mid; .retrying while the server is unreachable,
 *                  .waiting while the rate limit holds it, .held with
 *                  span.note and button.resend / button.delete when it
 *                  was typed over a day ago), below the lines, never
 *                  .line: it becomes a .line when its copy with the same
 *                  mid is read back. One the server refused is
 *                  li.refused (data-mid, data-after), never .line: it
 *                  keeps its place, with span.note (the server's reason)
 *                  and button.edit / button.delete.
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
 *                  when none (a 429 is never one)
 *   #outbox-status the queue's count and state, quiet: "3 messages
 *                  queued — waiting for the rate limit…"; data-state
 *                  sending | waiting | retrying | held, empty when
 *                  nothing is queued
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

import { state, DEFAULT_ROOM, NICK_RE, ROOM_RE, roomFromUrl } from './state.js';
import { loadLimits, request, restartRead, wake } from './transport.js';
import {
  el, isAtBottom, narrowQuery, scrollToBottom, setRss, setStatus, showBanner, updateTitle, updateUptime,
  updateWhoToggle, isHidden,
} from './view.js';
import { loadOlder, nearTop, runSearch } from './history.js';
import { leaveSession, onJoinSubmit, onSessionStart, rejoin, sendPartBeacon, showJoinError } from './session.js';
import { autosize, restoreOutbox, sendMessage, setSendError } from './outbox.js';

const SEARCH_DELAY_MS = 400;     // typing pauses this long: search

/** A line's delete button (render.js; moderators, and an author for a
 *  while): the server's 'delete' notice, in every page following the
 *  room this one included, turns the line into its tombstone (view.js). */
async function deleteLine(button) {
  const ts = button.closest('li.line')?.dataset.ts;
  if (!ts) return;
  button.disabled = true;
  const r = await request('delete', { form: { room: state.room, ts } });
  if (r.ok) return;
  button.disabled = false;
  setSendError(r.data.error || `Could not delete (HTTP ${r.status}).`);
}

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

  loadLimits();
  onSessionStart(restoreOutbox);
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

  // A scroll that comes with a change of the log's height is the resize's
  // (the browser clamping scrollTop), not the user's: it must not unstick.
  let logHeight = el.log.clientHeight;
  el.log.addEventListener('scroll', () => {
    if (el.log.clientHeight !== logHeight) logHeight = el.log.clientHeight;
    else state.stuck = isAtBottom();
    if (nearTop()) loadOlder();
    if (!el.newMessages.hidden && state.stuck) scrollToBottom();
  }, { passive: true });
  // Keep following the newest line when the log changes size (rotation,
  // window resize, the composer growing) if the user was at the bottom.
  if (typeof ResizeObserver === 'function') {
    new ResizeObserver(() => {
      logHeight = el.log.clientHeight;
      if (state.stuck && !el.chat.hidden) el.log.scrollTop = el.log.scrollHeight;
    }).observe(el.log);
  }
  el.log.addEventListener('click', (e) => {
    const b = e.target.closest && e.target.closest('button.delete-line');
    if (b) deleteLine(b);
  });
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
  window.addEventListener('online', () => {
    if (!state.joined) return;
    restartRead(); // a stream of the old network may be dead without a word
    wake();
  });
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
