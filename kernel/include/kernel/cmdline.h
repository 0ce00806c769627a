/*
 * cmdline: the kernel command line (from canopy.cfg's cmdline=, via the boot
 * info): space-separated words, each `key` or `key=value`.
 */
#ifndef KERNEL_CMDLINE_H
#define KERNEL_CMDLINE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Finds `key` in the command line. Returns true if present; copies its value
 * ("" for a bare key) into value[0..size), NUL terminated and truncated.
 */
bool cmdline_get(const char *cmdline, const char *key, char *value, size_t size);

#endif
