/* maint.h -- the maintenance passes: keep-alives, the session sweep and
 * retention, run by the writer thread between its batches.
 */
#ifndef PGCHAT_MAINT_H
#define PGCHAT_MAINT_H

#include <stddef.h>
#include <stdint.h>

#include "pg.h"

/* Call once, before the writer thread starts. */
void maint_init(void);

/* Takes ids and each string, to be marked active with the next pass.
 * Safe from any thread. */
void maint_touch(char **ids, size_t n);

/* The next mono_ms() at which maint_run() has work. Safe from any thread. */
int64_t maint_due(void);

/* Runs the passes that are due on p (all of the keep-alives with all). */
void maint_run(struct pg *p, int64_t now, int all);

#endif
