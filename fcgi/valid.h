/* valid.h -- the protocol's rules for nicks, rooms, message text and cursors.
 *
 * Pure functions of their arguments: no I/O, no allocation, so the unit tests
 * and the fuzzer call them directly.
 */
#ifndef PGCHAT_VALID_H
#define PGCHAT_VALID_H

#include <stddef.h>
#include <stdint.h>

#define VALID_NICK_MAX 50
#define VALID_ROOM_MAX 64
#define VALID_TEXT_MAX_DEFAULT 4096
#define VALID_ID_LEN 32 /* TOKEN_LEN: 128 bits as lower-case hex */

/* 1 when (s, len) is a nick: 1-50 letters, digits, '_', '-', '^', '!'. */
int valid_nick(const char *s, size_t len);

/* 1 when (s, len) is a room: 1-64 letters, digits, '_', '-'. */
int valid_room(const char *s, size_t len);

/* 1 when (s, len) can be a session id: exactly 32 lower-case hex digits, as
 * token_new() makes them. Anything else names no session and must not reach
 * the database, which refuses a parameter that is not UTF-8 with an error
 * that fails every other statement of its batch. */
int valid_id(const char *s, size_t len);

#define VALID_MID_MAX 64

/* 1 when (s, len) is a send's mid: 1-64 letters, digits, '_', '-'. */
int valid_mid(const char *s, size_t len);

/* 1 when (s, len) is well-formed UTF-8 with no NUL byte: no overlong forms,
 * no surrogates, nothing above U+10FFFF. */
int valid_utf8(const char *s, size_t len);

/* 1 when (s, len) holds nothing but ASCII white space. */
int valid_blank(const char *s, size_t len);

enum valid_text {
    VALID_TEXT_OK,
    VALID_TEXT_EMPTY,    /* missing, empty, or nothing visible */
    VALID_TEXT_TOO_LONG, /* more than max bytes */
    VALID_TEXT_BAD_UTF8, /* not UTF-8, or holds a NUL byte */
    VALID_TEXT_CONTROL,  /* a character that can disguise text */
};

/* 1 when the code point cp may not appear in a message: the C0 controls but
 * tab and newline, DEL and the C1 controls (U+007F-U+009F), the Arabic
 * letter mark (U+061C), the line and paragraph separators (U+2028,
 * U+2029), the bidi embeddings and overrides (U+202A-U+202E), the bidi
 * isolates (U+2066-U+2069) and the tag characters (U+E0000-U+E007F).
 * They can make text read other than it is: a fake "12:34 admin" line, a
 * link whose text runs backwards, a hidden payload. (A message may also
 * hold at most one LRM or RLM, U+200E/U+200F: valid_text() counts them.) */
int valid_control(unsigned int cp);

/* 1 when the code point cp shows nothing by itself: white space, the
 * zero-width and format characters, the Hangul and braille fillers,
 * variation selectors. A message made of nothing else is empty. */
int valid_invisible(unsigned int cp);

/* Classifies a message text; s may be NULL (a missing parameter). The
 * checks run in the order of the enum, so text that is not UTF-8 is never
 * decoded for its control characters. */
enum valid_text valid_text(const char *s, size_t len, size_t max);

/* 1 when (s, len) is a search query: 1-max code points of UTF-8, not all
 * white space, none of them a control valid_control() refuses; 0
 * otherwise. */
int valid_query(const char *s, size_t len, size_t max);

/* 1 when the web-style query (s, len) has a term a match must contain: a
 * word or "phrase" not excluded by '-', other than the operator "or". A
 * query of exclusions alone ("-word") matches nearly everything, and
 * would read every message of the room to say so. */
int valid_query_finds(const char *s, size_t len);

/* Parses a count or a cursor of a read (/history's before and limit):
 * 1-18 digits, nothing else, between min and max. Returns 0, or -1 when s
 * is NULL or is not one. */
int valid_number(const char *s, int64_t min, int64_t max, int64_t *out);

/* Parses a "since" cursor: an optional '-', digits, and an optional
 * fraction, which is dropped. Values below 0 read as 0 and values beyond
 * int64 as INT64_MAX, so every number is a cursor. Returns 0, or -1 when s is
 * NULL, empty or not a number. */
int valid_since(const char *s, int64_t *out);

#endif
