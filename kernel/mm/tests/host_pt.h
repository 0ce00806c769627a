/*
 * host_pt: page tables built with vmm/pt over a host buffer, and the
 * captured output of the checks run on them, for the host tests of
 * kernel/mm (manifest_test.c, ptcheck_test.c).
 *
 * The buffer stands in for HOST_PT_FRAMES frames of physical memory at the
 * simulated address a test passes to host_pt_open(); the frames the tables
 * map are only numbers and are never touched. Every host_pt_new() starts
 * from all frames free.
 */
#ifndef KERNEL_MM_TESTS_HOST_PT_H
#define KERNEL_MM_TESTS_HOST_PT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy/page.h>
#include <vmm/pt.h>

#define HOST_PT_FRAMES 8192

static uint8_t *host_pt_mem;
static uint64_t host_pt_base;
static uint64_t host_pt_free[HOST_PT_FRAMES];
static unsigned host_pt_free_count;

static bool host_pt_alloc(void *ctx, uint64_t *phys)
{
    (void)ctx;
    if (host_pt_free_count == 0)
        return false;
    uint64_t f = host_pt_free[--host_pt_free_count];
    memset(host_pt_mem + f * PAGE_SIZE, 0, PAGE_SIZE);
    *phys = host_pt_base + f * PAGE_SIZE;
    return true;
}

static void host_pt_release(void *ctx, uint64_t phys)
{
    (void)ctx;
    host_pt_free[host_pt_free_count++] = (phys - host_pt_base) / PAGE_SIZE;
}

/* The buffer, at simulated physical address base; exits if the host has no memory for it. */
static void host_pt_open(uint64_t base)
{
    host_pt_base = base;
    host_pt_mem = aligned_alloc(PAGE_SIZE, (size_t)HOST_PT_FRAMES * PAGE_SIZE);
    if (!host_pt_mem) {
        fprintf(stderr, "host_pt: no memory for the table buffer\n");
        exit(2);
    }
}

static void host_pt_close(void)
{
    free(host_pt_mem);
    host_pt_mem = NULL;
}

/* A 4-level hierarchy over the buffer, every frame free; exits if pt_init fails. */
static void host_pt_new(struct pt *pt, bool nx)
{
    host_pt_free_count = 0;
    for (unsigned f = HOST_PT_FRAMES; f-- > 0;)
        host_pt_free[host_pt_free_count++] = f;
    struct pt_frames frames = {.alloc = host_pt_alloc, .free = host_pt_release};
    enum pt_status st = pt_init(pt, 4, nx, (uint64_t)(uintptr_t)host_pt_mem - host_pt_base, frames);
    if (st != PT_OK) {
        fprintf(stderr, "pt_init: %s\n", pt_status_str(st));
        exit(2);
    }
}

/* What the checks print (their sink), NUL-terminated; cut off past 64 KiB. */
static char out[1 << 16];
static size_t out_len;

static void sink(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    if (out_len + n < sizeof(out)) {
        memcpy(out + out_len, s, n);
        out_len += n;
        out[out_len] = 0;
    }
}

static void out_clear(void)
{
    out_len = 0;
    out[0] = 0;
}

#endif
