/*
 * transport.js -- how the pgchat client talks to the server: requests,
 * the back-off between failures, and reading the room, over the event
 * stream (/events) when it works and over long-poll (/recv) when not.
 *
 * URLs are relative (`join`, `recv`, `events`, ...), so the page also works
 * when it is served under a prefix such as /chat/. No secrets in URLs:
 * the writes are POSTed forms with the id in the body; /recv is a GET with
 * only since and room in its query and the id in the X-Pgchat-Id header;
 * /events, which cannot send a header, carries the room's session cookie
 * that the join set (HttpOnly: this code never sees it). URLs reach logs
 * (nginx's error log on a failure, proxies); bodies, headers and cookies do
 * not.
 *
 * Touches no DOM: what it reads goes to the caller's hooks.
 */

import { state, limits, RECV_BATCH } from './state.js';

const RECV_MARGIN_MS = 10000;    // a /recv held this long past the server's ping is dead
const STREAM_SILENCE = 2;        // a stream silent for this many ping intervals is dead
const REQUEST_TIMEOUT_MS = 20000;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const STREAM_SETTLED_MS = 5000;  // a stream open this long ended, not failed

/**
 * fetch wrapper: never throws. Returns {ok, status, data, retryAfter};
 * status 0 means network error / timeout / abort; retryAfter is the
 * reply's Retry-After in ms, or null. `form` is sent as
 * application/x-www-form-urlencoded.
 */
export async function request(path, { form = null, headers = {}, timeout = REQUEST_TIMEOUT_MS, signal = null } = {}) {
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
    return { ok: res.ok, status: res.status, data, retryAfter: retryAfterMs(res.headers.get('Retry-After')) };
  } catch (err) {
    return { ok: false, status: 0, data: {}, aborted: ctl.signal.aborted, err };
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener('abort', onAbort);
  }
}

/* Retry-After as ms from now: delay-seconds or an HTTP date; null when
 * missing or unreadable. */
function retryAfterMs(v) {
  if (v === null || v === undefined || v === '') return null;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : null;
}

/** Reads the responder's limits (GET /limits) into `limits`; where it does
 *  not answer, the defaults stay. */
export async function loadLimits() {
  const r = await request('limits');
  if (!r.ok) return;
  const bytes = Number(r.data.message_bytes);
  if (Number.isInteger(bytes) && bytes > 0) limits.messageBytes = bytes;
  const recv = Number(r.data.recv_timeout);
  if (Number.isFinite(recv) && recv > 0) limits.recvTimeoutMs = recv * 1000;
}

/** A fresh message id: 128 random bits as hex (the server takes 1-64 of
 *  [A-Za-z0-9_-]). */
export function newMid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

export function isSessionError(err) { return /no such session/i.test(String(err || '')); }

/** The pause after `failures` failures in a row: doubling from 1 s to 30 s,
 *  with jitter so that clients cut off together do not return together. */
export function backoffDelay(failures) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, failures - 1));
  // jitter: 75 % .. 125 % of the step, never above the cap
  return Math.min(BACKOFF_MAX_MS, Math.round(base * (0.75 + Math.random() * 0.5)));
}

export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

/* A pause of ms that ends early when state[slot] is called: the reader's
 * back-off sits in state.wake, the outbox's in state.outboxWake. */
function pauseIn(slot, ms) {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      if (state[slot] === done) state[slot] = null;
      resolve();
    }
    state[slot] = done;
  });
}

/** Ends the reader's and the outbox's back-off pauses now (retry button,
 *  online, a send that went through). */
export function wake() {
  if (state.wake) state.wake();
  if (state.outboxWake) state.outboxWake();
}

/** Pauses the outbox for ms; wake() ends the pause early (an outage's
 *  back-off: the server may be back). A rate limit's wait is a plain
 *  sleep(), which nothing shortens. */
export function outboxPause(ms) {
  return pauseIn('outboxWake', ms);
}

/* ------------------------------------------------------------------ */
/* reading the room                                                     */

/* The read in flight ({stop()}), so that a leave or a new cookie can end
 * it; and whether this page has had a stream open, which tells a server or
 * proxy without streams (fall back to long-poll) from an outage (retry). */
let current = null;
let streamWorked = false;
let useStream = typeof EventSource === 'function';

/** Ends the read in flight; the receive loop starts the next one at once
 *  (with the new session cookie after a rejoin). */
export function restartRead() {
  if (current) current.stop();
}

/**
 * One long poll. Resolves 'again' when the loop should ask again at once
 * (messages, ping, gap, or a fresh session after a rejoin), 'fail' when it
 * should back off.
 */
async function pollOnce(gen, hooks) {
  const q = new URLSearchParams({ since: String(state.since), room: state.room });
  const headers = state.id ? { 'X-Pgchat-Id': state.id } : {};
  const ctl = new AbortController();
  const me = { stopped: false, stop: () => { me.stopped = true; ctl.abort(); } };
  current = me;
  // The server answers a parked poll with a ping after recvTimeoutMs: one
  // that outlives that by the margin is lost on the way (a dead NAT entry,
  // a proxy that hangs) and is given up, then asked again.
  const timeout = limits.recvTimeoutMs + RECV_MARGIN_MS;
  const r = await request(`recv?${q}`, { headers, timeout, signal: ctl.signal });
  if (current === me) current = null;
  if (gen !== state.gen) return 'again';

  if (r.ok && Array.isArray(r.data.messages)) {
    hooks.up(r.data); // rss, and starttime if the server sends it
    hooks.messages(r.data.messages, r.data.gap === true);
    if (r.data.messages.length < RECV_BATCH) hooks.caughtUp();
    return 'again'; // next long poll at once (also after ping / gap replies)
  }
  if (me.stopped) return 'again'; // restartRead(): not a failure
  if (r.status === 400 && isSessionError(r.data.error)) {
    return (await hooks.sessionLost()) !== 'retry' ? 'again' : 'fail';
  }
  return 'fail'; // network error, timeout, 5xx, 429 or an unexpected reply
}

/**
 * One event stream, open until it fails or is stopped. Messages are handed
 * on in batches: the events of one burst (a catch-up, a gap's 1000) go to
 * the log in one step. Resolves 'again' (stopped, or ended after it had
 * been open a while: reopen at once), 'fallback' (this page never had a
 * stream: read by long-poll from now on) or 'fail' (back off).
 *
 * The server sends a `ping` event every recvTimeoutMs; a stream that
 * brings nothing, neither a message nor a ping, for STREAM_SILENCE of those
 * is dead without a word (a NAT entry timed out, a laptop slept, a proxy
 * hangs): EventSource itself would wait forever. It is closed and opened
 * again from the cursor, at once ('again'), so nothing is missed.
 */
function streamOnce(gen, hooks) {
  return new Promise((resolve) => {
    const q = new URLSearchParams({ since: String(state.since), room: state.room });
    const es = new EventSource(`events?${q}`);
    let openedAt = 0;
    let queue = [];
    let gap = false;
    let flushTimer = 0;
    let ended = false;
    let openTimer = 0;
    let heardAt = 0;
    let silenceTimer = 0;
    const silenceMs = STREAM_SILENCE * limits.recvTimeoutMs;
    const me = { stop: null };

    // One timer for the silence, moved on only when it fires: resetting it
    // on every event would cost a timer per message in a burst of 1000.
    const watch = () => {
      const quiet = Date.now() - heardAt;
      if (quiet >= silenceMs) {
        state.deadStreams++;
        end('again');
      } else {
        silenceTimer = setTimeout(watch, silenceMs - quiet);
      }
    };
    const heard = () => { heardAt = Date.now(); };

    const flush = () => {
      flushTimer = 0;
      if (ended || gen !== state.gen) return;
      const batch = queue;
      const g = gap;
      queue = [];
      gap = false;
      if (batch.length || g) hooks.messages(batch, g);
      hooks.caughtUp();
    };
    const schedule = () => { if (!flushTimer) flushTimer = setTimeout(flush, 0); };
    const end = (how) => {
      if (ended) return;
      if (queue.length || gap) flush(); // what came before the end is shown
      ended = true;
      es.close();
      clearTimeout(flushTimer);
      clearTimeout(openTimer);
      clearTimeout(silenceTimer);
      if (current === me) current = null;
      resolve(how);
    };
    // Never opened: on a page that has had a stream, an outage; else no
    // stream can pass here.
    const refused = () => end(streamWorked ? 'fail' : 'fallback');
    me.stop = () => end('again');
    current = me;

    // A proxy that holds the stream's headers back is no stream at all.
    openTimer = setTimeout(() => { if (!openedAt) refused(); }, REQUEST_TIMEOUT_MS);

    es.addEventListener('open', () => {
      if (ended) return;
      openedAt = Date.now();
      streamWorked = true;
      clearTimeout(openTimer);
      heard();
      silenceTimer = setTimeout(watch, silenceMs);
      hooks.up({});
      schedule(); // a quiet room: caught up already
    });
    es.addEventListener('ping', heard);
    es.addEventListener('message', (ev) => {
      heard();
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      queue.push(m);
      schedule();
    });
    es.addEventListener('gap', () => {
      heard();
      if (queue.length) flush(); // the messages before the gap, then the notice
      gap = true;
      schedule();
    });
    // EventSource would reconnect by itself after a network error, but not
    // after a 502 or a 503: reconnecting here handles both the same way,
    // with the back-off and the banner the long-poll has.
    es.addEventListener('error', () => {
      if (ended) return;
      if (!openedAt) refused();
      else end(Date.now() - openedAt >= STREAM_SETTLED_MS ? 'again' : 'fail');
    });
  });
}

/**
 * Reads the room from state.since on until state.gen moves on from gen,
 * over the event stream while it works, else over long-poll. The hooks:
 *   up(data)          a read succeeded (data: the reply, {} for a stream)
 *   messages(l, gap)  messages to show, in order; gap: some were skipped
 *   caughtUp()        the reader is at the newest message
 *   down(delay)       state.failures reads failed in a row; the next try
 *                     is in delay ms (or at wake())
 *   sessionLost()     the server does not know our id: resolves 'ok',
 *                     'retry' or 'fatal', as a rejoin does
 */
export async function receive(gen, hooks) {
  while (gen === state.gen) {
    let how = 'fail';
    try {
      how = useStream ? await streamOnce(gen, hooks) : await pollOnce(gen, hooks);
    } catch (err) {
      // A bug must not end the loop silently: log it and back off.
      console.error('pgchat: read failed', err);
    }
    if (gen !== state.gen) return;
    if (how === 'fallback') {
      useStream = false;
      continue;
    }
    if (how === 'again') continue;

    state.failures++;
    const delay = backoffDelay(state.failures);
    state.retryAt = Date.now() + delay;
    hooks.down(delay);
    await pauseIn('wake', delay);
  }
}

/** Stops reading (a leave): the loop sees the new gen and ends. */
export function stopReceiving() {
  if (current) current.stop();
  wake();
}
