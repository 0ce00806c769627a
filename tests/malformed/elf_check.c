/*
 * elf_check: runs stage 1's kernel validator (elf_validate, the same code
 * stage 1 links) over files on the host and prints its verdict for each.
 *
 *   elf_check [--avail BYTES] FILE...
 *   => one line per file: FILE, a tab, the status's enum name (ELF_OK or
 *      ELF_ERR_...), a tab, the validator's reason sentence (for ELF_OK: the
 *      segment count and size of the plan)
 *   => exits 0 when every file was read and judged, whatever the verdicts;
 *      2 on a usage error or a file that cannot be read
 *   elf_check --statuses
 *   => every status the validator has, one enum name a line, in enum order
 *
 * It judges; it does not compare. tests/malformed/host_test.py runs it over
 * every kernel gen.py derives and checks each verdict against the case's
 * expected status and reason. --avail stands for the conventional memory
 * stage 1 finds in the firmware's map (default 512 MiB, the boot tests'
 * machine size).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/elf.h"

/* The enum's own spellings (ELF_OK, ELF_ERR_...), from elf.h's one list. */
static const char *const status_names[ELF_STATUS_COUNT] = {
#define STATUS_SPELLING(name, text) [name] = #name,
    ELF_STATUSES(STATUS_SPELLING)
#undef STATUS_SPELLING
};

static const char *status_name(enum elf_status st)
{
    if ((unsigned)st >= ELF_STATUS_COUNT)
        return "ELF_STATUS_UNNAMED";
    return status_names[st];
}

/* Reads a whole file into a malloc'd buffer (NULL and errno set on failure). */
static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        unsigned char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            errno = ENOMEM;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
        errno = EIO;
    }
    fclose(f);
    *size = len;
    return buf;
}

int main(int argc, char **argv)
{
    unsigned long long avail = 512ull << 20;
    int first = 1;
    if (argc == 2 && strcmp(argv[1], "--statuses") == 0) {
        for (int st = 0; st < ELF_STATUS_COUNT; st++)
            printf("%s\n", status_names[st]);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "--avail") == 0) {
        char *end;
        errno = 0;
        avail = strtoull(argv[2], &end, 0);
        if (errno || *end || end == argv[2]) {
            fprintf(stderr, "elf_check: --avail wants a number of bytes, not '%s'\n", argv[2]);
            return 2;
        }
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: elf_check [--avail BYTES] FILE... | elf_check --statuses\n");
        return 2;
    }
    /* Static: a plan is a few KiB, and one at a time is all this needs. */
    static struct elf_plan plan;
    for (int i = first; i < argc; i++) {
        size_t size = 0;
        unsigned char *data = read_file(argv[i], &size);
        if (!data) {
            fprintf(stderr, "elf_check: %s: %s\n", argv[i], strerror(errno));
            return 2;
        }
        struct elf_error err;
        enum elf_status st = elf_validate(data, size, avail, &plan, &err);
        if (st == ELF_OK)
            printf("%s\t%s\t%u segments, %llu pages, entry 0x%llx\n", argv[i], status_name(st),
                   plan.count, (unsigned long long)plan.total_pages,
                   (unsigned long long)plan.entry);
        else if (err.status != st)
            printf("%s\t%s\terr.status is %s\n", argv[i], status_name(st), status_name(err.status));
        else
            printf("%s\t%s\t%s\n", argv[i], status_name(st), err.reason);
        free(data);
    }
    return 0;
}
