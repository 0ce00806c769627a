/*
 * acpi_test: host tests of kernel/dev/acpi.c over a fake physical memory.
 *
 * The tables are laid out in a 64 KiB buffer standing in for physical
 * memory; the map function grants only ranges inside it, so a table that
 * points or extends outside is "not mapped" and ASan catches any read the
 * parser makes beyond what it was granted. The good layout copies what QEMU's
 * q35 machine provides (FADT revision 3, PM1a at port 0x604, reset register
 * at port 0xcf9, \_S5 = {0, 0, 0, 0}); each test breaks one thing.
 *
 * Usage: acpi_test. Prints "N passed, M failed".
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/check.h>
#include <kernel/acpi.h>

unsigned check_passed, check_failed;

#define MEM_BYTES 65536u
#define RSDP_AT   0x100u
#define XSDT_AT   0x1000u
#define RSDT_AT   0x1800u
#define FADT_AT   0x2000u
#define DSDT_AT   0x3000u
#define OTHER_AT  0x2800u

static uint8_t mem[MEM_BYTES];

static const void *map(void *ctx, uint64_t phys, uint64_t len)
{
    (void)ctx;
    if (phys > MEM_BYTES || len > MEM_BYTES - phys)
        return NULL;
    return mem + phys;
}

static void put32(uint32_t at, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        mem[at + i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint32_t at, uint64_t v)
{
    put32(at, (uint32_t)v);
    put32(at + 4, (uint32_t)(v >> 32));
}

static void fix_checksum(uint32_t at, uint32_t len, uint32_t sum_at)
{
    mem[sum_at] = 0;
    uint8_t sum = 0;
    for (uint32_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + mem[at + i]);
    mem[sum_at] = (uint8_t)(0u - sum);
}

static void header(uint32_t at, const char *sig, uint32_t len, uint8_t rev)
{
    memcpy(mem + at, sig, 4);
    put32(at + 4, len);
    mem[at + 8] = rev;
    memcpy(mem + at + 10, "CANOPY", 6);
}

static void seal(uint32_t at)
{
    uint32_t len = (uint32_t)mem[at + 4] | (uint32_t)mem[at + 5] << 8 |
                   (uint32_t)mem[at + 6] << 16 | (uint32_t)mem[at + 7] << 24;
    fix_checksum(at, len, at + 9);
}

/* QEMU q35's DSDT tail: Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero }). */
static const uint8_t s5_qemu[] = {0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04, 0, 0, 0, 0};

static void write_dsdt(const uint8_t *aml, uint32_t aml_len)
{
    header(DSDT_AT, "DSDT", 36 + aml_len, 2);
    memcpy(mem + DSDT_AT + 36, aml, aml_len);
    seal(DSDT_AT);
}

static void write_fadt(uint32_t len, uint8_t rev)
{
    memset(mem + FADT_AT, 0, 276);
    header(FADT_AT, "FACP", len, rev);
    put32(FADT_AT + 40, DSDT_AT);
    put32(FADT_AT + 48, 0xb2);  /* SMI_CMD */
    mem[FADT_AT + 52] = 0x02;   /* ACPI_ENABLE */
    put32(FADT_AT + 64, 0x604); /* PM1a_CNT_BLK */
    mem[FADT_AT + 89] = 2;      /* PM1_CNT_LEN */
    if (len >= 129) {
        put32(FADT_AT + 112, 1u << 10); /* RESET_REG_SUP */
        mem[FADT_AT + 116] = ACPI_SPACE_IO;
        mem[FADT_AT + 117] = 8;
        put64(FADT_AT + 120, 0xcf9);
        mem[FADT_AT + 128] = 0x0f;
    }
    if (len >= 148)
        put64(FADT_AT + 140, DSDT_AT); /* X_DSDT */
    if (len >= 184) {
        mem[FADT_AT + 172] = ACPI_SPACE_IO; /* X_PM1a_CNT_BLK */
        mem[FADT_AT + 173] = 16;
        put64(FADT_AT + 176, 0x604);
    }
    seal(FADT_AT);
}

/* RSDP 2.0 -> XSDT -> {an unrelated table, FADT} -> DSDT with QEMU's \_S5. */
static void layout_good(void)
{
    memset(mem, 0, sizeof(mem));
    memcpy(mem + RSDP_AT, "RSD PTR ", 8);
    mem[RSDP_AT + 15] = 2;
    put32(RSDP_AT + 16, RSDT_AT);
    put32(RSDP_AT + 20, 36);
    put64(RSDP_AT + 24, XSDT_AT);
    fix_checksum(RSDP_AT, 20, RSDP_AT + 8);
    fix_checksum(RSDP_AT, 36, RSDP_AT + 32);

    header(OTHER_AT, "APIC", 44, 1);
    seal(OTHER_AT);
    header(XSDT_AT, "XSDT", 36 + 16, 1);
    put64(XSDT_AT + 36, OTHER_AT);
    put64(XSDT_AT + 44, FADT_AT);
    seal(XSDT_AT);
    header(RSDT_AT, "RSDT", 36 + 8, 1);
    put32(RSDT_AT + 36, OTHER_AT);
    put32(RSDT_AT + 40, FADT_AT);
    seal(RSDT_AT);

    write_fadt(244, 3);
    uint8_t aml[64] = {0x10, 0x05, '_', 'S', 'B', '_', 0x00}; /* some scope before it */
    memcpy(aml + 7, s5_qemu, sizeof(s5_qemu));
    write_dsdt(aml, 7 + sizeof(s5_qemu));
}

static struct acpi_power read_power(void)
{
    struct acpi_power p;
    acpi_power_read(RSDP_AT, map, NULL, &p);
    return p;
}

static void test_acpi_reads_qemu_like_tables(void)
{
    layout_good();
    struct acpi_power p = read_power();
    CHECK(p.problem[0] == '\0');
    CHECK(p.s5_problem[0] == '\0');
    CHECK(p.reset_problem[0] == '\0');
    CHECK(p.fadt_revision == 3);
    CHECK(p.pm1a_cnt.space == ACPI_SPACE_IO && p.pm1a_cnt.address == 0x604);
    CHECK(p.pm1a_cnt.bit_width == 16);
    CHECK(p.pm1b_cnt.address == 0);
    CHECK(p.slp_typ_a == 0 && p.slp_typ_b == 0);
    CHECK(p.smi_cmd == 0xb2 && p.acpi_enable == 0x02);
    CHECK(p.reset_reg.space == ACPI_SPACE_IO && p.reset_reg.address == 0xcf9);
    CHECK(p.reset_value == 0x0f);
}

static void test_acpi_uses_rsdt_before_acpi_2(void)
{
    layout_good();
    mem[RSDP_AT + 15] = 0;
    put64(XSDT_AT, 0); /* the XSDT must not be used: break its signature */
    fix_checksum(RSDP_AT, 20, RSDP_AT + 8);
    struct acpi_power p = read_power();
    CHECK(p.problem[0] == '\0');
    CHECK(p.s5_problem[0] == '\0');
}

static void test_acpi_rejects_bad_checksums(void)
{
    layout_good();
    mem[RSDP_AT + 8]++;
    struct acpi_power p = read_power();
    CHECK(strstr(p.problem, "RSDP") != NULL);
    CHECK(p.s5_problem[0] != '\0' && p.reset_problem[0] != '\0');

    layout_good();
    mem[RSDP_AT + 32]++; /* the extended checksum */
    p = read_power();
    CHECK(strstr(p.problem, "RSDP") != NULL && strstr(p.problem, "extended checksum") != NULL);

    layout_good();
    mem[XSDT_AT + 40]++;
    p = read_power();
    CHECK(strstr(p.problem, "XSDT") != NULL && strstr(p.problem, "checksum") != NULL);

    layout_good();
    mem[FADT_AT + 100]++;
    p = read_power();
    CHECK(strstr(p.problem, "FADT") != NULL && strstr(p.problem, "checksum") != NULL);

    /* A bad DSDT costs S5 only: the reset register is in the FADT. */
    layout_good();
    mem[DSDT_AT + 40]++;
    p = read_power();
    CHECK(p.problem[0] == '\0');
    CHECK(strstr(p.s5_problem, "DSDT") != NULL);
    CHECK(p.reset_problem[0] == '\0');
}

static void test_acpi_rejects_tables_outside_memory(void)
{
    layout_good();
    put32(FADT_AT + 4, MEM_BYTES); /* runs past the end of "physical memory" */
    struct acpi_power p = read_power();
    CHECK(strstr(p.problem, "not mapped") != NULL);

    layout_good();
    put32(XSDT_AT + 4, 20); /* shorter than a header */
    seal(XSDT_AT);
    p = read_power();
    CHECK(strstr(p.problem, "bad length") != NULL);

    layout_good();
    put64(XSDT_AT + 44, 0xfffffffffffff000ull); /* the FADT entry points nowhere */
    seal(XSDT_AT);
    p = read_power();
    CHECK(strstr(p.problem, "no FADT") != NULL);

    struct acpi_power none;
    acpi_power_read(0, map, NULL, &none);
    CHECK(strstr(none.problem, "no RSDP") != NULL);
}

static void test_acpi_old_fadt_has_no_reset_register(void)
{
    layout_good();
    write_fadt(116, 1);
    struct acpi_power p = read_power();
    CHECK(p.problem[0] == '\0');
    CHECK(p.s5_problem[0] == '\0' && p.pm1a_cnt.address == 0x604);
    CHECK(strstr(p.reset_problem, "no reset register") != NULL);

    layout_good();
    put32(FADT_AT + 112, 0); /* RESET_REG_SUP clear */
    seal(FADT_AT);
    p = read_power();
    CHECK(strstr(p.reset_problem, "not supported") != NULL);

    layout_good();
    mem[FADT_AT + 117] = 32; /* the reset register must be 8 bits wide */
    seal(FADT_AT);
    p = read_power();
    CHECK(strstr(p.reset_problem, "unusable") != NULL);
}

static void test_acpi_hardware_reduced_has_no_s5(void)
{
    layout_good();
    put32(FADT_AT + 112, (1u << 10) | (1u << 20));
    seal(FADT_AT);
    struct acpi_power p = read_power();
    CHECK(strstr(p.s5_problem, "hardware-reduced") != NULL);
    CHECK(p.reset_problem[0] == '\0');
}

static const char *s5(const uint8_t *aml, size_t len, uint8_t *a, uint8_t *b)
{
    /* A heap copy of exactly len bytes: ASan reports any read past it. */
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, aml, len);
    const char *why = acpi_find_s5(copy, len, a, b);
    free(copy);
    return why;
}

static void test_acpi_s5_encodings(void)
{
    uint8_t a = 9, b = 9;
    CHECK(s5(s5_qemu, sizeof(s5_qemu), &a, &b) == NULL && a == 0 && b == 0);

    const uint8_t bytes[] = {0x08, 0x5c, '_',  'S',  '5',  '_',  0x12, 0x08,
                             0x02, 0x0a, 0x05, 0x0a, 0x07, 0x00, 0x00};
    CHECK(s5(bytes, sizeof(bytes), &a, &b) == NULL && a == 5 && b == 7);

    /* One element: SLP_TYPa in bits 0-7, SLP_TYPb in bits 8-15. */
    const uint8_t one[] = {0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x01, 0x0b, 0x06, 0x03};
    CHECK(s5(one, sizeof(one), &a, &b) == NULL && a == 6 && b == 3);

    /* A two-byte PkgLength (lead 0x40 | low nibble, then bits 4-11). */
    uint8_t longpkg[80] = {0x08, '_', 'S', '5', '_', 0x12, 0x40 | 0x04, 0x04, 0x02, 0x01, 0x01};
    CHECK(s5(longpkg, sizeof(longpkg), &a, &b) == NULL && a == 1 && b == 1);

    /* The name in a string, not after a NameOp, is skipped; the real one is found. */
    const uint8_t str[] = {0x0d, '_', 'S', '5',  '_',  0x00, 0x08, '_',
                           'S',  '5', '_', 0x12, 0x04, 0x02, 0x01, 0x00};
    CHECK(s5(str, sizeof(str), &a, &b) == NULL && a == 1 && b == 0);
}

static void test_acpi_s5_rejects_malformed(void)
{
    uint8_t a, b;
    CHECK(s5((const uint8_t *)"", 0, &a, &b) != NULL);
    const uint8_t none[] = {0x08, '_', 'S', '4', '_', 0x12, 0x04, 0x02, 0x01, 0x00};
    CHECK(s5(none, sizeof(none), &a, &b) != NULL);
    const uint8_t big[] = {0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0a, 0x08, 0x00};
    CHECK(s5(big, sizeof(big), &a, &b) != NULL); /* SLP_TYP is 3 bits */
    const uint8_t method[] = {0x08, '_', 'S', '5', '_', 0x14, 0x04, 0x02, 0x01, 0x00};
    CHECK(s5(method, sizeof(method), &a, &b) != NULL); /* not a package */
    const uint8_t past[] = {0x08, '_', 'S', '5', '_', 0x12, 0x3f, 0x02, 0x01, 0x00};
    CHECK(s5(past, sizeof(past), &a, &b) != NULL); /* PkgLength beyond the stream */
    const uint8_t cut[] = {0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0x0c, 0x01};
    CHECK(s5(cut, sizeof(cut), &a, &b) != NULL); /* a DWord cut off by the package end */
    const uint8_t empty[] = {0x08, '_', 'S', '5', '_', 0x12, 0x02, 0x00};
    CHECK(s5(empty, sizeof(empty), &a, &b) != NULL);
    const uint8_t ref[] = {0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x02, 'A', 'B', 'C', 'D'};
    CHECK(s5(ref, sizeof(ref), &a, &b) != NULL); /* a name, not an integer */
}

/*
 * Random corruption of the good layout: whatever the bytes, the parser stays
 * inside what it was granted (ASan) and anything it reports usable is sane.
 */
static void test_acpi_survives_corruption(void)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    unsigned usable = 0;
    for (int round = 0; round < 20000; round++) {
        layout_good();
        int flips = 1 + round % 8;
        for (int k = 0; k < flips; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            static const uint32_t bases[] = {RSDP_AT, XSDT_AT, FADT_AT, DSDT_AT};
            uint32_t at = bases[(seed >> 33) % 4] + (uint32_t)((seed >> 40) % 256);
            mem[at] = (uint8_t)(seed >> 20);
        }
        if (round % 2) { /* keep checksums right half the time, to get past them */
            fix_checksum(RSDP_AT, 20, RSDP_AT + 8);
            fix_checksum(RSDP_AT, 36, RSDP_AT + 32);
            uint32_t tables[] = {XSDT_AT, FADT_AT, DSDT_AT};
            for (int t = 0; t < 3; t++) {
                uint32_t len = (uint32_t)mem[tables[t] + 4] | (uint32_t)mem[tables[t] + 5] << 8;
                if (len >= 36 && tables[t] + len <= MEM_BYTES && mem[tables[t] + 6] == 0 &&
                    mem[tables[t] + 7] == 0)
                    fix_checksum(tables[t], len, tables[t] + 9);
            }
        }
        struct acpi_power p = read_power();
        if (p.s5_problem[0] == '\0') {
            usable++;
            CHECK(p.slp_typ_a <= 7 && p.slp_typ_b <= 7);
            CHECK(p.pm1a_cnt.address != 0);
        }
        if (p.reset_problem[0] == '\0')
            CHECK(p.reset_reg.bit_width == 8 && p.reset_reg.address != 0);
    }
    CHECK(usable > 0); /* the corruption did not make every case trivially fail */
}

static void test_acpi_checksum(void)
{
    uint8_t b[4] = {1, 2, 3, 250};
    CHECK(acpi_checksum_ok(b, 4));
    b[0] = 2;
    CHECK(!acpi_checksum_ok(b, 4));
    CHECK(acpi_checksum_ok(b, 0));
}

int main(void)
{
    test_acpi_checksum();
    test_acpi_reads_qemu_like_tables();
    test_acpi_uses_rsdt_before_acpi_2();
    test_acpi_rejects_bad_checksums();
    test_acpi_rejects_tables_outside_memory();
    test_acpi_old_fadt_has_no_reset_register();
    test_acpi_hardware_reduced_has_no_s5();
    test_acpi_s5_encodings();
    test_acpi_s5_rejects_malformed();
    test_acpi_survives_corruption();
    return check_finish();
}
