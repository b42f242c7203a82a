/* stats.c -- the worker's counters for /stats. */
#include "stats.h"

struct stats stats;
