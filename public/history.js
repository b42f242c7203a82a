/*
 * history.js -- what the pgchat client reads of the past: the newest page
 * at a join, older pages as the user scrolls up (/history), and the room's
 * search (/search) with its jump back to a result.
 *
 * Scrolling back keeps the first line shown where it is on the screen, and
 * stops at the room's first message; the log never holds a message twice,
 * because pages only ever go before the first line shown.
 */

import { state, canDelete, HISTORY_PAGE, SEARCH_LIMIT, SEARCH_MAX_CHARS } from './state.js';
import { request, sleep } from './transport.js';
import { dayDivider, renderLine, renderResult, searchTerms } from './render.js';
import { applyServerInfo, el, endCatchUp, handleMessages, isAtBottom, setMore } from './view.js';

const TOP_SLACK_PX = 300;        // scrolled this close to the top: load older
const JUMP_MAX_PAGES = 200;      // a jump loads at most 10,000 messages back

function historyUrl(params) {
  return `history?${new URLSearchParams({ room: state.room, limit: String(HISTORY_PAGE), ...params })}`;
}

/** Whether the log is scrolled near enough to its top to load older. */
export function nearTop() { return el.log.scrollTop < TOP_SLACK_PX; }

/** The newest page, before reading starts after it. Resolves true when it
 *  came; without it the read starts from 0, as the classic protocol does. */
export async function loadLatest(gen) {
  const r = await request(historyUrl({}));
  if (gen !== state.gen) return false;
  if (!r.ok || !Array.isArray(r.data.messages)) {
    state.more = true;
    return false;
  }
  applyServerInfo(r.data);
  handleMessages(r.data.messages, false);
  setMore(r.data.more === true);
  endCatchUp(); // reading starts at the newest message
  return true;
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
    if (m.type === 'delete') continue; // the page holds the tombstone it names
    const d = new Date(ts).toDateString();
    if (day !== null && d !== day) frag.append(dayDivider(new Date(ts)));
    day = d;
    frag.append(renderLine(m, ts, state.nick, canDelete(String(m.nick ?? ''), ts)));
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

/** Loads the page before the first line shown and, while the page does not
 *  fill the screen, the ones before it; stops at the room's first message. */
export async function loadOlder() {
  if (await loadOlderPage() && state.more && nearTop()) loadOlder();
}

/* ------------------------------------------------------------------ */
/* search                                                              */

export function clearSearch() {
  state.searchSeq++;
  state.jumpSeq++;
  el.searchInput.value = '';
  el.searchStatus.textContent = '';
  el.searchResults.replaceChildren();
}

/** Searches the room for what is in the search box; only the newest
 *  search's answer is shown. */
export async function runSearch() {
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
    if (m && typeof m === 'object' && m.type !== 'delete' && Number.isFinite(Number(m.timestamp))) frag.append(renderResult(m, terms, jumpTo));
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
