/*
 * outbox.js -- sending: what the user types becomes a pending line with a
 * fresh mid at once, and the outbox sends it, retrying the same mid until
 * the server answers, so that a message arrives exactly once even when a
 * reply is lost or the server is down for a while.
 */

import { state, MAX_MESSAGE_BYTES } from './state.js';
import { isSessionError, newMid, outboxPause, request, wake } from './transport.js';
import { renderPending } from './render.js';
import { el, scrollToBottom, setRss } from './view.js';
import { rejoin } from './session.js';

function utf8Length(s) { return new TextEncoder().encode(s).length; }

export function setSendError(msg) { el.sendError.textContent = msg; }

function sendErrorText(r) {
  const err = r.data.error;
  if (r.status === 0) return 'Not sent: cannot reach the server. Press Enter to try again.';
  if (r.status >= 500) return `Not sent: the server is unavailable (HTTP ${r.status}). Press Enter to try again.`;
  if (r.status === 429) return `Not sent: ${err || 'too many messages'} — wait a moment and try again.`;
  if (err) return /too long/i.test(err) ? `${err} (the limit is ${MAX_MESSAGE_BYTES} bytes).` : err;
  return `Not sent: unexpected reply (HTTP ${r.status}).`;
}

/** Grows the input with its lines, 2 to 6 rows. */
export function autosize() {
  const lines = el.input.value.split('\n').length;
  el.input.rows = Math.min(6, Math.max(2, lines));
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
  if (bytes > MAX_MESSAGE_BYTES) {
    setSendError(`Message too long: ${bytes} bytes, the limit is ${MAX_MESSAGE_BYTES}.`);
    return;
  }
  const item = { mid: newMid(), text, li: renderPending(text, state.nick) };
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
        if (state.failures > 0) wake(); // the server is back: read now
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
      await outboxPause(failures);
    }
  } finally {
    if (state.outboxGen === gen) state.outboxGen = -1;
  }
}
