/*
 * Tests for canopy/rsdp.h on RSDPs built in a buffer that stands for
 * physical memory: a good ACPI 1.0 and 2.0 RSDP, then one fault each, the
 * 2.0 extended checksum above all (stage 1 once checked only the first 20
 * bytes).
 */
#include <canopy/check.h>
#include <canopy/rsdp.h>
#include <string.h>

#include "klib_test.h"

#define MEM_BYTES 8192
#define AT        0x100 /* where the RSDP lies in mem */

static uint8_t mem[MEM_BYTES];

/* Bytes [phys, phys + len) of mem; NULL past its end (not mapped). */
static const void *map_mem(void *ctx, uint64_t phys, uint64_t len)
{
    (void)ctx;
    if (phys > MEM_BYTES || len > MEM_BYTES - phys)
        return NULL;
    return mem + phys;
}

static void fix(size_t at, size_t len, size_t sum_at)
{
    mem[sum_at] = 0;
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + mem[at + i]);
    mem[sum_at] = (uint8_t)-sum;
}

/* An RSDP of `revision` at AT, both checksums right (the extended one over len). */
static void build(uint8_t revision, uint32_t len)
{
    memset(mem, 0x5a, sizeof(mem));
    memcpy(mem + AT, "RSD PTR ", 8);
    memcpy(mem + AT + 9, "CANOPY", 6);
    mem[AT + 15] = revision;
    memset(mem + AT + 16, 0x11, 4);
    for (int i = 0; i < 4; i++)
        mem[AT + 20 + i] = (uint8_t)(len >> (8 * i));
    memset(mem + AT + 24, 0x22, 8);
    fix(AT, RSDP_V1_BYTES, AT + 8);
    if (revision >= 2 && len >= 33 && len <= MEM_BYTES - AT)
        fix(AT, len, AT + 32);
}

static const char *check_at(uint64_t phys)
{
    return rsdp_check(map_mem, NULL, phys);
}

static void test_rsdp_good_ones_pass(void)
{
    build(0, 0);
    CHECK(check_at(AT) == NULL);
    build(2, 36);
    CHECK(check_at(AT) == NULL);
    build(2, 100); /* a longer future revision: the extended checksum covers it all */
    CHECK(check_at(AT) == NULL);
    /* Revision 0 never reads past byte 20: its length field is not its to have. */
    build(0, 0);
    memset(mem + AT + 20, 0xff, 16);
    CHECK(check_at(AT) == NULL);
}

static void test_rsdp_each_fault_has_its_reason(void)
{
    build(2, 36);
    mem[AT + 32]++;
    CHECK(check_at(AT) != NULL && strcmp(check_at(AT), "bad extended checksum") == 0);
    build(2, 36);
    mem[AT + 30]++; /* the XSDT address: inside the extended range only */
    CHECK(check_at(AT) != NULL && strcmp(check_at(AT), "bad extended checksum") == 0);
    build(2, 36);
    mem[AT + 8]++;
    CHECK(check_at(AT) != NULL && strcmp(check_at(AT), "bad checksum") == 0);
    build(2, 36);
    mem[AT + 3] = 'X';
    CHECK(check_at(AT) != NULL && strcmp(check_at(AT), "bad signature") == 0);
    build(2, 35);
    CHECK(check_at(AT) != NULL && strcmp(check_at(AT), "ACPI 2.0 length out of range") == 0);
    build(2, RSDP_MAX_BYTES + 1);
    CHECK(check_at(AT) != NULL && strcmp(check_at(AT), "ACPI 2.0 length out of range") == 0);
    build(2, 36);
    CHECK(check_at(MEM_BYTES - 10) != NULL && strcmp(check_at(MEM_BYTES - 10), "not mapped") == 0);
    /* A 2.0 RSDP whose length runs past what can be read. */
    build(2, 36);
    memmove(mem + MEM_BYTES - 30, mem + AT, 20);
    memcpy(mem + MEM_BYTES - 30, "RSD PTR ", 8);
    CHECK(check_at(MEM_BYTES - 30) != NULL &&
          strcmp(check_at(MEM_BYTES - 30), "ACPI 2.0 part not mapped") == 0);
}

void rsdp_tests(void)
{
    RUN(test_rsdp_good_ones_pass);
    RUN(test_rsdp_each_fault_has_its_reason);
}
