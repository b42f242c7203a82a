/*
 * state.js -- the session and room state of the pgchat client: the limits
 * it shares with the server, the one `state` object every module reads,
 * and the room named by the page's URL.
 *
 * Nothing here touches the DOM beyond location and history; every other
 * module imports this one and none of them is imported by it.
 */

export const NICK_RE = /^[A-Za-z0-9_\-^!]{1,50}$/;
export const NICK_MAX = 50;
export const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const DEFAULT_ROOM = 'lobby';
export const MAX_MESSAGE_BYTES = 4096;
export const RECV_BATCH = 200;          // server sends at most this many per reply
export const HISTORY_PAGE = 50;         // messages per /history page
export const SEARCH_LIMIT = 50;         // results per search (the server's maximum)
export const SEARCH_MAX_CHARS = 200;
export const MID_WINDOW_MS = 24 * 3600 * 1000; // the server's mid remembers a send this long

/* The responder's limits, from GET /limits at load; these defaults until
 * it answers (or where it does not). */
export const limits = {
  messageBytes: MAX_MESSAGE_BYTES,
  recvTimeoutMs: 20000, // a parked /recv gets its ping, /events its ping event, this often
};

/*
 * One object, so that a loop started for one session can tell that it is
 * stale: every join and leave bumps `gen`, and a loop holding an older gen
 * ends at its next step.
 */
export const state = {
  gen: 0,             // bumped on every join/leave; stale loops exit
  joined: false,
  nick: null,
  room: DEFAULT_ROOM,
  id: null,
  since: 0,           // timestamp of the last message shown (the cursor)
  catchingUp: true,   // still loading the history after a join
  needWho: true,      // refresh the who list once caught up
  verifySelf: false,  // after a reconnect: check we are still in `who`
  who: new Set(),
  whoPending: null,   // join/part events seen while a `who` is in flight
  failures: 0,        // consecutive receive failures
  retryAt: 0,
  wake: null,         // resolves the current back-off pause early
  rejoinP: null,
  unread: 0,
  newCount: 0,
  lastDay: null,
  starttime: null,
  stickToBottom: false, // scroll down when our own message comes back
  stuck: true,          // the log was scrolled to the bottom
  more: false,          // older messages exist before the first line shown
  loadingOlder: false,
  outbox: [],           // {mid, text, at, li, held}: sends not yet answered 200, in order
  refused: [],          // {mid, text, at, li, reason}: refused sends, until edited or deleted
  pending: new Map(),   // mid -> li.pending, until its copy is delivered
  moderator: false,     // the join reply's "moderator": may delete any message
  deleteWindowMs: 0,    // the join reply's "delete_window": an author's own, this long
  outboxGen: -1,        // the session whose outbox loop is running
  outboxWake: null,     // ends the outbox's back-off early
  outboxState: '',      // '' | 'sending' | 'waiting' (a 429) | 'retrying' | 'held'
  lastAckTs: 0,         // timestamp of our newest send the server acknowledged
  deadStreams: 0,       // streams given up as dead (silent past two pings)
  searchSeq: 0,         // the newest search; older answers are dropped
  jumpSeq: 0,           // the newest jump to a result
};

/** The state of a fresh session of `nick` in `room` with the server's `id`. */
/** The join reply's word on deleting (behind a site's login only). */
export function setPowers(data) {
  state.moderator = data.moderator === true;
  const w = Number(data.delete_window);
  state.deleteWindowMs = Number.isFinite(w) && w > 0 ? w * 1000 : 0;
}

/** Whether the line of nick's msg at ts gets a delete button: a
 *  moderator's are on every line, an author's on her own while the
 *  server's window lasts (as the page was drawn; the server decides). */
export function canDelete(nick, ts) {
  return state.moderator ||
    (state.deleteWindowMs > 0 && nick === state.nick && Date.now() - ts < state.deleteWindowMs);
}

export function resetSession(nick, room, id) {
  state.gen++;
  state.joined = true;
  state.nick = nick;
  state.room = room;
  state.id = id;
  state.since = 0;
  state.catchingUp = true;
  state.needWho = true;
  state.verifySelf = false;
  state.who = new Set([nick]);
  state.failures = 0;
  state.unread = 0;
  state.newCount = 0;
  state.lastDay = null;
  state.outbox = [];
  state.refused = [];
  state.pending.clear();
  state.outboxState = '';
  state.lastAckTs = 0;
  state.more = false;
  state.loadingOlder = false;
}

/** Why `nick` cannot be used, or null. */
export function validateNick(nick) {
  if (!nick) return 'Please enter a nickname.';
  if (nick.length > NICK_MAX) return `Nicknames can be at most ${NICK_MAX} characters (this one has ${nick.length}).`;
  if (!NICK_RE.test(nick)) {
    const bad = [...new Set([...nick].filter((c) => !/[A-Za-z0-9_\-^!]/.test(c)))]
      .map((c) => (c === ' ' ? 'space' : `“${c}”`)).join(', ');
    return `Nicknames may only use letters, digits and _ - ^ ! (not ${bad}).`;
  }
  return null;
}

/** Why `room` cannot be used, or null. */
export function validateRoom(room) {
  if (!ROOM_RE.test(room)) return 'Room names are 1–64 letters, digits, _ or -.';
  return null;
}

/* A hash that is not valid percent-encoding (#%E0) names no room. */
function decodedHash() {
  try {
    return decodeURIComponent(location.hash.replace(/^#/, ''));
  } catch {
    return '';
  }
}

/** The room the URL names (#room, or ?room=), or null. */
export function roomFromUrl() {
  const hash = decodedHash();
  if (hash && ROOM_RE.test(hash)) return hash;
  const q = new URLSearchParams(location.search).get('room');
  if (q && ROOM_RE.test(q)) return q;
  return null;
}

/** Puts the room in the URL's hash (without a history entry), so that a
 *  reload or a shared link lands in it; lobby stays implicit. */
export function setUrlRoom(room) {
  if (roomFromUrl() === room) return;
  if (!roomFromUrl() && room === DEFAULT_ROOM) return;
  const url = new URL(location.href);
  url.searchParams.delete('room');
  url.hash = room;
  history.replaceState(history.state, '', url);
}
