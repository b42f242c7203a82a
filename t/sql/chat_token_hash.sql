-- chat_token_hash: a session is found by the SHA-256 of its token, and the
-- table of sessions holds nothing a reader could present as a token.
BEGIN;
SELECT plan(6);

SELECT has_function('chat_token_hash', ARRAY['text'],
    'chat_token_hash(text) exists');
SELECT is(chat_token_hash('abc'),
    '\xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'::bytea,
    'the hash of a token is its SHA-256');
SELECT is(chat_token_hash('é'), sha256(convert_to('é', 'UTF8')),
    'a token is hashed as UTF-8');
SELECT is(chat_token_hash(NULL), NULL, 'no token has no hash');
SELECT isnt(chat_token_hash('a'), chat_token_hash('A'),
    'tokens differing in case have different hashes');

SELECT chat_join('secret-token', 'pgtap-hash', 'alice', '60 s', 0, NULL, 0);
SELECT is_empty($$
    SELECT 1 FROM sessions s, to_jsonb(s) j
    WHERE j::text LIKE '%secret-token%'
$$, 'no column of a session holds its token');

SELECT * FROM finish();
ROLLBACK;
