-- 0014_session_owner.sql -- behind a site's login (PGCHAT_AUTH=request) a
-- session id is good only in the hands of the login that made it: the
-- responder asks which ids of a batch belong to another login (or to
-- none, an anonymous session) before it uses them, and refuses those
-- requests (403). An id that names no session is not this function's
-- business (the caller's 400, as before). Safe to run twice.

-- Returns the 1-based positions i where p_token[i] names a session whose
-- login is not p_login[i].
CREATE OR REPLACE FUNCTION chat_foreign_sessions(p_token text[], p_login text[])
RETURNS SETOF int
LANGUAGE sql STABLE AS $$
    SELECT i.o::int
    FROM unnest(p_token, p_login) WITH ORDINALITY AS i(token, login, o)
    JOIN sessions s ON s.token_hash = chat_token_hash(i.token)
    WHERE s.login IS DISTINCT FROM i.login
    ORDER BY i.o
$$;
COMMENT ON FUNCTION chat_foreign_sessions(text[], text[]) IS
    'The positions of the tokens that name a session of another login than the one beside them (PGCHAT_AUTH=request: such a request is refused).';
