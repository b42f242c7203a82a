-- 0015: moderators named in the database (one room, or every room), the
-- author's own delete within a window (chat_delete_as), bans for a time
-- (chat_ban with an interval, chat_is_banned, the chat_bans view), and
-- the API's ban and unban as someone who may or may not (chat_ban_as).
BEGIN;
SELECT plan(24);

SELECT has_function('chat_delete_as', ARRAY['text', 'bigint', 'text', 'boolean', 'interval'],
    'chat_delete_as(room, ts, by, moderator, window) exists');
SELECT has_function('chat_ban', ARRAY['text', 'text', 'text', 'interval'],
    'chat_ban(room, login, by, for) exists');
SELECT has_view('chat_bans', 'the chat_bans view exists');

SELECT is(chat_join('t-m1', 'pgtap-mod', 'alice', '60 s', 0, NULL, 0, 0, 'alice'), 'joined', 'alice joins');
SELECT is(chat_join('t-m2', 'pgtap-mod', 'bob', '60 s', 0, NULL, 0, 0, 'bob'), 'joined', 'bob joins');
SELECT ok((SELECT count(*) FROM chat_send(ARRAY['t-m1', 't-m1', 't-m2'], ARRAY['pgtap-mod', 'pgtap-mod', 'pgtap-mod'],
                                          ARRAY['one', 'two', 'bobs'])) = 3, 'they say three things');
-- An old message of alice's, from 1970.
INSERT INTO messages (room, seq, ts, nick, type, text) VALUES ('pgtap-mod', 1000000, 1000, 'alice', 'msg', 'old');

CREATE TEMP TABLE m AS SELECT text, ts FROM messages WHERE room = 'pgtap-mod' AND type = 'msg';
SELECT is(chat_delete_as('pgtap-mod', (SELECT ts FROM m WHERE text = 'bobs'), 'alice', false, '5 min'), -1::bigint,
    'alice may not delete bob''s message');
SELECT is(chat_delete_as('pgtap-mod', (SELECT ts FROM m WHERE text = 'old'), 'alice', false, '5 min'), -1::bigint,
    'nor her own from outside the window');
SELECT is(chat_delete_as('pgtap-mod', (SELECT ts FROM m WHERE text = 'one'), 'alice', false, '0 s'), -1::bigint,
    'nor her own with a window of 0');
SELECT ok(chat_delete_as('pgtap-mod', (SELECT ts FROM m WHERE text = 'one'), 'alice', false, '5 min') > 0,
    'her own inside the window: deleted');
SELECT is(chat_delete_as('pgtap-mod', 12345, 'alice', false, '5 min'), 0::bigint, 'no such message: 0');
SELECT ok(chat_delete_as('pgtap-mod', (SELECT ts FROM m WHERE text = 'old'), 'mona', true, '0 s') > 0,
    'the site''s moderator deletes any');
SELECT is(chat_delete_as('pgtap-mod', (SELECT ts FROM m WHERE text = 'bobs'), 'dora', false, '5 min'), -1::bigint,
    'dora may not, yet');
INSERT INTO moderators (login, room) VALUES ('dora', 'pgtap-mod'), ('olga', NULL);
SELECT ok(chat_is_moderator('dora', 'pgtap-mod') AND NOT chat_is_moderator('dora', 'other')
          AND chat_is_moderator('olga', 'other'), 'a moderators row names one room, or with room NULL every room');
SELECT ok(chat_delete_as('pgtap-mod', (SELECT ts FROM m WHERE text = 'bobs'), 'dora', false, '0 s') > 0,
    'named in the database, dora deletes bob''s message');
SELECT is((SELECT count(*)::int FROM messages WHERE room = 'pgtap-mod' AND type = 'msg'), 1, 'one msg is left');

SELECT is(chat_ban_as('pgtap-mod', 'bob', 'alice', false, '10 min', false), -1, 'alice may not ban');
SELECT is(chat_ban_as('pgtap-mod', 'bob', 'dora', false, '10 min', false), 1, 'dora bans bob for 10 minutes: his session ends');
SELECT ok(chat_is_banned('bob', 'pgtap-mod'), 'he is banned');
SELECT is(chat_join('t-m3', 'pgtap-mod', 'bob', '60 s', 0, NULL, 0, 0, 'bob'), 'banned', 'and his join is refused');
SELECT results_eq($$ SELECT login, banned_by, banned_until - banned_at FROM chat_bans WHERE room = 'pgtap-mod' $$,
    $$ VALUES ('bob', 'dora', interval '10 min') $$, 'chat_bans lists the ban, its moderator and its end');
UPDATE bans SET banned_until = now() - interval '1 s' WHERE room = 'pgtap-mod' AND login = 'bob';
SELECT is(chat_join('t-m4', 'pgtap-mod', 'bob', '60 s', 0, NULL, 0, 0, 'bob'), 'joined',
    'once the ban has ended he joins again');
SELECT is_empty($$ SELECT 1 FROM chat_bans WHERE room = 'pgtap-mod' $$, 'and chat_bans leaves it out');
SELECT is(chat_ban_as('pgtap-mod', 'bob', 'olga', false, NULL, true), 0, 'an unban of an ended ban: 0');

SELECT * FROM finish();
ROLLBACK;
