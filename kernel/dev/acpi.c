/*
 * acpi: reads the FADT and the \_S5 package for the power functions.
 *
 *   RSDP ──> XSDT (8-byte entries; RSDT with 4-byte ones before ACPI 2.0)
 *              └──> "FACP" (FADT) ──> PM1a/PM1b control blocks, RESET_REG
 *                                └──> DSDT ──> AML: Name (_S5, Package {a, b, ..})
 *
 * Invariant: every byte read lies inside a range the map function granted
 * and inside the table's own length, which is bounded and checksummed
 * before anything in it is trusted. The AML is not interpreted: a bounded
 * byte scan looks for the NameOp, the name _S5_ and a PackageOp whose first
 * elements are integer constants, which is how every firmware we know of
 * (QEMU's included) writes it. Called by power.c when a power function
 * first needs the tables; pure, so kernel/tests exercises it on the host.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canopy/fmt.h>
#include <canopy/rsdp.h>
#include <kernel/acpi.h>

#define HEADER_BYTES    36u
#define TABLE_MAX_BYTES (16u << 20) /* larger than any real DSDT */
#define XSDT_MAX_TABLES 1024u

/* FADT field offsets (ACPI 6.5, table 5.9). */
#define FADT_DSDT          40
#define FADT_SMI_CMD       48
#define FADT_ACPI_ENABLE   52
#define FADT_PM1A_CNT      64
#define FADT_PM1B_CNT      68
#define FADT_PM1_CNT_LEN   89
#define FADT_FLAGS         112
#define FADT_RESET_REG     116
#define FADT_RESET_VALUE   128
#define FADT_X_DSDT        140
#define FADT_X_PM1A_CNT    172
#define FADT_X_PM1B_CNT    184
#define FADT_RESET_REG_SUP (1u << 10)
#define FADT_HW_REDUCED    (1u << 20)

/* AML opcodes the _S5 scan understands. */
#define AML_ZERO    0x00
#define AML_ONE     0x01
#define AML_NAME    0x08
#define AML_BYTE    0x0a
#define AML_WORD    0x0b
#define AML_DWORD   0x0c
#define AML_QWORD   0x0e
#define AML_PKG     0x12
#define AML_ROOT    0x5c /* '\' */
#define SLP_TYP_MAX 7u

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static bool sig_is(const uint8_t *p, const char *sig, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)sig[i])
            return false;
    return true;
}

bool acpi_checksum_ok(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + b[i]);
    return sum == 0;
}

/*
 * Maps a whole system description table after checking its header: the
 * signature (if sig is not NULL), a length within bounds, and the checksum.
 * Returns NULL and writes why into `why` otherwise.
 */
static const uint8_t *table_get(acpi_map_fn map, void *ctx, uint64_t phys, const char *sig,
                                const char *what, uint32_t *len, char *why)
{
    if (phys == 0) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "%s: address 0", what);
        return NULL;
    }
    const uint8_t *h = map(ctx, phys, HEADER_BYTES);
    if (h == NULL) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "%s at 0x%llx: not mapped", what,
                     (unsigned long long)phys);
        return NULL;
    }
    if (sig != NULL && !sig_is(h, sig, 4)) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "%s at 0x%llx: signature is not %s", what,
                     (unsigned long long)phys, sig);
        return NULL;
    }
    uint32_t l = rd32(h + 4);
    if (l < HEADER_BYTES || l > TABLE_MAX_BYTES) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "%s at 0x%llx: bad length %u", what,
                     (unsigned long long)phys, l);
        return NULL;
    }
    const uint8_t *t = map(ctx, phys, l);
    if (t == NULL) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "%s at 0x%llx: %u bytes not mapped", what,
                     (unsigned long long)phys, l);
        return NULL;
    }
    if (!acpi_checksum_ok(t, l)) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "%s at 0x%llx: bad checksum", what,
                     (unsigned long long)phys);
        return NULL;
    }
    *len = l;
    return t;
}

/* The RSDP's XSDT (preferred) or RSDT: returns the table and its entry size. */
static const uint8_t *root_table(uint64_t rsdp, acpi_map_fn map, void *ctx, uint32_t *len,
                                 unsigned *entry_bytes, char *why)
{
    if (rsdp == 0) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "no RSDP");
        return NULL;
    }
    const char *bad = rsdp_check(map, ctx, rsdp);
    if (bad != NULL) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "RSDP at 0x%llx: %s", (unsigned long long)rsdp, bad);
        return NULL;
    }
    const uint8_t *r = map(ctx, rsdp, RSDP_V1_BYTES);
    if (r[15] >= 2) {
        const uint8_t *r2 = map(ctx, rsdp, RSDP_V2_BYTES);
        uint64_t xsdt = rd64(r2 + 24);
        if (xsdt != 0) {
            *entry_bytes = 8;
            return table_get(map, ctx, xsdt, "XSDT", "XSDT", len, why);
        }
    }
    *entry_bytes = 4;
    return table_get(map, ctx, rd32(r + 16), "RSDT", "RSDT", len, why);
}

static uint32_t read_uint(const uint8_t *aml, size_t len, size_t *i, bool *ok)
{
    if (*i >= len) {
        *ok = false;
        return 0;
    }
    uint8_t op = aml[(*i)++];
    size_t n = op == AML_BYTE    ? 1
               : op == AML_WORD  ? 2
               : op == AML_DWORD ? 4
               : op == AML_QWORD ? 8
                                 : 0;
    if (op == AML_ZERO || op == AML_ONE)
        return op;
    if (n == 0 || *i + n > len) {
        *ok = false;
        return 0;
    }
    uint32_t v = 0;
    for (size_t k = 0; k < n && k < 4; k++)
        v |= (uint32_t)aml[*i + k] << (8 * k);
    for (size_t k = 4; k < n; k++)
        if (aml[*i + k] != 0)
            *ok = false; /* a QWord too large for SLP_TYP */
    *i += n;
    return v;
}

/* Parses the package after "_S5_" at aml[i]; NULL on success. */
static const char *parse_s5_package(const uint8_t *aml, size_t len, size_t i, uint8_t *a,
                                    uint8_t *b)
{
    if (i >= len || aml[i] != AML_PKG)
        return "\\_S5 is not a package";
    i++;
    if (i >= len)
        return "\\_S5 package truncated";
    /* PkgLength: bits 7-6 of the lead byte count the bytes that follow. */
    uint8_t lead = aml[i];
    size_t follow = lead >> 6;
    size_t pkg_len = follow == 0 ? (lead & 0x3fu) : (lead & 0x0fu);
    if (i + 1 + follow > len)
        return "\\_S5 package length truncated";
    for (size_t k = 0; k < follow; k++)
        pkg_len |= (size_t)aml[i + 1 + k] << (4 + 8 * k);
    size_t end = i + pkg_len; /* PkgLength counts itself */
    if (pkg_len < 1 + follow + 1 || end > len)
        return "\\_S5 package length out of bounds";
    i += 1 + follow;
    uint8_t count = aml[i++];
    if (count == 0)
        return "\\_S5 package is empty";
    bool ok = true;
    uint32_t va = read_uint(aml, end, &i, &ok);
    uint32_t vb = 0;
    if (count >= 2)
        vb = read_uint(aml, end, &i, &ok);
    else if (ok) {
        vb = (va >> 8) & 0xffu;
        va &= 0xffu;
    }
    if (!ok)
        return "\\_S5 elements are not integer constants";
    if (va > SLP_TYP_MAX || vb > SLP_TYP_MAX)
        return "\\_S5 SLP_TYP value above 7";
    *a = (uint8_t)va;
    *b = (uint8_t)vb;
    return NULL;
}

const char *acpi_find_s5(const uint8_t *aml, size_t len, uint8_t *slp_typ_a, uint8_t *slp_typ_b)
{
    const char *last = "no \\_S5 object in the DSDT";
    for (size_t i = 1; i + 4 <= len; i++) {
        if (!sig_is(aml + i, "_S5_", 4))
            continue;
        bool named =
            aml[i - 1] == AML_NAME || (i >= 2 && aml[i - 1] == AML_ROOT && aml[i - 2] == AML_NAME);
        if (!named)
            continue;
        /* A malformed match may be data that happens to look like one: keep looking. */
        last = parse_s5_package(aml, len, i + 4, slp_typ_a, slp_typ_b);
        if (last == NULL)
            return NULL;
    }
    return last;
}

/* A GAS from the FADT at t[off..off+12), if the table is long enough and it is set. */
static bool gas_at(const uint8_t *t, uint32_t len, uint32_t off, struct acpi_gas *g)
{
    if (off + 12 > len)
        return false;
    g->space = t[off];
    g->bit_width = t[off + 1];
    g->address = rd64(t + off + 4);
    return g->address != 0;
}

static bool gas_usable(const struct acpi_gas *g)
{
    bool width_ok = g->bit_width == 8 || g->bit_width == 16 || g->bit_width == 32;
    return width_ok && (g->space == ACPI_SPACE_MEMORY || g->space == ACPI_SPACE_IO ||
                        g->space == ACPI_SPACE_PCI);
}

/* PM1x control block: the extended GAS if present, else the legacy I/O port. */
static bool pm1_block(const uint8_t *fadt, uint32_t len, uint32_t x_off, uint32_t legacy_off,
                      struct acpi_gas *g)
{
    if (gas_at(fadt, len, x_off, g)) {
        if (g->bit_width == 0)
            g->bit_width = 16; /* some firmware leaves the width of PM1 blocks out */
        return true;
    }
    uint32_t port = rd32(fadt + legacy_off);
    g->space = ACPI_SPACE_IO;
    g->bit_width = 16;
    g->address = port;
    return port != 0;
}

static void read_s5(const uint8_t *fadt, uint32_t flen, acpi_map_fn map, void *ctx,
                    struct acpi_power *out)
{
    char *why = out->s5_problem;
    uint32_t flags = flen >= FADT_FLAGS + 4 ? rd32(fadt + FADT_FLAGS) : 0;
    if (flags & FADT_HW_REDUCED) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "hardware-reduced ACPI: no PM1 control block");
        return;
    }
    if (flen < FADT_PM1_CNT_LEN + 1) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "FADT too short (%u bytes) for PM1 blocks", flen);
        return;
    }
    if (!pm1_block(fadt, flen, FADT_X_PM1A_CNT, FADT_PM1A_CNT, &out->pm1a_cnt)) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "FADT has no PM1a control block");
        return;
    }
    if (!pm1_block(fadt, flen, FADT_X_PM1B_CNT, FADT_PM1B_CNT, &out->pm1b_cnt))
        out->pm1b_cnt.address = 0;
    if (!gas_usable(&out->pm1a_cnt) || out->pm1a_cnt.space == ACPI_SPACE_PCI ||
        (out->pm1b_cnt.address != 0 &&
         (!gas_usable(&out->pm1b_cnt) || out->pm1b_cnt.space == ACPI_SPACE_PCI))) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "PM1 control block in address space %u, width %u",
                     out->pm1a_cnt.space, out->pm1a_cnt.bit_width);
        return;
    }
    uint32_t smi = rd32(fadt + FADT_SMI_CMD);
    if (smi != 0 && smi <= 0xffff && fadt[FADT_ACPI_ENABLE] != 0) {
        out->smi_cmd = (uint16_t)smi;
        out->acpi_enable = fadt[FADT_ACPI_ENABLE];
    }

    uint64_t dsdt = flen >= FADT_X_DSDT + 8 ? rd64(fadt + FADT_X_DSDT) : 0;
    if (dsdt == 0)
        dsdt = rd32(fadt + FADT_DSDT);
    uint32_t dlen;
    const uint8_t *d = table_get(map, ctx, dsdt, "DSDT", "DSDT", &dlen, why);
    if (d == NULL)
        return;
    const char *s5 =
        acpi_find_s5(d + HEADER_BYTES, dlen - HEADER_BYTES, &out->slp_typ_a, &out->slp_typ_b);
    if (s5 != NULL)
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "%s", s5);
}

static void read_reset(const uint8_t *fadt, uint32_t flen, struct acpi_power *out)
{
    char *why = out->reset_problem;
    if (flen < FADT_RESET_VALUE + 1) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "FADT revision %u has no reset register",
                     out->fadt_revision);
        return;
    }
    if (!(rd32(fadt + FADT_FLAGS) & FADT_RESET_REG_SUP)) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE, "FADT says the reset register is not supported");
        return;
    }
    if (!gas_at(fadt, flen, FADT_RESET_REG, &out->reset_reg) || out->reset_reg.bit_width != 8 ||
        !gas_usable(&out->reset_reg)) {
        fmt_snprintf(why, ACPI_PROBLEM_SIZE,
                     "reset register unusable (space %u, width %u, address 0x%llx)",
                     out->reset_reg.space, out->reset_reg.bit_width,
                     (unsigned long long)out->reset_reg.address);
        return;
    }
    out->reset_value = fadt[FADT_RESET_VALUE];
}

void acpi_power_read(uint64_t rsdp, acpi_map_fn map, void *ctx, struct acpi_power *out)
{
    *out = (struct acpi_power){0};
    uint32_t rlen;
    unsigned entry_bytes;
    const uint8_t *root = root_table(rsdp, map, ctx, &rlen, &entry_bytes, out->problem);
    if (root == NULL)
        goto unusable;

    uint32_t count = (rlen - HEADER_BYTES) / entry_bytes;
    if (count > XSDT_MAX_TABLES)
        count = XSDT_MAX_TABLES;
    const uint8_t *fadt = NULL;
    uint32_t flen = 0;
    for (uint32_t i = 0; i < count && fadt == NULL; i++) {
        const uint8_t *e = root + HEADER_BYTES + (size_t)i * entry_bytes;
        uint64_t phys = entry_bytes == 8 ? rd64(e) : rd32(e);
        const uint8_t *h = phys != 0 ? map(ctx, phys, HEADER_BYTES) : NULL;
        if (h == NULL || !sig_is(h, "FACP", 4))
            continue;
        fadt = table_get(map, ctx, phys, "FACP", "FADT", &flen, out->problem);
        if (fadt == NULL)
            goto unusable;
    }
    if (fadt == NULL) {
        fmt_snprintf(out->problem, ACPI_PROBLEM_SIZE, "no FADT among %u tables", count);
        goto unusable;
    }
    if (flen < FADT_DSDT + 4) {
        fmt_snprintf(out->problem, ACPI_PROBLEM_SIZE, "FADT too short (%u bytes)", flen);
        goto unusable;
    }
    out->fadt_revision = fadt[8];
    read_s5(fadt, flen, map, ctx, out);
    read_reset(fadt, flen, out);
    return;

unusable:
    fmt_snprintf(out->s5_problem, ACPI_PROBLEM_SIZE, "%s", out->problem);
    fmt_snprintf(out->reset_problem, ACPI_PROBLEM_SIZE, "%s", out->problem);
}
