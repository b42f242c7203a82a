/* valid.c -- the protocol's rules for nicks, rooms, message text and cursors.
 *
 * Character classes are spelled out instead of using <ctype.h>, whose answers
 * depend on the locale and on the sign of char.
 */
#include "valid.h"

static int
is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

int
valid_nick(const char *s, size_t len)
{
    if (!s || len == 0 || len > VALID_NICK_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];

        if (!is_alnum(c) && c != '_' && c != '-' && c != '^' && c != '!')
            return 0;
    }
    return 1;
}

int
valid_room(const char *s, size_t len)
{
    if (!s || len == 0 || len > VALID_ROOM_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];

        if (!is_alnum(c) && c != '_' && c != '-')
            return 0;
    }
    return 1;
}

/* The same alphabet as a room's: mids are made by clients, often UUIDs. */
int
valid_mid(const char *s, size_t len)
{
    return len <= VALID_MID_MAX && valid_room(s, len);
}

int
valid_id(const char *s, size_t len)
{
    if (!s || len != VALID_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];

        if (!(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'f'))
            return 0;
    }
    return 1;
}

/* Decodes the code point at s[*i] (len bytes in all) and moves *i past
 * it. Returns the code point, or -1 when the bytes there are not UTF-8 or
 * are a NUL. */
static long
next_cp(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char c = s[*i];
    unsigned int cp;
    size_t n;

    if (c == 0)
        return -1;
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 1;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 2;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3;
        cp = c & 0x07;
    } else {
        return -1; /* continuation byte, overlong lead or > U+10FFFF */
    }
    if (len - *i <= n)
        return -1;
    for (size_t k = 1; k <= n; k++) {
        if ((s[*i + k] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[*i + k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *i += n + 1;
    return cp;
}

int
valid_utf8(const char *str, size_t len)
{
    size_t i = 0;

    while (i < len)
        if (next_cp((const unsigned char *)str, len, &i) < 0)
            return 0;
    return 1;
}

int
valid_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\v' &&
            c != '\f')
            return 0;
    }
    return 1;
}

int
valid_control(unsigned int cp)
{
    if (cp < 0x20)
        return cp != '\t' && cp != '\n';
    return (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c ||
           (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
           (cp >= 0xe0000 && cp <= 0xe007f);
}

static int
is_mark(unsigned int cp)
{
    return cp == 0x200e || cp == 0x200f;
}

int
valid_invisible(unsigned int cp)
{
    static const unsigned int ranges[][2] = {
        {0x09, 0x0d},       {0x20, 0x20},       {0xa0, 0xa0},
        {0xad, 0xad},       {0x034f, 0x034f},   {0x061c, 0x061c},
        {0x115f, 0x1160},   {0x1680, 0x1680},   {0x17b4, 0x17b5},
        {0x180b, 0x180f},   {0x2000, 0x200f},   {0x2028, 0x202f},
        {0x205f, 0x206f},   {0x2800, 0x2800},   {0x3000, 0x3000},
        {0x3164, 0x3164},   {0xfe00, 0xfe0f},   {0xfeff, 0xfeff},
        {0xffa0, 0xffa0},   {0xfff0, 0xfff8},   {0x1bca0, 0x1bca3},
        {0x1d173, 0x1d17a}, {0xe0000, 0xe0fff},
    };

    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1])
            return 1;
    return 0;
}

/* What well-formed UTF-8 (s, len) holds that the rules care about. */
struct scan {
    int control; /* a code point valid_control() refuses, or a second mark */
    int visible; /* a code point that shows something */
};

static struct scan
scan_text(const char *str, size_t len)
{
    struct scan sc = {0, 0};
    size_t i = 0;
    int marks = 0;

    while (i < len) {
        long cp = next_cp((const unsigned char *)str, len, &i);

        if (cp < 0)
            break; /* not UTF-8: valid_utf8() refuses it */
        if (valid_control((unsigned int)cp) ||
            (is_mark((unsigned int)cp) && ++marks > 1))
            sc.control = 1;
        if (!valid_invisible((unsigned int)cp))
            sc.visible = 1;
    }
    return sc;
}

enum valid_text
valid_text(const char *s, size_t len, size_t max)
{
    struct scan sc;

    if (!s || valid_blank(s, len))
        return VALID_TEXT_EMPTY;
    if (len > max)
        return VALID_TEXT_TOO_LONG;
    if (!valid_utf8(s, len))
        return VALID_TEXT_BAD_UTF8;
    sc = scan_text(s, len);
    if (sc.control)
        return VALID_TEXT_CONTROL;
    if (!sc.visible)
        return VALID_TEXT_EMPTY;
    return VALID_TEXT_OK;
}

int
valid_query(const char *s, size_t len, size_t max)
{
    size_t i = 0, n = 0;

    if (valid_blank(s, len))
        return 0;
    while (i < len) {
        long cp = next_cp((const unsigned char *)s, len, &i);

        if (cp < 0 || valid_control((unsigned int)cp) || ++n > max)
            return 0;
    }
    return 1;
}

/* 1 when (s, n) holds something the search's parser keeps as a word: a
 * letter or digit, or any character beyond ASCII. */
static int
has_word(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (is_alnum((unsigned char)s[i]) || (unsigned char)s[i] >= 0x80)
            return 1;
    return 0;
}

int
valid_query_finds(const char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        int excluded = 0;
        size_t start, end;

        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n'))
            i++;
        if (i < len && s[i] == '-') {
            excluded = 1;
            i++;
        }
        if (i < len && s[i] == '"') {
            start = ++i;
            while (i < len && s[i] != '"')
                i++;
            end = i;
            if (i < len)
                i++;
        } else {
            start = i;
            while (i < len && s[i] != ' ' && s[i] != '\t' && s[i] != '\n')
                i++;
            end = i;
        }
        if (!excluded && has_word(s + start, end - start) &&
            !(end - start == 2 && (s[start] | 0x20) == 'o' &&
              (s[start + 1] | 0x20) == 'r'))
            return 1;
    }
    return 0;
}

int
valid_number(const char *s, int64_t min, int64_t max, int64_t *out)
{
    int64_t v = 0;
    size_t n = 0;

    if (!s)
        return -1;
    for (; s[n] >= '0' && s[n] <= '9'; n++) {
        if (n == 18)
            return -1; /* 19 digits and more may not fit */
        v = v * 10 + (s[n] - '0');
    }
    if (n == 0 || s[n] != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int
valid_since(const char *s, int64_t *out)
{
    int negative = 0, overflow = 0;
    int64_t v = 0;
    const char *p = s;

    if (!s)
        return -1;
    if (*p == '-') {
        negative = 1;
        p++;
    }
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        int d = *p - '0';

        if (v > (INT64_MAX - d) / 10)
            overflow = 1;
        else
            v = v * 10 + d;
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p != '\0')
        return -1;
    if (negative)
        v = 0;
    else if (overflow)
        v = INT64_MAX;
    *out = v;
    return 0;
}
