/*
 * pin: the reserved pin (load/pin.h) and stage 1's SBAT entry, each in the PE
 * section the tools that read them look for.
 *
 * stage1_cfg_pin is read through a volatile access only (main.c), so the
 * compiler cannot fold the "nothing pinned" it sees here into the code: the
 * bytes scripts/sb-pin.py writes after linking are the ones that count.
 */
#include "load/pin.h"

__attribute__((section(PIN_SECTION), used)) const volatile struct stage1_pin stage1_cfg_pin = {
    .magic = PIN_MAGIC,
    .pinned = 0,
};

/*
 * SBAT (Secure Boot Advanced Targeting, shim's SBAT.md): shim starts no
 * second stage without a .sbat section. The first line is the format's own;
 * the second names Canopy at generation 1, which a revocation would raise.
 */
__attribute__((section(".sbat"), used)) static const char stage1_sbat[] =
    "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"
    "canopy,1,Canopy,canopy,0.1.0,docs/secure-boot.md\n";
