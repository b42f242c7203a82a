/* token.h -- session tokens. */
#ifndef PGCHAT_TOKEN_H
#define PGCHAT_TOKEN_H

/* 128 bits from the kernel's random source, as 32 hex digits. */
#define TOKEN_BYTES 16
#define TOKEN_LEN (2 * TOKEN_BYTES)

/* Returns a new token that the caller frees, or NULL when the kernel has no
 * randomness to give (logged). */
char *token_new(void);

#endif
