/*
 * phase: names for the boot phases (enum canopy_phase in bootinfo.h), as the
 * config's debug_fault= takes them, the post-mortem line and `boottime` print
 * them.
 */
#ifndef CANOPY_PHASE_H
#define CANOPY_PHASE_H

#include <stdbool.h>
#include <stddef.h>

#include <canopy/bootinfo.h>

/* The phase's name ("before-ebs"), or "unknown" for a value outside the enum. */
const char *phase_name(unsigned phase);

/*
 * Looks up a phase by its name, s[0..n) (not NUL terminated, case-sensitive).
 * => returns false and leaves *out alone if no phase has that name.
 */
bool phase_parse(const char *s, size_t n, enum canopy_phase *out);

#endif
