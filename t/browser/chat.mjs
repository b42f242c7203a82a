#!/usr/bin/env node
// Browser test of the pgchat web client (public/), printing TAP.
//
// Started by the Perl wrapper once the whole stack (nginx + C responder +
// PostgreSQL) runs. Environment:
//   PGCHAT_URL   base URL of the chat page, e.g. http://127.0.0.1:34567/
//   PGCHAT_CTL   executable: `$PGCHAT_CTL responder-stop|responder-start`
//   PGCHAT_OUT   directory for screenshots (chat.png, chat-375*.png, fail-*.png)
//   PGCHAT_DOCS  optional: path where chat.png is copied as well (and
//                search.png next to it)
//   PGCHAT_CHROMIUM  optional: browser binary (default /usr/bin/chromium)
//   PGCHAT_ONLY  optional: a regular expression; only the tests whose names
//                match run (those that use alice and bob need the first ones)
// Needs `npm install` (or `npm ci`) in t/browser for playwright-core.
// Run by hand: PGCHAT_URL=... PGCHAT_CTL=... PGCHAT_OUT=/tmp node t/browser/chat.mjs

import { chromium } from 'playwright-core';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const run = promisify(execFile);
const require = createRequire(import.meta.url);

const BASE_RAW = process.env.PGCHAT_URL;
const CTL = process.env.PGCHAT_CTL;
const OUT = process.env.PGCHAT_OUT || os.tmpdir();
const DOCS = process.env.PGCHAT_DOCS;
const CHROMIUM = process.env.PGCHAT_CHROMIUM || '/usr/bin/chromium';

if (!BASE_RAW || !CTL) {
  console.log('Bail out! PGCHAT_URL and PGCHAT_CTL must be set');
  process.exit(2);
}
const BASE = BASE_RAW.endsWith('/') ? BASE_RAW : `${BASE_RAW}/`;
// A stack behind a site's login (t/60-browser.t: mona moderates, alice
// does not), for the moderation test.
const AUTH_BASE = process.env.PGCHAT_AUTH_BASE;
const ROOM = `browser-${Math.random().toString(36).slice(2, 8)}`;
const T = 20000;          // default wait for a condition
const T_RECOVER = 60000;  // reconnect after an outage (back-off up to 30 s)
const VIEW = { width: 1000, height: 700 };

/* ---------------------------------------------------------------- TAP */

const tests = [];
function test(name, fn, { critical = false } = {}) { tests.push({ name, fn, critical }); }

function diag(text) {
  for (const line of String(text).split('\n')) console.log(`# ${line}`);
}

// A failure's story goes to stderr, which prove shows without -v.
function failDiag(text) {
  for (const line of String(text).split('\n')) console.error(`# ${line}`);
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function eq(got, want, what) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

/* ------------------------------------------------------------- helpers */

const users = {};
// Every request any page made (method, URL, X-Pgchat-Id header), and every
// session id the server gave out: no id may ever be in a URL.
const requests = [];
const sessionIds = new Set();

function record(page, who) {
  page.on('request', (r) => {
    requests.push({
      who, method: r.method(), url: r.url(), idHeader: r.headers()['x-pgchat-id'] || null, at: Date.now(),
    });
  });
  page.on('response', async (res) => {
    if (!new URL(res.url()).pathname.endsWith('/join') || res.status() !== 200) return;
    try {
      const data = await res.json();
      if (data && typeof data.id === 'string') sessionIds.add(data.id);
    } catch { /* page gone */ }
  });
}
let browser;

let responderStopped = false;

async function ctl(cmd) {
  if (cmd === 'responder-stop') responderStopped = true;
  const { stdout, stderr } = await run(CTL, [cmd], { timeout: 60000 });
  if (stdout.trim()) diag(`${cmd}: ${stdout.trim()}`);
  if (stderr.trim()) diag(`${cmd} (stderr): ${stderr.trim()}`);
  if (cmd === 'responder-start') responderStopped = false;
}

/** A page of its own browser context, at the chat in room; setup(page),
 *  if given, runs before the page loads (to route its requests); base, if
 *  given, is the URL the page is loaded from (a proxy's). */
async function openUser(nick, room = ROOM, setup = null, base = BASE) {
  const context = await browser.newContext({ viewport: VIEW, deviceScaleFactor: 1 });
  const page = await context.newPage();
  if (setup) await setup(page);
  const u = { nick, context, page, dialogs: 0, errors: [], joinPosts: 0 };
  page.on('dialog', (d) => { u.dialogs++; d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => u.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) {
      u.errors.push(`console: ${m.text()}`);
    }
  });
  page.on('request', (r) => {
    if (r.method() === 'POST' && new URL(r.url()).pathname.endsWith('/join')) u.joinPosts++;
  });
  record(page, nick);
  await page.goto(`${base}#${room}`, { waitUntil: 'load', timeout: T });
  users[nick] = u;
  return u;
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent);

async function joinAs(u, nick = u.nick) {
  await u.page.fill('#nick', nick);
  await u.page.click('#join-button');
}

async function waitJoined(u) {
  await u.page.waitForSelector('#chat', { state: 'visible', timeout: T });
  await u.page.waitForSelector('#join-screen', { state: 'hidden', timeout: T });
}

/** Count .line.msg rows whose .text is exactly `t`. */
function countMsg(page, t) {
  return page.$$eval('#log .line.msg .text', (els, want) => els.filter((e) => e.textContent === want).length, t);
}

async function waitMsg(page, t, timeout = T) {
  await page.waitForFunction(
    (want) => [...document.querySelectorAll('#log .line.msg .text')].some((e) => e.textContent === want),
    t, { timeout, polling: 100 },
  );
}

async function waitText(page, sel, want, timeout = T) {
  try {
    await page.waitForFunction(
      ([s, w]) => document.querySelector(s)?.textContent === w, [sel, want], { timeout, polling: 100 },
    );
  } catch (e) {
    const got = await page.$eval(sel, (el) => el.textContent).catch(() => '(missing)');
    throw new Error(`${sel} never became ${JSON.stringify(want)} (last: ${JSON.stringify(got)})`);
  }
}

/** Type `t` into #input and press Enter; waits until accepted (input
 *  cleared and nothing of ours pending) or refused (#send-error, or a
 *  li.refused in the log). A rate limit only makes it wait longer: the
 *  outbox waits it out by itself. */
async function say(u, t) {
  await u.page.fill('#input', t);
  await u.page.press('#input', 'Enter');
  await u.page.waitForFunction(
    () => (document.querySelector('#input').value === '' && !document.querySelector('#log li.pending'))
      || document.querySelector('#send-error').textContent !== ''
      || document.querySelector('#log li.refused'),
    null, { timeout: T_RECOVER, polling: 50 },
  );
  const err = await text(u.page, '#send-error');
  const refused = await u.page.$eval('#log', (l) => l.querySelector('li.refused .note')?.textContent || '');
  if (err || refused) throw new Error(`sending ${JSON.stringify(t)} failed: ${err || refused}`);
}

/** Types each of texts into #input and presses Enter, as fast as the page
 *  takes keys, waiting for nothing. */
async function typeFast(u, texts) {
  for (const t of texts) {
    await u.page.fill('#input', t);
    await u.page.press('#input', 'Enter');
  }
}

/** The texts of the .line.msg rows in #log that match re, in order. */
function msgTexts(page, re) {
  return page.$$eval('#log .line.msg .text', (els, src) => els.map((e) => e.textContent)
    .filter((t) => new RegExp(src).test(t)), re.source);
}

/** Waits until page shows exactly `want` (in order) among the lines that
 *  match re; fails with what it shows. */
async function waitTexts(page, re, want, timeout = T_RECOVER) {
  try {
    await page.waitForFunction(([src, w]) => {
      const got = [...document.querySelectorAll('#log .line.msg .text')].map((e) => e.textContent)
        .filter((t) => new RegExp(src).test(t));
      return got.length >= w.length;
    }, [re.source, want], { timeout, polling: 100 });
  } catch { /* the comparison below says what is missing */ }
  const got = await msgTexts(page, re);
  eq(JSON.stringify(got), JSON.stringify(want), 'the lines, in order, each once');
}

/** Every /send the page makes, with the browser's own timing: {mid, start,
 *  end, status, retryAfter} (ms; end is when the reply had come). */
function recordSends(page) {
  const sends = [];
  page.on('requestfinished', async (req) => {
    if (!new URL(req.url()).pathname.endsWith('/send')) return;
    const res = await req.response().catch(() => null);
    const t = req.timing();
    sends.push({
      mid: new URLSearchParams(req.postData() || '').get('mid'),
      start: t.startTime,
      end: t.startTime + t.responseEnd,
      status: res ? res.status() : 0,
      retryAfter: res ? res.headers()['retry-after'] ?? null : null,
    });
  });
  return sends;
}

/** The outbox a page keeps for room and nick in localStorage. */
function storedOutbox(page, room, nick) {
  return page.evaluate((k) => JSON.parse(localStorage.getItem(k) || '[]'), `pgchat.outbox:${room}:${nick}`);
}

async function limitsOf() {
  const r = await fetch(`${BASE}limits`);
  return r.json();
}

/* axe-core, run in the page (evaluated through the DevTools protocol, which
 * the page's CSP does not govern); fails on serious or critical findings. */
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
async function axeCheck(page, screen) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
  const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  diag(`axe on ${screen}: ${res.violations.length} findings`
    + (res.violations.length ? ` (${res.violations.map((v) => `${v.id}: ${v.impact}, ${v.nodes.length}`).join('; ')})` : ''));
  for (const v of bad) {
    for (const n of v.nodes.slice(0, 3)) diag(`  ${v.id}: ${n.target.join(' ')}: ${n.failureSummary.split('\n').join(' ')}`);
  }
  eq(bad.length, 0, `serious or critical axe findings on ${screen}`);
}

/*
 * A TCP proxy in front of nginx, for one page: freeze() makes every
 * connection that carries an /events stream silent both ways while leaving
 * it open, as a NAT entry that timed out or a sleeping laptop's path does;
 * the browser hears nothing, not even a reset. The Origin and Host of a
 * request are rewritten to nginx's own, so the responder's same-site check
 * sees the site it serves.
 */
async function startProxy(port) {
  const conns = new Set();
  let mine = '';
  const toNginx = (d) => {
    const s = d.toString('latin1');
    const end = s.indexOf('\r\n\r\n');
    if (end < 0 || !s.includes(mine)) return d;
    return Buffer.from(s.slice(0, end).split(mine).join(`127.0.0.1:${port}`) + s.slice(end), 'latin1');
  };
  const server = net.createServer((client) => {
    const c = { client, upstream: net.connect(port, '127.0.0.1'), stream: false, frozen: false };
    conns.add(c);
    client.on('data', (d) => {
      if (c.frozen) return;
      const head = d.subarray(0, 128).toString('latin1');
      if (/^[A-Z]+ \S+ HTTP\//.test(head)) {
        c.stream = /^GET \S*\/events\?/.test(head);
        c.upstream.write(toNginx(d));
      } else {
        c.upstream.write(d);
      }
    });
    c.upstream.on('data', (d) => { if (!c.frozen) client.write(d); });
    const close = () => { conns.delete(c); client.destroy(); c.upstream.destroy(); };
    client.on('close', close);
    client.on('error', close);
    c.upstream.on('close', () => { if (!c.frozen) close(); });
    c.upstream.on('error', () => { if (!c.frozen) close(); });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  mine = `127.0.0.1:${server.address().port}`;
  return {
    base: `http://127.0.0.1:${server.address().port}/`,
    streams() {
      let n = 0;
      for (const c of conns) if (c.stream) n++;
      return n;
    },
    freeze() {
      let n = 0;
      for (const c of conns) if (c.stream) { c.frozen = true; n++; }
      return n;
    },
    close() {
      for (const c of conns) { c.client.destroy(); c.upstream.destroy(); }
      server.close();
    },
  };
}

function whoList(page) {
  return page.$$eval('#who li', (els) => els.map((e) => e.textContent));
}

async function waitWho(page, want, timeout = T) {
  try {
    await page.waitForFunction((w) => {
      const got = [...document.querySelectorAll('#who li')].map((e) => e.textContent).sort();
      return JSON.stringify(got) === JSON.stringify([...w].sort())
        && document.querySelector('#user-count').textContent === String(w.length);
    }, want, { timeout, polling: 100 });
  } catch {
    throw new Error(`who list never became ${JSON.stringify(want)}: got ${JSON.stringify(await whoList(page))}, `
      + `count ${await text(page, '#user-count')}`);
  }
}

function setHidden(page, hidden) {
  return page.evaluate((h) => {
    if (h) {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    } else {
      delete document.hidden;
      delete document.visibilityState;
    }
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

function atBottom(page) {
  return page.$eval('#log', (l) => l.scrollHeight - l.scrollTop - l.clientHeight <= 48);
}

/* --------------------------------------------------------------- tests */

test('the page loads with the join form, room taken from the URL, status offline', async () => {
  const a = await openUser('alice');
  const b = await openUser('bob');
  for (const u of [a, b]) {
    await u.page.waitForSelector('#join-form', { state: 'visible', timeout: T });
    eq(await u.page.inputValue('#room'), ROOM, 'room field');
    assert(await u.page.isHidden('#chat'), '#chat should be hidden before joining');
    eq(await text(u.page, '#status'), 'offline', '#status');
    eq(await u.page.title(), 'pgchat', 'title');
  }
  await axeCheck(a.page, 'the join screen');
}, { critical: true });

test('invalid nicks are refused inline before anything is sent', async () => {
  const { page } = users.alice;
  for (const bad of ['bad nick', 'x'.repeat(51), 'évé', '']) {
    await page.fill('#nick', bad);
    await page.click('#join-button');
    await page.waitForFunction(() => document.querySelector('#join-error').textContent !== '', null, { timeout: T });
    assert(await page.isHidden('#chat'), `chat shown for nick ${JSON.stringify(bad)}`);
    diag(`${JSON.stringify(bad.length > 12 ? `${bad.slice(0, 8)}…` : bad)}: ${await text(page, '#join-error')}`);
  }
  eq(users.alice.joinPosts, 0, 'POST join requests sent for invalid nicks');
});

test('alice joins: chat, her join line and the who list appear', async () => {
  const a = users.alice;
  await joinAs(a);
  await waitJoined(a);
  eq(await text(a.page, '#join-error'), '', '#join-error after joining');
  await a.page.waitForSelector('#log .line.join', { timeout: T });
  await waitWho(a.page, ['alice']);
  await waitText(a.page, '#status', 'connected');
  eq(await text(a.page, '#room-name'), ROOM, '#room-name');
}, { critical: true });

test('a nick in use is refused with the server error shown inline', async () => {
  const b = users.bob;
  await joinAs(b, 'alice');
  await b.page.waitForFunction(() => /in use/i.test(document.querySelector('#join-error').textContent), null, { timeout: T });
  assert(await b.page.isHidden('#chat'), 'chat shown although the nick is in use');
  diag(`shown: ${await text(b.page, '#join-error')}`);
});

test('bob joins; both see each other in the who list, the user count and the join lines', async () => {
  const a = users.alice; const b = users.bob;
  await joinAs(b);
  await waitJoined(b);
  eq(await text(b.page, '#join-error'), '', '#join-error after joining');
  await waitWho(a.page, ['alice', 'bob']);
  await waitWho(b.page, ['alice', 'bob']);
  const joinLine = (nick) => (page) => page.waitForFunction(
    (n) => [...document.querySelectorAll('#log .line.join .nick')].some((e) => e.textContent === n),
    nick, { timeout: T },
  );
  await joinLine('bob')(a.page);   // live
  await joinLine('alice')(b.page); // from the history
}, { critical: true });

test('the toolbar shows uptime, server memory and status connected', async () => {
  for (const u of [users.alice, users.bob]) {
    await waitText(u.page, '#status', 'connected');
    const up = await text(u.page, '#uptime');
    const rss = await text(u.page, '#rss');
    assert(/^\d+[smhd]/.test(up), `#uptime looks wrong: ${JSON.stringify(up)}`);
    assert(/^\d+(\.\d+)? (B|KiB|MiB|GiB|TiB)$/.test(rss), `#rss looks wrong: ${JSON.stringify(rss)}`);
  }
  diag(`uptime ${await text(users.alice.page, '#uptime')}, rss ${await text(users.alice.page, '#rss')}`);
});

const HELLO = 'Hi bob! Did the long-poll fix land?';

test('a message sent with Enter appears on the other page once, with HH:MM time and nick', async () => {
  const a = users.alice; const b = users.bob;
  await say(a, HELLO);
  eq(await a.page.inputValue('#input'), '', 'sender input after sending');
  await waitMsg(b.page, HELLO);
  const line = await b.page.$$eval('#log .line.msg', (els, want) => {
    const li = els.find((e) => e.querySelector('.text').textContent === want);
    const t = li.querySelector('.time');
    return { time: t.textContent, title: t.getAttribute('title') || '', nick: li.querySelector('.nick').textContent };
  }, HELLO);
  assert(/^([01]\d|2[0-3]):[0-5]\d$/.test(line.time), `time is not HH:MM: ${JSON.stringify(line.time)}`);
  assert(line.title.length > line.time.length, `no full date in the time's title: ${JSON.stringify(line.title)}`);
  eq(line.nick, 'alice', 'nick');
  eq(await countMsg(b.page, HELLO), 1, 'copies on the receiving page');
  await waitMsg(a.page, HELLO);
  eq(await countMsg(a.page, HELLO), 1, 'copies on the sending page');
});

test('the pages read the room over one event stream each: /events with room and since, no long-poll', async () => {
  for (const u of [users.alice, users.bob]) {
    const mine = requests.filter((r) => r.who === u.nick);
    const streams = mine.filter((r) => new URL(r.url).pathname.endsWith('/events'));
    const polls = mine.filter((r) => new URL(r.url).pathname.endsWith('/recv'));
    assert(streams.length >= 1, `${u.nick}: no /events request`);
    eq(polls.length, 0, `${u.nick}: /recv requests (the long-poll fallback)`);
    for (const r of streams) {
      eq([...new URL(r.url).searchParams.keys()].sort().join(','), 'room,since', `query of ${r.url}`);
    }
    // The stream's session is the room's cookie, which scripts cannot read.
    const cookies = await u.context.cookies();
    const c = cookies.find((k) => k.name === `pgchat_${ROOM}`);
    assert(c, `${u.nick}: no pgchat_${ROOM} cookie (have ${cookies.map((k) => k.name).join(', ')})`);
    assert(sessionIds.has(c.value), `${u.nick}: the cookie is not a session id the join gave`);
    eq(c.httpOnly, true, `${u.nick}: cookie HttpOnly`);
    eq(c.sameSite, 'Strict', `${u.nick}: cookie SameSite`);
    eq(await u.page.evaluate(() => document.cookie.includes('pgchat_')), false, `${u.nick}: cookie visible to scripts`);
  }
});

const MULTI = 'Yes, it landed:\n- recv follows gap and ping replies\n- back-off with jitter on errors';

test('Shift+Enter makes a new line; blank input is not sent', async () => {
  const b = users.bob;
  await b.page.fill('#input', '   ');
  await b.page.press('#input', 'Enter');
  await b.page.focus('#input');
  await b.page.fill('#input', '');
  const lines = MULTI.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (i) await b.page.keyboard.press('Shift+Enter');
    await b.page.keyboard.type(lines[i]);
  }
  eq(await b.page.inputValue('#input'), MULTI, 'textarea after Shift+Enter');
  await b.page.keyboard.press('Enter');
  await waitMsg(users.alice.page, MULTI);
  eq(await countMsg(users.alice.page, MULTI), 1, 'copies');
  const blank = await users.alice.page.$$eval('#log .line.msg .text', (els) => els.filter((e) => !e.textContent.trim()).length);
  eq(blank, 0, 'blank messages in the log');
});

const LINKMSG = 'Details in https://example.org/pgchat/notes?a=1&b=2 (thanks alice).';
const MENTION = 'alice, can you review the nginx config next?';

test('mentions are highlighted and URLs become safe links that open in a new tab', async () => {
  const a = users.alice; const b = users.bob;
  await say(b, LINKMSG);
  await say(b, MENTION);
  await waitMsg(a.page, MENTION);
  const info = await a.page.$$eval('#log .line.msg', (els, [l, m]) => {
    const find = (t) => els.find((e) => e.querySelector('.text').textContent === t);
    const link = find(l).querySelector('a');
    return {
      mention: find(m).classList.contains('mention'),
      linkMention: find(l).classList.contains('mention'),
      href: link && link.getAttribute('href'),
      target: link && link.getAttribute('target'),
      rel: link && link.getAttribute('rel'),
      linkText: link && link.textContent,
    };
  }, [LINKMSG, MENTION]);
  assert(info.mention, 'line mentioning alice is not .mention on her page');
  assert(info.linkMention, 'line containing "alice" inside a longer text is not .mention');
  eq(info.href, 'https://example.org/pgchat/notes?a=1&b=2', 'link href');
  eq(info.linkText, 'https://example.org/pgchat/notes?a=1&b=2', 'link text');
  eq(info.target, '_blank', 'link target');
  eq(info.rel, 'noopener noreferrer', 'link rel');
});

test('screenshot of the chat is written to PGCHAT_OUT/chat.png', async () => {
  const a = users.alice;
  await say(a, 'Looks good. Restarting the responder no longer loses messages?');
  await say(users.bob, 'Right — the client resumes from the last timestamp, no duplicates.');
  await waitMsg(a.page, 'Right — the client resumes from the last timestamp, no duplicates.');
  await a.page.mouse.move(0, 0);
  fs.mkdirSync(OUT, { recursive: true });
  const file = path.join(OUT, 'chat.png');
  await a.page.screenshot({ path: file });
  assert(fs.statSync(file).size > 5000, 'screenshot suspiciously small');
  await axeCheck(a.page, 'the chat');
  diag(`wrote ${file}`);
  if (DOCS) {
    fs.mkdirSync(path.dirname(DOCS), { recursive: true });
    fs.copyFileSync(file, DOCS);
    diag(`copied to ${DOCS}`);
  }
});

// On bob's page alice's hello ("Hi bob!") is a mention; bob's own lines never are.
test('on bob\'s page only lines from others that contain "bob" are highlighted', async () => {
  const b = users.bob;
  const marked = await b.page.$$eval('#log .line.mention .text', (els) => els.map((e) => e.textContent));
  assert(marked.length >= 1 && marked.every((t) => t.toLowerCase().includes('bob')), `mention lines: ${JSON.stringify(marked)}`);
  const ownMarked = await b.page.$$eval('#log .line.mention .nick', (els) => els.filter((e) => e.textContent === 'bob').length);
  eq(ownMarked, 0, 'own lines marked as mention');
});

test('unread count in the title while the tab is hidden: (2) pgchat, cleared when visible', async () => {
  const a = users.alice; const b = users.bob;
  eq(await a.page.title(), 'pgchat', 'title before');
  await setHidden(a.page, true);
  await say(b, 'ping one');
  await say(b, 'ping two');
  await waitMsg(a.page, 'ping two');
  try {
    await a.page.waitForFunction(() => document.title === '(2) pgchat', null, { timeout: T });
  } catch {
    throw new Error(`title while hidden: ${JSON.stringify(await a.page.title())}`);
  }
  await setHidden(a.page, false);
  await a.page.waitForFunction(() => document.title === 'pgchat', null, { timeout: T });
});

const XSS_IMG = '<img src=x onerror=alert(1)>';
const XSS_LINK = 'http://x/"onmouseover="alert(1)"style="position:fixed;top:0;left:0;width:100%;height:100%"';

test('HTML and the node_chat link XSS payload render as inert text/links', async () => {
  const a = users.alice; const b = users.bob;
  await say(a, XSS_IMG);
  await say(a, XSS_LINK);
  for (const u of [a, b]) {
    await waitMsg(u.page, XSS_LINK);
    await waitMsg(u.page, XSS_IMG);
    const r = await u.page.$eval('#log', (log) => {
      const all = [...log.querySelectorAll('*')];
      return {
        onAttrs: all.flatMap((e) => [...e.attributes].map((x) => x.name).filter((n) => /^on/i.test(n))),
        styled: all.filter((e) => e.hasAttribute('style')).length,
        imgs: log.querySelectorAll('img').length,
        hrefs: [...log.querySelectorAll('a')].map((x) => x.getAttribute('href')),
      };
    });
    eq(r.onAttrs.length, 0, `on* attributes in #log (${u.nick})`);
    eq(r.styled, 0, `elements with a style attribute in #log (${u.nick})`);
    eq(r.imgs, 0, `img elements in #log (${u.nick})`);
    for (const h of r.hrefs) assert(/^https?:\/\//.test(h), `bad href ${JSON.stringify(h)}`);
    // hover the payload link: an injected onmouseover would fire now
    const link = await u.page.$$('#log .line.msg a[href^="http://x/"]');
    assert(link.length > 0, `${u.nick}: the payload link was not rendered as a link, nothing to hover`);
    await link[link.length - 1].hover();
    await u.page.mouse.move(500, 300);
  }
  await a.page.waitForTimeout(300);
  eq(a.dialogs + b.dialogs, 0, 'dialogs fired');
});

const SCHEMES = ['javascript:alert(1)', 'JaVaScRiPt:alert(document.domain)', 'data:text/html,<script>alert(1)</script>',
  'vbscript:msgbox(1)', 'see javascript://%0aalert(1) there'];

test('javascript:, data: and vbscript: URLs render as plain text, never as links', async () => {
  const a = users.alice; const b = users.bob;
  for (const t of SCHEMES) await say(a, t);
  for (const u of [a, b]) {
    for (const t of SCHEMES) await waitMsg(u.page, t);
    const r = await u.page.$$eval('#log .line.msg .text', (els, want) => els
      .filter((e) => want.includes(e.textContent))
      .map((e) => ({ text: e.textContent, links: e.querySelectorAll('a').length, kids: e.children.length })), SCHEMES);
    eq(r.length, SCHEMES.length, `${u.nick}: lines with the scheme URLs`);
    for (const x of r) eq(x.kids, 0, `${u.nick}: elements inside ${JSON.stringify(x.text)}`);
    const hrefs = await u.page.$$eval('#log a', (as) => as.map((x) => x.getAttribute('href')));
    for (const h of hrefs) assert(/^https?:\/\//.test(h), `${u.nick}: a link to ${JSON.stringify(h)}`);
  }
});

test('every nick and message text is a bidi island (unicode-bidi: isolate)', async () => {
  const { page } = users.bob;
  const bad = await page.$$eval('#log .line .nick, #log .line .text, #who li',
    (els) => els.map((e) => getComputedStyle(e).unicodeBidi).filter((v) => v !== 'isolate'));
  const n = await page.$$eval('#log .line .nick, #log .line .text, #who li', (els) => els.length);
  assert(n > 4, `only ${n} nicks and texts to check`);
  eq(bad.length, 0, `elements not isolated (${JSON.stringify(bad.slice(0, 3))})`);
});

test('a malformed hash (#%E0) falls back to the default room, without errors', async () => {
  const context = await browser.newContext({ viewport: VIEW, deviceScaleFactor: 1 });
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const joins = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname.endsWith('/join')) joins.push(r.postData() || '');
    });
    await page.goto(`${BASE}#%E0`, { waitUntil: 'load', timeout: T });
    await page.waitForSelector('#join-form', { state: 'visible', timeout: T });
    eq(await page.inputValue('#room'), '', 'room in the join form (empty: the default)');
    await page.fill('#nick', 'hashy');
    await page.click('#join-button');
    await page.waitForSelector('#chat', { state: 'visible', timeout: T });
    eq(joins.length, 1, 'join requests');
    eq(new URLSearchParams(joins[0]).get('room'), 'lobby', 'room joined');
    await page.click('#leave');
    await page.waitForSelector('#join-form', { state: 'visible', timeout: T });
    eq(errors.length, 0, `page errors (${errors.join('; ')})`);
  } finally {
    await context.close();
  }
});

test('new lines while scrolled up show #new-messages; at the bottom it auto-scrolls', async () => {
  const a = users.alice; const b = users.bob;
  const tall = Array.from({ length: 30 }, (_, i) => `line ${i + 1} of a long paste`).join('\n');
  await say(a, tall);
  await waitMsg(b.page, tall);
  assert(await atBottom(b.page), 'bob was at the bottom but did not follow the new lines');
  await b.page.$eval('#log', (l) => { l.scrollTop = 0; l.dispatchEvent(new Event('scroll')); });
  assert(!(await atBottom(b.page)), 'log is not scrollable');
  await say(a, 'one more below');
  await waitMsg(b.page, 'one more below');
  await b.page.waitForSelector('#new-messages', { state: 'visible', timeout: T });
  assert(!(await atBottom(b.page)), 'page jumped to the bottom while bob was reading');
  await b.page.click('#new-messages');
  await b.page.waitForSelector('#new-messages', { state: 'hidden', timeout: T });
  assert(await atBottom(b.page), 'not at the bottom after clicking #new-messages');
});

test('at 375 px wide: no horizontal overflow, who list collapses behind a toggle', async () => {
  const { page } = users.bob;
  await page.setViewportSize({ width: 375, height: 667 });
  try {
    const url = 'https://example.org/a/very/long/url/without/any/spaces/that/must/wrap/somewhere/inside/the/narrow/viewport/0123456789abcdef';
    await say(users.alice, url);
    await waitMsg(page, url);
    assert(await atBottom(page), 'did not stay at the bottom after the resize');
    const w = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    assert(w[0] <= w[1], `page is ${w[0]} px wide in a ${w[1]} px viewport`);
    assert(await page.isHidden('#who'), 'who list still shown at 375 px');
    assert(await page.isVisible('#input'), '#input not visible');
    assert(await page.isVisible('#status'), '#status not visible');
    fs.mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'chat-375.png') });
    await page.click('#who-toggle');
    await page.waitForSelector('#who', { state: 'visible', timeout: T });
    const inside = await page.$eval('#who-panel', (e) => e.getBoundingClientRect().right <= innerWidth + 1);
    assert(inside, 'who panel sticks out of the viewport');
    await page.screenshot({ path: path.join(OUT, 'chat-375-who.png') });
    await page.keyboard.press('Escape');
    await page.waitForSelector('#who', { state: 'hidden', timeout: T });
  } finally {
    await page.setViewportSize(VIEW);
  }
});

test('a log that shrinks while following still follows the next line (without ResizeObserver)', async () => {
  // Without the observer nothing scrolls on the resize itself, so the line
  // that comes next is the first to see the log off its bottom: as in the
  // moment between a resize and the observer's callback.
  const r = await openUser('rosa', ROOM, (page) => page.addInitScript(() => {
    Object.defineProperty(window, 'ResizeObserver', { value: undefined });
  }));
  try {
    await joinAs(r);
    await waitJoined(r);
    const tall = Array.from({ length: 30 }, (_, i) => `row ${i + 1} before the shrink`).join('\n');
    await say(users.alice, tall);
    await waitMsg(r.page, tall);
    assert(await atBottom(r.page), 'rosa is not at the bottom before the shrink');
    await r.page.setViewportSize({ width: VIEW.width, height: 360 });
    assert(!(await atBottom(r.page)), 'the shrink left the log at its bottom: nothing is tested');
    await say(users.alice, 'the first line after the shrink');
    await waitMsg(r.page, 'the first line after the shrink');
    assert(await atBottom(r.page), 'the log stayed above its bottom after the shrink');
    assert(await r.page.isHidden('#new-messages'), '#new-messages shown to a reader who never scrolled');
    await r.page.click('#leave'); // the room's who list is the next tests' again
    await r.page.waitForSelector('#join-form', { state: 'visible', timeout: T });
  } finally {
    await r.context.close();
  }
});

test('an over-long message is refused inline and stays in the input', async () => {
  const b = users.bob;
  const long = 'é'.repeat(2049); // 4098 bytes of UTF-8
  await b.page.fill('#input', long);
  await b.page.press('#input', 'Enter');
  await b.page.waitForFunction(() => /too long/i.test(document.querySelector('#send-error').textContent), null, { timeout: T });
  eq((await b.page.inputValue('#input')).length, long.length, 'input length after refusal');
  await b.page.fill('#input', '');
});

/* ------------------------------------------- the outbox (issue 19) */

const FAST = `fast-${Math.random().toString(36).slice(2, 8)}`;
const FAST_N = 40;

test('40 messages typed as fast as Enter goes, at a low send rate: all arrive, in order, exactly once, with no red error', async () => {
  const h = await openUser('hana', FAST);
  const v = await openUser('ivan', FAST);
  for (const u of [h, v]) {
    await joinAs(u);
    await waitJoined(u);
  }
  await waitWho(h.page, ['hana', 'ivan']);
  await waitText(h.page, '#status', 'connected');
  h.sends = recordSends(h.page);
  // Any text #send-error ever shows, and any li.refused, from now on.
  await h.page.evaluate(() => {
    window.redSeen = [];
    const err = document.querySelector('#send-error');
    new MutationObserver(() => { if (err.textContent) window.redSeen.push(err.textContent); })
      .observe(err, { childList: true, characterData: true, subtree: true });
    new MutationObserver(() => {
      if (document.querySelector('#log li.refused')) window.redSeen.push('li.refused');
    }).observe(document.querySelector('#log'), { childList: true, attributes: true, subtree: true });
  });
  const want = Array.from({ length: FAST_N }, (_, i) => `${FAST} ${i + 1}`);
  const t0 = Date.now();
  await typeFast(h, want);
  const typed = Date.now() - t0;
  // The rate limit holds the queue: quietly, with a count.
  await h.page.waitForSelector('#outbox-status[data-state="waiting"]', { timeout: T });
  const status = await text(h.page, '#outbox-status');
  assert(/^\d+ messages? queued — waiting for the rate limit/.test(status), `#outbox-status: ${JSON.stringify(status)}`);
  assert(await h.page.$('#log li.pending.waiting'), 'no pending line shows the wait');
  const re = new RegExp(`^${FAST} \\d+$`);
  await waitTexts(v.page, re, want);
  const delivered = Date.now() - t0;
  await waitTexts(h.page, re, want);
  await h.page.waitForFunction(() => !document.querySelector('#log li.pending'), null, { timeout: T });
  eq(await text(h.page, '#outbox-status'), '', '#outbox-status once all are delivered');
  eq(JSON.stringify(await h.page.evaluate(() => window.redSeen)), '[]', 'errors shown while sending');
  eq((await storedOutbox(h.page, FAST, 'hana')).length, 0, 'messages left in the stored outbox');

  // Each 429 was waited out for its Retry-After, then the same mid sent again.
  const sends = h.sends.slice().sort((a, b) => a.start - b.start);
  const limited = sends.filter((x) => x.status === 429);
  assert(limited.length >= 5, `only ${limited.length} sends met the rate limit: the test proves nothing`);
  const waits = [];
  for (const x of limited) {
    assert(x.retryAfter !== null, 'a 429 without Retry-After');
    const next = sends.find((y) => y.start > x.start);
    assert(next, 'a 429 was the last send');
    eq(next.mid, x.mid, 'the send after a 429');
    const waited = next.start - x.end;
    assert(waited >= Number(x.retryAfter) * 1000 - 5, `resent ${waited.toFixed(0)} ms after a Retry-After of ${x.retryAfter} s`);
    waits.push(waited);
  }
  const mids = sends.filter((x) => x.status === 200).map((x) => x.mid);
  eq(new Set(mids).size, FAST_N, 'distinct mids answered 200');
  eq(mids.length, FAST_N, 'sends answered 200');
  waits.sort((a, b) => a - b);
  diag(`typed ${FAST_N} in ${typed} ms; all delivered ${delivered} ms after the first; ${sends.length} sends, `
    + `${limited.length} answered 429 (Retry-After ${limited[0].retryAfter} s), waited ${waits[0].toFixed(0)}..`
    + `${waits[waits.length - 1].toFixed(0)} ms (median ${waits[waits.length >> 1].toFixed(0)})`);
});

const BAD1 = 'a bell \u0007 rings';
const BAD2 = 'turned \u202e around';

test('a message refused with 400 stays where it was typed, with its reason, Edit and Delete; nothing else vanishes', async () => {
  const h = users.hana; const v = users.ivan;
  await typeFast(h, ['before the refusals', BAD1, 'between the refusals', BAD2, 'after the refusals']);
  const re = /^(before|between|after) the refusals$|^fixed bell$/;
  await waitTexts(v.page, re, ['before the refusals', 'between the refusals', 'after the refusals']);
  await h.page.waitForFunction(() => document.querySelectorAll('#log li.refused').length === 2
    && !document.querySelector('#log li.pending'), null, { timeout: T });
  // In the log where typed: each refused line between its neighbours.
  const rows = await h.page.$$eval('#log > li', (els) => els
    .filter((e) => e.classList.contains('refused') || /refusals$/.test(e.querySelector('.text')?.textContent || ''))
    .map((e) => (e.classList.contains('refused') ? `refused: ${e.querySelector('.text').textContent}` : e.querySelector('.text').textContent)));
  eq(JSON.stringify(rows), JSON.stringify(['before the refusals', `refused: ${BAD1}`, 'between the refusals',
    `refused: ${BAD2}`, 'after the refusals']), 'the rows in the log');
  const notes = await h.page.$$eval('#log li.refused .note', (els) => els.map((e) => e.textContent));
  for (const n of notes) assert(/^Not sent: Message has control characters/.test(n), `the reason shown: ${JSON.stringify(n)}`);
  for (const b of ['edit', 'delete']) {
    eq(await h.page.$$eval(`#log li.refused button.${b}`, (els) => els.length), 2, `${b} buttons`);
  }
  eq(await text(h.page, '#send-error'), '', '#send-error (the reason is on the line)');
  eq((await storedOutbox(h.page, FAST, 'hana')).length, 2, 'refused messages kept in the stored outbox');
  await h.page.screenshot({ path: path.join(OUT, 'refused.png') });
  await axeCheck(h.page, 'the not-sent state');

  // Edit: back into the input, the line gone; sent again once fixed.
  await h.page.locator('#log li.refused button.edit').first().click();
  eq(await h.page.inputValue('#input'), BAD1, 'the input after Edit');
  eq(await h.page.evaluate(() => document.activeElement.id), 'input', 'focus after Edit');
  eq(await h.page.$$eval('#log li.refused', (els) => els.length), 1, 'refused lines after Edit');
  await h.page.fill('#input', 'fixed bell');
  await h.page.press('#input', 'Enter');
  await waitTexts(v.page, re, ['before the refusals', 'between the refusals', 'after the refusals', 'fixed bell']);
  // Delete: the line goes, nothing else.
  await h.page.click('#log li.refused button.delete');
  eq(await h.page.$$eval('#log li.refused', (els) => els.length), 0, 'refused lines after Delete');
  await waitTexts(h.page, re, ['before the refusals', 'between the refusals', 'after the refusals', 'fixed bell']);
  eq((await storedOutbox(h.page, FAST, 'hana')).length, 0, 'the stored outbox after Edit and Delete');
});

test('a reload with messages still queued: the next load of the room sends them, each exactly once, in order', async () => {
  const h = users.hana; const v = users.ivan;
  const tag = `reload-${Math.random().toString(36).slice(2, 8)}`;
  const want = Array.from({ length: 30 }, (_, i) => `${tag} ${i + 1}`);
  const before = [];
  h.page.on('request', (r) => {
    if (new URL(r.url()).pathname.endsWith('/send')) before.push(new URLSearchParams(r.postData() || '').get('mid'));
  });
  // What the page holds as it goes, kept where the reload keeps it.
  await h.page.evaluate((k) => addEventListener('pagehide', () => {
    sessionStorage.setItem('outboxAtUnload', localStorage.getItem(k) || '[]');
  }), `pgchat.outbox:${FAST}:hana`);
  await typeFast(h, want);
  const t0 = Date.now();
  await h.page.reload({ waitUntil: 'load', timeout: T });
  const sentBefore = before.length;
  const queued = JSON.parse(await h.page.evaluate(() => sessionStorage.getItem('outboxAtUnload')));
  assert(queued.length >= 10, `only ${queued.length} messages queued at the reload`);
  const after = recordSends(h.page);
  // The old page parted on pagehide; until the server has that, the nick is in use.
  const deadline = Date.now() + T;
  for (;;) {
    await joinAs(h);
    const r = await Promise.race([
      h.page.waitForSelector('#chat', { state: 'visible', timeout: T }).then(() => 'in'),
      h.page.waitForFunction(() => /in use/i.test(document.querySelector('#join-error').textContent), null,
        { timeout: T }).then(() => 'busy'),
    ]);
    if (r === 'in') break;
    assert(Date.now() < deadline, 'the nick stayed in use after the reload');
    await h.page.waitForTimeout(200);
  }
  const re = new RegExp(`^${tag} \\d+$`);
  await waitTexts(v.page, re, want);
  const drained = Date.now() - t0;
  await waitTexts(h.page, re, want);
  await h.page.waitForFunction(() => !document.querySelector('#log li.pending'), null, { timeout: T });
  const stored = new Set(queued.map((q) => q.mid));
  const resent = after.filter((x) => x.status === 200).map((x) => x.mid);
  eq(resent.filter((m) => !stored.has(m)).length, 0, 'sends after the reload of mids not stored before it');
  eq(new Set(resent).size, queued.length, 'messages sent after the reload');
  eq((await storedOutbox(h.page, FAST, 'hana')).length, 0, 'the stored outbox once all are in');
  diag(`${queued.length} of 30 queued at the reload (${sentBefore} sends before it); all in ${drained} ms after it`);
});

test('a message typed over a day ago waits for the user\'s word before it is sent again', async () => {
  const h = users.hana; const v = users.ivan;
  const old = `typed yesterday ${Math.random().toString(36).slice(2, 8)}`;
  const mid = 'c0ffee'.repeat(5);
  await h.page.click('#leave');
  await h.page.waitForSelector('#join-form', { state: 'visible', timeout: T });
  await h.page.evaluate(([k, item]) => localStorage.setItem(k, JSON.stringify([item])),
    [`pgchat.outbox:${FAST}:hana`, { mid, text: old, at: Date.now() - 25 * 3600 * 1000 }]);
  const sends = recordSends(h.page);
  await joinAs(h);
  await waitJoined(h);
  await h.page.waitForSelector('#outbox-status[data-state="held"]', { timeout: T });
  await h.page.waitForSelector('#log li.pending.held button.resend', { timeout: T });
  assert(/Send it again\?$/.test(await text(h.page, '#log li.pending.held .note')), 'the question');
  await typeFast(h, ['typed after the old one']);
  eq(sends.filter((x) => x.mid === mid).length, 0, 'sends of the old message before the answer');
  await h.page.click('#log li.pending.held button.resend');
  const re = new RegExp(`^${old}$|^typed after the old one$`);
  await waitTexts(v.page, re, [old, 'typed after the old one']);
  await h.page.waitForFunction(() => !document.querySelector('#log li.pending'), null, { timeout: T });
});

test('a stream that goes silent after it opened is noticed within two pings and reopened from the cursor', async () => {
  const proxy = await startProxy(Number(new URL(BASE).port));
  const { recv_timeout: rt } = await limitsOf();
  try {
    const j = await openUser('jack', FAST, null, proxy.base);
    const streams = [];
    j.page.on('request', (r) => { if (new URL(r.url()).pathname.endsWith('/events')) streams.push(Date.now()); });
    await joinAs(j);
    await waitJoined(j);
    await waitText(j.page, '#status', 'connected');
    await waitWho(j.page, ['hana', 'ivan', 'jack']);
    const n0 = streams.length;
    assert(n0 >= 1, 'no stream opened');
    // The page's one stream, through the proxy (not one still closing).
    const open = Date.now() + T;
    while (proxy.streams() !== 1 && Date.now() < open) await j.page.waitForTimeout(50);
    const t0 = Date.now();
    eq(proxy.freeze(), 1, 'streams frozen');
    const during = [`during the silence 1 ${t0}`, `during the silence 2 ${t0}`];
    for (const t of during) await say(users.ivan, t);
    await j.page.waitForFunction(() => true); // the page itself is fine
    const deadline = Date.now() + 45000;
    while (streams.length === n0 && Date.now() < deadline) await j.page.waitForTimeout(100);
    assert(streams.length > n0, 'the silent stream was never reopened');
    const detected = streams[n0] - t0;
    const re = /^during the silence \d /;
    await waitTexts(j.page, re, during, T);
    diag(`recv_timeout ${rt} s: the silent stream was reopened ${detected} ms after it went silent`);
    assert(detected <= 2 * rt * 1000 + 3000, `noticed after ${detected} ms, more than two pings (${2 * rt} s)`);
    await j.page.goto('about:blank');
    await j.context.close();
  } finally {
    proxy.close();
  }
});

const OUTAGE = 'typed while the server was down';
const AFTER = `after the restart ${Math.random().toString(36).slice(2, 8)}`;

test('responder down: status says reconnecting; a message typed now shows as pending, retrying by itself', async () => {
  const a = users.alice; const b = users.bob;
  await ctl('responder-stop');
  await waitText(a.page, '#status', 'reconnecting');
  await waitText(b.page, '#status', 'reconnecting');
  await b.page.fill('#input', OUTAGE);
  await b.page.press('#input', 'Enter');
  await b.page.waitForSelector('#log li.pending.retrying', { timeout: T });
  eq(await b.page.$eval('#log li.pending .text', (e) => e.textContent), OUTAGE, 'the pending line');
  eq(await b.page.$eval('#log li.pending', (e) => e.dataset.mid.length), 32, 'its mid (128 bits of hex)');
  eq(await b.page.inputValue('#input'), '', 'the input is free again');
  eq(await text(b.page, '#send-error'), '', '#send-error: nothing for the user to do');
  eq(await countMsg(b.page, OUTAGE), 0, 'no .line for it before the server has it');
  // Enough time for several attempts (back-off from 1 s): each is the same mid.
  await b.page.waitForTimeout(2500);
}, { critical: true });

test('responder back: both pages reconnect by themselves', async () => {
  await ctl('responder-start');
  const t0 = Date.now();
  await waitText(users.alice.page, '#status', 'connected', T_RECOVER);
  await waitText(users.bob.page, '#status', 'connected', T_RECOVER);
  diag(`reconnected after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await waitWho(users.alice.page, ['alice', 'bob']);
  await waitWho(users.bob.page, ['alice', 'bob']);
});

test('after the restart: the message typed during the outage arrives exactly once, by itself', async () => {
  const a = users.alice; const b = users.bob;
  await waitMsg(a.page, OUTAGE, T_RECOVER);
  await waitMsg(b.page, OUTAGE, T_RECOVER);
  await b.page.waitForFunction(() => !document.querySelector('#log li.pending'), null, { timeout: T });
  const sends = requests.filter((r) => r.who === 'bob' && new URL(r.url).pathname.endsWith('/send'));
  diag(`bob's page sent ${sends.length} /send requests in all`);
  await say(b, AFTER);
  await waitMsg(a.page, AFTER);
  await say(a, 'marker after the restart');
  await waitMsg(a.page, 'marker after the restart');
  await waitMsg(b.page, 'marker after the restart');
  for (const u of [a, b]) {
    eq(await countMsg(u.page, AFTER), 1, `copies of the post-restart message (${u.nick})`);
    eq(await countMsg(u.page, OUTAGE), 1, `copies of the message typed during the outage (${u.nick})`);
  }
});

test('no message is shown twice (timestamps in #log are unique and increasing)', async () => {
  for (const u of [users.alice, users.bob]) {
    const ts = await u.page.$$eval('#log .line', (els) => els.map((e) => Number(e.dataset.ts)));
    assert(ts.length > 10, `only ${ts.length} lines`);
    for (let i = 1; i < ts.length; i++) {
      assert(ts[i] > ts[i - 1], `${u.nick}: line ${i} has timestamp ${ts[i]} after ${ts[i - 1]}`);
    }
  }
});

test('scrollback: a room of 1,000 messages scrolls back to its first, keeping the position, and stops there', async () => {
  const room = `deep-${Math.random().toString(36).slice(2, 8)}`;
  await ctl(`fill ${room} 1000`);
  const d = await openUser('dora', room);
  await joinAs(d);
  await waitJoined(d);
  await waitMsg(d.page, 'history 1000');
  const shown = await d.page.$$eval('#log .line.msg', (els) => els.length);
  assert(shown <= 50, `the first screen holds the newest page only, not ${shown} messages`);
  let loads = 0;
  for (; loads < 60; loads++) {
    if (await d.page.$('#log li.notice.start')) break;
    // Jump to the top and note where the first line is then, before the
    // page above it has come.
    const before = await d.page.$eval('#log', (log) => {
      const first = log.querySelector(':scope > li.line');
      log.scrollTop = 0;
      return { ts: first.dataset.ts, top: first.getBoundingClientRect().top };
    });
    await d.page.waitForFunction((ts) => document.querySelector('#log > li.line').dataset.ts !== ts,
      before.ts, { timeout: T, polling: 50 });
    const top = await d.page.$eval('#log', (log, ts) => log.querySelector(`li.line[data-ts="${ts}"]`)
      .getBoundingClientRect().top, before.ts);
    assert(Math.abs(top - before.top) <= 2, `load ${loads + 1} moved the line on screen from ${before.top} to ${top}`);
  }
  assert(loads >= 15, `1,000 messages came in only ${loads} loads`);
  const texts = await d.page.$$eval('#log .line.msg .text', (els) => els.map((e) => e.textContent));
  eq(texts.length, 1000, 'messages in the log after scrolling back');
  eq(texts[0], 'history 1', 'the first line is the first message');
  for (let i = 0; i < texts.length; i++) {
    if (texts[i] !== `history ${i + 1}`) throw new Error(`line ${i} is ${JSON.stringify(texts[i])}`);
  }
  const ts = await d.page.$$eval('#log .line', (els) => els.map((e) => Number(e.dataset.ts)));
  for (let i = 1; i < ts.length; i++) assert(ts[i] > ts[i - 1], `line ${i} out of order`);
  eq(await d.page.$eval('#log > li:first-child', (e) => e.className), 'notice start', 'the log starts with the notice');
  // At the beginning, scrolling up asks for nothing more.
  const n = requests.filter((r) => r.who === 'dora' && /\/history\?/.test(r.url)).length;
  await d.page.$eval('#log', (log) => { log.scrollTop = 1; log.scrollTop = 0; });
  await d.page.waitForTimeout(500);
  eq(requests.filter((r) => r.who === 'dora' && /\/history\?/.test(r.url)).length, n, 'history requests after the beginning');
  diag(`scrolled back through 1,000 messages in ${loads} loads`);
  await d.page.screenshot({ path: path.join(OUT, 'scrollback.png') });
  await d.context.close();
});

test('search: finds a message, marks the match in a <mark> text node, and a click shows it in the log', async () => {
  const room = `find-${Math.random().toString(36).slice(2, 8)}`;
  await ctl(`fill ${room} 1000`);
  const e = await openUser('erin', room);
  await joinAs(e);
  await waitJoined(e);
  await waitMsg(e.page, 'history 1000');
  await say(e, 'a zebra <b>crossing</b> here');
  await waitMsg(e.page, 'a zebra <b>crossing</b> here');

  // A word typed into the box, Enter: the message newest first, the word marked.
  await e.page.fill('#search-input', 'Zebra');
  await e.page.press('#search-input', 'Enter');
  await e.page.waitForSelector('#search-results li.result', { timeout: T });
  eq(await e.page.$$eval('#search-results li.result', (els) => els.length), 1, 'results for "Zebra"');
  eq(await text(e.page, '#search-results .result .text'), 'a zebra <b>crossing</b> here', 'the result\'s text');
  const marks = await e.page.$$eval('#search-results .result .text mark', (els) => els.map((m) => ({
    text: m.textContent, nodes: [...m.childNodes].map((n) => n.nodeType),
  })));
  eq(JSON.stringify(marks), JSON.stringify([{ text: 'zebra', nodes: [3] }]), 'the match marked, one text node');
  eq(await e.page.$$eval('#search-results .result .text b', (els) => els.length), 0, 'markup in a message stays text');

  // A phrase deep in the scrollback: the click loads pages back to it.
  await e.page.fill('#search-input', '"history 37" -zebra');
  await e.page.waitForFunction(() => document.querySelector('#search-results .result .text')?.textContent === 'history 37',
    null, { timeout: T, polling: 50 });
  eq(await e.page.$$eval('#search-results .result', (els) => els.length), 1, 'a phrase finds one message');
  eq(await e.page.$$eval('#search-results .result .text mark', (els) => els.map((m) => m.textContent).join(',')),
    'history,37', 'both words of the phrase marked, not the excluded one');
  eq(await text(e.page, '#search-status'), '1 match.', '#search-status');
  eq(await countMsg(e.page, 'history 37'), 0, 'copies of history 37 in the log before the click');
  const ts = await e.page.$eval('#search-results .result-button', (b) => b.dataset.ts);
  await e.page.click('#search-results .result-button');
  await e.page.waitForSelector(`#log li.line.found[data-ts="${ts}"]`, { timeout: T });
  eq(await e.page.$eval('#log li.line.found .text', (t) => t.textContent), 'history 37', 'the line found');
  eq(await e.page.$$eval('#log li.found', (els) => els.length), 1, 'one line is marked found');
  await e.page.waitForFunction(() => {
    const log = document.querySelector('#log').getBoundingClientRect();
    const r = document.querySelector('#log li.found').getBoundingClientRect();
    return r.top >= log.top && r.bottom <= log.bottom;
  }, null, { timeout: T, polling: 50 });
  const lines = await e.page.$$eval('#log .line.msg .text', (els) => els.map((t) => t.textContent));
  eq(lines.filter((t) => t === 'history 37').length, 1, 'the line is in the log once');
  const at = lines.indexOf('history 37');
  eq(lines.slice(at, at + 3).join('|'), 'history 37|history 38|history 39', 'the scrollback around it is in order');
  const n = requests.filter((r) => r.who === 'erin' && /\/history\?/.test(r.url)).length;
  diag(`jumped 963 messages back with ${n} /history requests`);
  await e.page.mouse.move(0, 0);
  const shot = path.join(OUT, 'search.png');
  await e.page.screenshot({ path: shot });
  if (DOCS) fs.copyFileSync(shot, path.join(path.dirname(DOCS), 'search.png'));
  await axeCheck(e.page, 'search results');

  await e.page.fill('#search-input', 'nothing-like-it');
  await e.page.press('#search-input', 'Enter');
  await waitText(e.page, '#search-status', 'No messages found.');
  await e.context.close();
});

test('where /events fails, the client falls back to long-poll (/recv, the id in X-Pgchat-Id) and chats as before', async () => {
  let refused = 0;
  let holdRecv = false;
  const held = [];
  // A proxy that refuses streams: every /events request fails on the wire;
  // and, when asked, one that swallows a /recv and never answers it.
  const f = await openUser('fran', ROOM, (page) => Promise.all([
    page.route((url) => url.pathname.endsWith('/events'), (route) => { refused++; route.abort(); }),
    page.route((url) => url.pathname.endsWith('/recv'), (route) => {
      if (holdRecv) {
        holdRecv = false;
        held.push(Date.now());
        return; // never answered: the page must give up on it
      }
      route.continue().catch(() => {});
    }),
  ]));
  const { page, context } = f;
  await joinAs(f);
  await waitJoined(f);
  await waitWho(page, ['alice', 'bob', 'fran']);
  await waitText(page, '#status', 'connected');
  const fromAlice = `over the stream to a long-poller ${Math.random().toString(36).slice(2, 8)}`;
  await say(users.alice, fromAlice);
  await waitMsg(page, fromAlice);
  const fromFran = `from long-poll to the stream ${Math.random().toString(36).slice(2, 8)}`;
  await say(f, fromFran);
  await waitMsg(users.alice.page, fromFran);
  await waitMsg(users.bob.page, fromFran);
  eq(await countMsg(page, fromAlice), 1, 'copies on the long-polling page');
  eq(await countMsg(users.alice.page, fromFran), 1, 'copies on a streaming page');
  const mine = requests.filter((r) => r.who === 'fran');
  const polls = mine.filter((r) => new URL(r.url).pathname.endsWith('/recv'));
  assert(refused >= 1, 'the page never tried /events');
  eq(refused, 1, '/events attempts: one, then long-poll for good');
  assert(polls.length >= 2, `only ${polls.length} /recv requests`);
  assert(polls.every((r) => r.idHeader && sessionIds.has(r.idHeader)), 'a /recv without the id in X-Pgchat-Id');

  // A /recv that hangs is given up after recv_timeout and a margin, and
  // asked again; what was said meanwhile arrives.
  const { recv_timeout: rt } = await limitsOf();
  const recvs = () => requests.filter((r) => r.who === 'fran' && new URL(r.url).pathname.endsWith('/recv')).length;
  holdRecv = true;
  await page.waitForFunction(() => true);
  const deadline = Date.now() + T;
  while (!held.length && Date.now() < deadline) await page.waitForTimeout(50);
  assert(held.length === 1, 'no /recv was held');
  const n = recvs();
  const during = `said while a poll hung ${Math.random().toString(36).slice(2, 8)}`;
  await say(users.alice, during);
  await waitMsg(page, during, (rt + 10) * 1000 + T);
  const next = requests.filter((r) => r.who === 'fran' && new URL(r.url).pathname.endsWith('/recv'))[n];
  assert(next, 'no /recv after the one that hung');
  const after = next.at - held[0];
  diag(`recv_timeout ${rt} s: a hung /recv was given up and asked again after ${after} ms`);
  assert(after >= rt * 1000, `given up after ${after} ms, before the server's ping was due`);
  eq(await countMsg(page, during), 1, 'copies of what was said while the poll hung');
  eq(f.errors.length, 0, `page errors: ${f.errors.join('; ')}`);
  await page.goto('about:blank'); // parts (pagehide)
  await waitWho(users.alice.page, ['alice', 'bob']);
  await context.close();
});

test('behind a login: delete buttons for the moderator and the author; the moderator\'s delete turns the line into a tombstone on both pages, /history and /search lose its text', async () => {
  assert(AUTH_BASE, 'PGCHAT_AUTH_BASE is not set');
  const base = AUTH_BASE.endsWith('/') ? AUTH_BASE : `${AUTH_BASE}/`;
  const login = (value) => (page) => page.context().addCookies([{ name: 'appsession', value, url: base }]);
  const m = await openUser('mona (login)', 'lobby', login('tok-mod'), base);
  const a = await openUser('alice (login)', 'lobby', login('tok-alice'), base);
  for (const [u, nick] of [[m, 'mona'], [a, 'alice']]) {
    await joinAs(u, nick);
    await waitJoined(u);
  }
  const word = Math.random().toString(36).slice(2, 10);
  const doomed = `delete me ${word}`;
  const kept = `a moderator's own line ${Math.random().toString(36).slice(2, 10)}`;
  await say(a, doomed);
  await say(m, kept);
  for (const u of [m, a]) for (const t of [doomed, kept]) await waitMsg(u.page, t);
  const offered = (page, t) => page.$$eval('#log li.line.msg', (lis, want) => lis.some(
    (li) => li.querySelector('.text')?.textContent === want && li.querySelector('button.delete-line')), t);
  assert(await offered(m.page, doomed), 'the moderator is offered no delete on alice\'s line');
  assert(await offered(a.page, doomed), 'alice is offered no delete on her own line');
  assert(!(await offered(a.page, kept)), 'alice is offered a delete on the moderator\'s line');
  await m.page.locator('#log li.line.msg', { hasText: doomed }).locator('button.delete-line').click();
  for (const u of [m, a]) {
    await u.page.waitForFunction(
      (want) => ![...document.querySelectorAll('#log .text')].some((e) => e.textContent.includes(want))
        && document.querySelectorAll('#log li.line.deleted').length === 1,
      doomed, { timeout: T, polling: 100 },
    ).catch(() => { throw new Error(`${u.nick}: the deleted line is still shown, or no tombstone`); });
    eq(await countMsg(u.page, kept), 1, `${u.nick}: lines of the kept message`);
  }
  const got = await a.page.evaluate(async (w) => ({
    history: await (await fetch('history?room=lobby')).text(),
    search: await (await fetch(`search?room=lobby&q=${w}`)).json(),
  }), word);
  assert(!got.history.includes(doomed), '/history still has the deleted text');
  eq(got.search.messages.map((x) => x.text).join('|'), '', '/search results for its word');
  eq([...m.errors, ...a.errors].join('; '), '', 'page errors');
  await m.context.close();
  await a.context.close();
});

test('closing the page parts: the other user sees the part line and the who list shrinks', async () => {
  const a = users.alice; const b = users.bob;
  await b.page.goto('about:blank');
  await a.page.waitForFunction(
    () => [...document.querySelectorAll('#log .line.part .nick')].some((e) => e.textContent === 'bob'),
    null, { timeout: T },
  );
  await waitWho(a.page, ['alice']);
});

test('the Leave button parts and shows the join screen again', async () => {
  const { page } = users.alice;
  await page.click('#leave');
  await page.waitForSelector('#join-form', { state: 'visible', timeout: T });
  assert(await page.isHidden('#chat'), '#chat still visible');
  eq(await text(page, '#status'), 'offline', '#status');
  eq(await page.inputValue('#nick'), 'alice', 'nick kept in the form');
});

test('no session id in any URL the pages requested; /recv carries it in X-Pgchat-Id, /events in no header', async () => {
  assert(sessionIds.size >= 2, `only ${sessionIds.size} session ids seen`);
  const path = (r) => new URL(r.url).pathname;
  const recvs = requests.filter((r) => path(r).endsWith('/recv'));
  const streams = requests.filter((r) => path(r).endsWith('/events'));
  assert(recvs.length >= 2, `only ${recvs.length} /recv requests seen`);
  assert(streams.length >= 4, `only ${streams.length} /events requests seen`);
  const leaks = requests.filter((r) => [...sessionIds].some((id) => r.url.includes(id)));
  for (const l of leaks.slice(0, 5)) diag(`${l.who}: ${l.method} ${l.url}`);
  eq(leaks.length, 0, `requests with a session id in the URL (of ${requests.length})`);
  const withId = recvs.filter((r) => r.idHeader && sessionIds.has(r.idHeader));
  eq(withId.length, recvs.length, '/recv requests carrying a known id in X-Pgchat-Id');
  for (const r of [...recvs, ...streams]) {
    const q = new URL(r.url).searchParams;
    eq([...q.keys()].sort().join(','), 'room,since', `query of ${r.url}`);
  }
  for (const r of streams) eq(r.idHeader, null, `X-Pgchat-Id on ${r.url}`);
  const writes = requests.filter((r) => /\/(join|part|send)$/.test(path(r)));
  assert(writes.length >= 5, `only ${writes.length} join/part/send requests seen`);
  for (const r of writes) {
    eq(r.method, 'POST', `method of ${r.url}`);
    eq(new URL(r.url).search, '', `query of ${r.url}`);
  }
});

test('no dialogs, page errors or CSP violations', async () => {
  const all = Object.values(users).flatMap((u) => u.errors.map((e) => `${u.nick}: ${e}`));
  for (const e of all) diag(e);
  eq(all.length, 0, 'errors');
  eq(Object.values(users).reduce((n, u) => n + u.dialogs, 0), 0, 'dialogs');
});

/* ----------------------------------------------------------------- main */

async function main() {
  console.log(`1..${tests.length}`);
  let failed = 0;
  let bail = null;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
  try {
    diag(`base ${BASE}, room ${ROOM}, chromium ${browser.version()}`);
    for (let i = 0; i < tests.length; i++) {
      const t = tests[i];
      const n = i + 1;
      if (process.env.PGCHAT_ONLY && !new RegExp(process.env.PGCHAT_ONLY).test(t.name)) {
        console.log(`ok ${n} - ${t.name} # SKIP not in PGCHAT_ONLY`);
        continue;
      }
      if (bail) {
        failed++;
        console.log(`not ok ${n} - ${t.name}`);
        diag(`not run: ${bail}`);
        continue;
      }
      const started = Date.now();
      try {
        await t.fn();
        console.log(`ok ${n} - ${t.name}`);
      } catch (e) {
        failed++;
        console.log(`not ok ${n} - ${t.name}`);
        failDiag(`test ${n}: ` + (e && e.stack ? e.stack.split('\n').slice(0, 6).join('\n') : String(e)));
        for (const u of Object.values(users)) {
          const f = path.join(OUT, `fail-${n}-${u.nick}.png`);
          try {
            fs.mkdirSync(OUT, { recursive: true });
            await u.page.screenshot({ path: f, timeout: 5000 });
            diag(`screenshot: ${f}`);
          } catch { /* page gone */ }
        }
        if (t.critical) bail = `test ${n} failed`;
      }
      if (process.env.PGCHAT_VERBOSE) diag(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
    }
  } finally {
    // never leave the responder stopped behind us
    if (responderStopped) await run(CTL, ['responder-start'], { timeout: 60000 }).catch(() => {});
    await browser.close().catch(() => {});
  }
  if (failed) diag(`failed ${failed} of ${tests.length}`);
  return failed ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  console.log(`Bail out! ${e && e.message}`);
  diag(e && e.stack);
  process.exit(2);
});
