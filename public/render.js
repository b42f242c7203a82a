/*
 * render.js -- the elements of the pgchat client's message log and search
 * results, built from messages: lines, links, day dividers, marked words,
 * times and sizes as text.
 *
 * Safety: user text only ever reaches the DOM through textContent / text
 * nodes; links are built as elements and only get an href when the URL
 * parses with protocol http: or https: (javascript:, data:, vbscript: and
 * every other scheme stay plain text). There is no innerHTML here. Every
 * nick and message is isolated (unicode-bidi: isolate in style.css), so
 * right-to-left text cannot reorder what surrounds it.
 *
 * Pure: every function returns a new element or string, reads no state
 * and imports nothing; the caller inserts what it gets.
 */

const URL_RE = /\bhttps?:\/\/[^\s<>"`]+/gi;
const WORD_RE = /[\p{L}\p{N}]+/gu; // roughly what the 'simple' parser calls a word

function pad2(n) { return String(n).padStart(2, '0'); }

export function hhmm(d) { return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`; }

export function fullDate(d) {
  try {
    return d.toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'medium' });
  } catch {
    return d.toString();
  }
}

/** "2h 05m", "3m 07s": how long the server has been up. */
export function formatDuration(ms) {
  let s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${pad2(m)}m`;
  if (m) return `${m}m ${pad2(s)}s`;
  return `${s}s`;
}

/** "12.4 MiB": the server's memory. */
export function formatBytes(n) {
  n = Number(n);
  if (!Number.isFinite(n) || n < 0) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

/** One of the eight nick colours of style.css (.nick-c0 .. .nick-c7). */
export function nickColor(nick) {
  let h = 0;
  for (let i = 0; i < nick.length; i++) h = (h * 31 + nick.charCodeAt(i)) >>> 0;
  return h % 8;
}

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

function timeElement(d, text) {
  const time = document.createElement('time');
  time.className = 'time';
  time.dateTime = d.toISOString();
  time.title = fullDate(d);
  time.textContent = text;
  return time;
}

function nickElement(nick) {
  const span = document.createElement('span');
  span.className = `nick nick-c${nickColor(nick)}`;
  span.textContent = nick;
  return span;
}

/** The li.line of message m at timestamp ts, as `me` (our nick) sees it:
 *  .self for our own, .mention for another's that names us; a msg line
 *  gets a delete button when deletable (app.js handles its clicks). */
export function renderLine(m, ts, me, deletable = false) {
  const type = ['join', 'part', 'deleted'].includes(m.type) ? m.type : 'msg';
  const nick = String(m.nick ?? '');
  const d = new Date(ts);

  const li = document.createElement('li');
  li.className = `line ${type}`;
  li.dataset.ts = String(ts);

  const textEl = document.createElement('span');
  textEl.className = 'text';
  if (type === 'msg') {
    const text = String(m.text ?? '');
    appendLinkified(textEl, text);
    if (nick === me) li.classList.add('self');
    else if (me && text.toLowerCase().includes(me.toLowerCase())) li.classList.add('mention');
  } else if (type === 'deleted') {
    textEl.textContent = 'message deleted'; // its text is gone
  } else {
    textEl.textContent = type === 'join' ? 'joined the room' : 'left the room';
    if (nick === me) li.classList.add('self');
  }

  li.append(timeElement(d, hhmm(d)), ' ', nickElement(nick), ' ', textEl);
  if (type === 'msg' && deletable) {
    const del = document.createElement('button');
    del.type = 'button';
    del.className = 'delete-line';
    del.textContent = '×';
    del.title = 'Delete this message';
    del.setAttribute('aria-label', 'Delete this message');
    li.append(' ', del);
  }
  return li;
}

/** The li.pending of a message of ours that the server does not have yet. */
export function renderPending(text, me) {
  const li = renderLine({ type: 'msg', nick: me, text }, Date.now(), me);
  li.className = 'pending msg self';
  delete li.dataset.ts;
  li.querySelector('.time').textContent = '';
  li.title = 'sending…';
  return li;
}

/**
 * Adds a note and buttons to a line of ours the server does not have:
 * note is what to say (the server's reason, or a question), actions a list
 * of {label, name, className, onClick}, where label is the button's text
 * and name its accessible name (the label says what, the name says to
 * what). Replaces any note and buttons it had.
 */
export function setLineActions(li, note, actions) {
  for (const old of li.querySelectorAll(':scope > .note, :scope > .actions')) old.remove();
  const noteEl = document.createElement('span');
  noteEl.className = 'note';
  noteEl.textContent = note;
  const box = document.createElement('span');
  box.className = 'actions';
  for (const a of actions) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `link-button ${a.className}`;
    b.textContent = a.label;
    if (a.name) b.setAttribute('aria-label', a.name);
    b.addEventListener('click', a.onClick);
    box.append(b);
  }
  li.append(noteEl, box);
}

/** The li.day that starts the messages of d's day. */
export function dayDivider(d) {
  const li = document.createElement('li');
  li.className = 'day';
  li.setAttribute('role', 'separator');
  li.textContent = d.toLocaleDateString(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
  return li;
}

/** An li.notice (with the extra class `kind`, if any) saying text. */
export function renderNotice(text, kind = '') {
  const li = document.createElement('li');
  li.className = kind ? `notice ${kind}` : 'notice';
  li.textContent = text;
  return li;
}

/** The words of a web-style query worth marking in a result: those of its
 *  plain words and "phrases", not those after a '-', not the word "or". */
export function searchTerms(q) {
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

/** The li.result of search hit m, its words of terms marked; a click on
 *  it calls onPick(timestamp). */
export function renderResult(m, terms, onPick) {
  const ts = Number(m.timestamp);
  const d = new Date(ts);
  const li = document.createElement('li');
  li.className = 'result';
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'result-button';
  button.dataset.ts = String(ts);
  const when = d.toDateString() === new Date().toDateString()
    ? hhmm(d) : d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
  const textEl = document.createElement('span');
  textEl.className = 'text';
  appendMarked(textEl, String(m.text ?? ''), terms);
  button.append(timeElement(d, when), ' ', nickElement(String(m.nick ?? '')), ' ', textEl);
  button.addEventListener('click', () => onPick(ts));
  li.append(button);
  return li;
}
