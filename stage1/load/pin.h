/*
 * pin: the SHA-256 of canopy.cfg that a signed stage 1 carries.
 *
 * The linker reserves one struct stage1_pin in a PE section of its own,
 * PIN_SECTION, with PIN_MAGIC and nothing pinned. Building the signed image,
 * scripts/sb-pin.py finds the section by name, checks the marker, writes the
 * configuration's hash and sets `pinned`; sbsign then signs the image, so the
 * signature covers the hash and the firmware's check of the signature is the
 * check of the pin. docs/secure-boot.md tells the whole chain.
 */
#ifndef STAGE1_LOAD_PIN_H
#define STAGE1_LOAD_PIN_H

#include <stdint.h>

#define PIN_SECTION ".cfgpin"          /* at most 8 characters: a PE section name */
#define PIN_MAGIC   "CANOPY-CFG-PIN/1" /* 16 characters, no NUL in the section */

struct stage1_pin {
    char magic[16];         /* PIN_MAGIC */
    uint32_t pinned;        /* 0: nothing pinned; anything else: cfg_sha256 is the pin */
    uint32_t reserved;      /* 0 */
    uint8_t cfg_sha256[32]; /* canopy.cfg's SHA-256 when pinned */
};
_Static_assert(sizeof(PIN_MAGIC) - 1 == 16, "the marker fills magic[] exactly");
_Static_assert(sizeof(struct stage1_pin) == 56, "the layout scripts/sb-pin.py writes");

/* Stage 1's own pin (stage1/pin.c); read it only through this volatile object. */
extern const volatile struct stage1_pin stage1_cfg_pin;

#endif
