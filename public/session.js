/*
 * session.js -- joining, leaving and staying in a room: the join form, the
 * session's start (the newest page, then reading the room), the who list
 * from the server, and a quiet rejoin with the same nick when the server
 * has lost the session.
 */

import { state, resetSession, setPowers, roomFromUrl, setUrlRoom, validateNick, validateRoom, DEFAULT_ROOM } from './state.js';
import { receive, request, restartRead, sleep, stopReceiving } from './transport.js';
import {
  applyServerInfo, applyWhoEvent, el, endCatchUp, handleMessages, renderWho, setStatus, showBanner,
  updateTitle,
} from './view.js';
import { clearSearch, loadLatest, loadOlder, nearTop } from './history.js';

/** Asks the server who is in the room. After a reconnect (verifySelf) a
 *  list without us means the server lost our session: rejoin quietly. */
export async function refreshWho() {
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
    state.needWho = true; // try again after the next successful read
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

/**
 * Get a new session with the same nick (session expired / server lost it).
 * Resolves 'ok', 'retry' (server unreachable, try later) or 'fatal'
 * (nick taken; the join screen is shown). Concurrent callers share one try.
 */
export function rejoin({ soft = false } = {}) {
  if (state.rejoinP) return state.rejoinP;
  const gen = state.gen;
  state.rejoinP = (async () => {
    for (let attempt = 1; attempt <= 3; attempt++) {
      const r = await request('join', { form: { nick: state.nick, room: state.room } });
      if (gen !== state.gen) return 'fatal';
      if (r.ok && r.data.id) {
        state.id = String(r.data.id);
        setPowers(r.data);
        applyServerInfo(r.data);
        state.needWho = true;
        restartRead(); // a stream opened before carries the old cookie
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

/* Called at the start of every session, once the log is empty and before
 * the newest page is read: the outbox shows and sends what an earlier
 * page left (app.js registers it, so that this file needs no outbox). */
const startHooks = [];
export function onSessionStart(fn) { startHooks.push(fn); }

/* What the session does with what the transport reads. */
const readHooks = {
  up(data) {
    if (state.failures > 0) {
      state.failures = 0;
      state.needWho = true;
      state.verifySelf = true;
      if (state.outboxWake) state.outboxWake(); // the server is back: send now
    }
    setStatus('connected');
    showBanner();
    applyServerInfo(data);
  },
  messages: handleMessages,
  caughtUp() {
    endCatchUp();
    if (state.needWho) {
      state.needWho = false;
      refreshWho();
    }
  },
  down() {
    state.needWho = true;
    setStatus(navigator.onLine === false ? 'offline' : 'reconnecting');
    showBanner();
  },
  sessionLost: () => rejoin(),
};

export function showJoinError(msg, field = null) {
  el.joinError.textContent = msg;
  for (const f of [el.nick, el.room]) f.removeAttribute('aria-invalid');
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }
}

export async function onJoinSubmit(ev) {
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
  resetSession(String(data.nick || nick), room, String(data.id));
  setPowers(data);
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
  for (const fn of startHooks) fn();
  const gen = state.gen;
  loadLatest(gen).then((loaded) => {
    if (gen !== state.gen) return;
    if (loaded) readHooks.caughtUp(); // the who list, once
    receive(gen, readHooks);
    if (state.more && nearTop()) loadOlder();
  });
}

/** Parts as the page goes away: a beacon, which outlives the page. */
export function sendPartBeacon() {
  if (!state.joined || !state.id) return;
  const body = new URLSearchParams({ id: state.id, room: state.room });
  let sent = false;
  try { sent = navigator.sendBeacon('part', body); } catch { sent = false; }
  if (!sent) {
    fetch('part', { method: 'POST', body, keepalive: true, credentials: 'same-origin' }).catch(() => {});
  }
}

export function leaveSession({ sendPart = true } = {}) {
  if (sendPart && state.joined && state.id) {
    request('part', { form: { id: state.id, room: state.room } });
  }
  state.gen++;
  state.joined = false;
  state.id = null;
  stopReceiving();
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
