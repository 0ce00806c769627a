/*
 * config: the parser for /canopy/canopy.cfg.
 *
 * The file is `key=value` lines. Whitespace around keys and values is trimmed,
 * blank lines and lines whose first non-blank character is '#' are ignored
 * (a '#' after a value is part of the value: command lines may contain one).
 * Keys:
 *   kernel=PATH       the kernel on the same volume, absolute ('/' separators)
 *   cmdline=TEXT      the kernel command line (printable ASCII)
 *   serial=on|off     whether stage 1 writes to COM1 after ExitBootServices
 *   verbose=N         0 (default) .. 9: how much stage 1 prints
 *   resolution=WxH    a GOP mode to switch to; "current" keeps the firmware's
 *   debug_fault=PHASE a test and debug aid: stage 1 raises a page fault when it
 *                     reaches PHASE (config-read .. kernel-entry); "off" (default)
 *   debug_smash=PHASE the same, but an overrun of a local array that the stack
 *                     protector catches (config-read .. page-tables-built)
 *   kernel_sha256=HEX the kernel file's SHA-256 (64 hex digits): stage 1 refuses
 *                     a kernel whose hash differs. The signed image's build
 *                     writes it (docs/secure-boot.md)
 * A verified configuration (cfg->verified set before config_parse: Secure
 * Boot is on or stage 1 pins the file's hash) takes no debug_* key: each is
 * counted in debug_ignored and changes nothing.
 * Every problem is reported with its line number and the setting keeps its
 * previous (default) value, so a broken file still boots with safe defaults.
 * A key given again with a valid value replaces the earlier one, with a note;
 * a rejected later value is reported and the earlier one stays.
 */
#ifndef STAGE1_LOAD_CONFIG_H
#define STAGE1_LOAD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/bootinfo.h>
#include <canopy/sha256.h>

#define CONFIG_PATH_MAX       256 /* bytes including the NUL */
#define CONFIG_CMDLINE_MAX    256 /* = sizeof(canopy_bootinfo.cmdline) */
#define CONFIG_VERBOSE_MAX    9
#define CONFIG_DEFAULT_KERNEL "/canopy/kernel.elf"
#define CONFIG_FILE_PATH      "/canopy/canopy.cfg"
#define CONFIG_FILE_MAX       (64 * 1024)              /* larger files are refused whole */
#define CONFIG_NO_FAULT       CANOPY_PHASE_COUNT       /* debug_fault=off */
#define CONFIG_FAULT_FIRST    CANOPY_PHASE_CONFIG_READ /* the first phase after the config is read */
#define CONFIG_FAULT_LAST     CANOPY_PHASE_KERNEL_ENTRY
#define CONFIG_SMASH_LAST     (CANOPY_PHASE_KERNEL_ENTRY - 1) /* the last phase in stage 1's code */

struct config {
    char kernel[CONFIG_PATH_MAX];
    char cmdline[CONFIG_CMDLINE_MAX];
    bool serial;
    unsigned verbose;
    uint32_t fb_width, fb_height; /* 0, 0: keep the firmware's current mode */
    unsigned debug_fault;         /* enum canopy_phase to fault at, or CONFIG_NO_FAULT */
    unsigned debug_smash; /* enum canopy_phase to overrun the stack at, or CONFIG_NO_FAULT */
    bool kernel_pinned;   /* kernel_sha256= was given (and valid) */
    struct sha256_digest kernel_sha256;
    bool verified;          /* in: the file is verified, debug_* keys are ignored */
    unsigned debug_ignored; /* out: debug_* lines ignored because verified */
};

/* Receives one problem: the 1-based line number and a sentence without a newline. */
typedef void (*config_report_fn)(void *ctx, unsigned line, const char *problem);

/* Fills cfg with the defaults (what a missing file means); verified is false. */
void config_defaults(struct config *cfg);

/*
 * Applies the settings in text[0..len) on top of *cfg.
 * => text need not be NUL terminated and may hold any bytes; report may be NULL.
 * => returns the number of problems reported; each bad line leaves the
 *    settings it named unchanged.
 */
unsigned config_parse(struct config *cfg, const char *text, size_t len, config_report_fn report,
                      void *ctx);

#endif
