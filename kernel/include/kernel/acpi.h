/*
 * acpi: the few ACPI facts the kernel's power functions need, read from the
 * firmware's tables: where the PM1 control registers are and which SLP_TYP
 * values put the machine in S5 (soft off), and the FADT's reset register.
 *
 * Pure code: tables are reached only through a caller-supplied map function,
 * so the same parser runs in the kernel (through the HHDM) and on the host
 * (over a buffer).
 */
#ifndef KERNEL_ACPI_H
#define KERNEL_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Generic Address Structure address spaces the kernel can use. */
#define ACPI_SPACE_MEMORY 0
#define ACPI_SPACE_IO     1
#define ACPI_SPACE_PCI    2

/* A register as a Generic Address Structure describes it. */
struct acpi_gas {
    uint8_t space;     /* ACPI_SPACE_* (others are rejected by the parser) */
    uint8_t bit_width; /* 8, 16 or 32 */
    uint64_t address;  /* port, physical address, or PCI dev:fn:offset encoding */
};

/* What acpi_power_read found. Each *_problem is "" when its part is usable, else one line. */
#define ACPI_PROBLEM_SIZE 96
struct acpi_power {
    char problem[ACPI_PROBLEM_SIZE]; /* no usable RSDP/XSDT/FADT: nothing below is valid */
    uint8_t fadt_revision;

    /* Entering S5: write SLP_TYPx | SLP_EN into PM1a (and PM1b if present). */
    char s5_problem[ACPI_PROBLEM_SIZE];
    struct acpi_gas pm1a_cnt;
    struct acpi_gas pm1b_cnt; /* address 0: no PM1b block */
    uint8_t slp_typ_a, slp_typ_b;
    uint16_t smi_cmd; /* 0: ACPI mode cannot be (or need not be) switched on */
    uint8_t acpi_enable;

    /* The reset register (FADT flag RESET_REG_SUP). */
    char reset_problem[ACPI_PROBLEM_SIZE];
    struct acpi_gas reset_reg;
    uint8_t reset_value;
};

/*
 * Returns a pointer to `len` readable bytes at physical address `phys`, or
 * NULL if any of them cannot be read.
 */
typedef const void *(*acpi_map_fn)(void *ctx, uint64_t phys, uint64_t len);

/*
 * Reads the power facts from the tables under the RSDP at `rsdp` (0: none):
 * RSDP (checksums), XSDT or RSDT, FADT and DSDT (signature, length bounds,
 * checksum each), then a bounded scan of the DSDT's AML for the \_S5 package.
 * Never fails as a whole: *out says per part what is usable and why not.
 */
void acpi_power_read(uint64_t rsdp, acpi_map_fn map, void *ctx, struct acpi_power *out);

/* True if the bytes of [p, p + len) sum to 0 modulo 256 (every ACPI table's rule). */
bool acpi_checksum_ok(const void *p, size_t len);

/*
 * Finds `Name (_S5, Package () { a, b, ... })` in an AML byte stream and
 * returns its first two integers (a one-element package holds a in bits 0-7
 * and b in bits 8-15). Returns NULL on success, else why not.
 * => reads only aml[0, len).
 */
const char *acpi_find_s5(const uint8_t *aml, size_t len, uint8_t *slp_typ_a, uint8_t *slp_typ_b);

#endif
