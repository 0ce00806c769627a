/*
 * Host tests for lib/src/sha256.c against what nobody here wrote: the
 * examples of FIPS 180-2 and NIST's CAVP short messages, the one-million-'a'
 * and the 1 GiB messages NIST publishes, and coreutils' sha256sum on random
 * inputs of every length around the block and padding edges and on every
 * file of the fuzzers' committed corpora.
 *
 * usage: klib_sha256_test FUZZERS_TXT
 *   FUZZERS_TXT  the build's fuzzers.txt ("NAME BINARY CORPUS" lines)
 */
#define _POSIX_C_SOURCE 200809L /* popen, mkstemp, mkdtemp, strdup */
#include <canopy/sha256.h>

#include <canopy/check.h>
#include <canopy/rng.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

unsigned check_passed, check_failed;

static void hex_of(const void *data, size_t len, char hex[SHA256_HEX_CHARS + 1])
{
    struct sha256_digest d;
    sha256_digest(data, len, &d);
    sha256_to_hex(&d, hex);
}

/* Bytes from a hex string (an even number of digits). */
static size_t unhex(const char *s, uint8_t *out)
{
    size_t n = strlen(s) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(s + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void test_sha256_matches_fips_examples(void)
{
    static const struct {
        const char *msg, *want;
    } cases[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        /* 448 bits: the length no longer fits the first block's padding. */
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrl"
         "m"
         "nopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char got[SHA256_HEX_CHARS + 1];
        hex_of(cases[i].msg, strlen(cases[i].msg), got);
        CHECKF(strcmp(got, cases[i].want) == 0, "\"%s\": got %s want %s", cases[i].msg, got,
               cases[i].want);
    }
}

/* The first messages of NIST CAVP's SHA256ShortMsg.rsp (byte-oriented). */
static void test_sha256_matches_cavp_short_messages(void)
{
    static const struct {
        const char *msg, *want;
    } cases[] = {
        {"d3", "28969cdfa74a12c82f3bad960b0b000aca2ac329deea5c2328ebc6f2ba9802c1"},
        {"11af", "5ca7133fa735326081558ac312c620eeca9970d1e70a4b95533d956f072d1f98"},
        {"b4190e", "dff2e73091f6c05e528896c4c831b9448653dc2ff043528f6769437bc7b975c2"},
        {"74ba2521", "b16aa56be3880d18cd41e68384cf1ec8c17680c45a02b1575dc1518923ae8b0e"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t msg[64];
        size_t n = unhex(cases[i].msg, msg);
        char got[SHA256_HEX_CHARS + 1];
        hex_of(msg, n, got);
        CHECKF(strcmp(got, cases[i].want) == 0, "Msg=%s: got %s want %s", cases[i].msg, got,
               cases[i].want);
    }
}

/* One million 'a' (FIPS 180-2 appendix B.3), in one call and in uneven pieces. */
static void test_sha256_million_a_in_any_pieces(void)
{
    static const char want[] = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    size_t len = 1000000;
    char *a = malloc(len);
    REQUIRE(a != NULL);
    memset(a, 'a', len);
    char got[SHA256_HEX_CHARS + 1];
    hex_of(a, len, got);
    CHECKF(strcmp(got, want) == 0, "one call: got %s", got);

    static const size_t pieces[] = {1, 3, 55, 56, 63, 64, 65, 127, 4096, 99991};
    for (size_t p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++) {
        struct sha256 h;
        struct sha256_digest d;
        sha256_init(&h);
        for (size_t off = 0; off < len; off += pieces[p])
            sha256_update(&h, a + off, len - off < pieces[p] ? len - off : pieces[p]);
        sha256_final(&h, &d);
        sha256_to_hex(&d, got);
        CHECKF(strcmp(got, want) == 0, "pieces of %zu: got %s", pieces[p], got);
    }
    free(a);
}

/*
 * NIST's extremely long message (the SHA-3 competition's test set): 2^24
 * copies of a 64-byte string, 1 GiB, whose bit length needs more than 32 bits.
 */
static void test_sha256_one_gib_message(void)
{
    static const char unit[] = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno";
    _Static_assert(sizeof(unit) - 1 == 64, "one block");
    enum { COPIES_PER_CALL = 1024 };
    char *chunk = malloc(64 * COPIES_PER_CALL);
    REQUIRE(chunk != NULL);
    for (size_t i = 0; i < COPIES_PER_CALL; i++)
        memcpy(chunk + 64 * i, unit, 64);
    struct sha256 h;
    struct sha256_digest d;
    char got[SHA256_HEX_CHARS + 1];
    sha256_init(&h);
    for (size_t i = 0; i < (1u << 24) / COPIES_PER_CALL; i++)
        sha256_update(&h, chunk, 64 * COPIES_PER_CALL);
    sha256_final(&h, &d);
    sha256_to_hex(&d, got);
    CHECKF(strcmp(got, "50e72a0e26442fe2552dc3938ac58658228c0cbfb1d2ca872ae435266fcd055e") == 0,
           "got %s", got);
    free(chunk);
}

static void test_sha256_hex_round_trip_and_rejects(void)
{
    static const char hex[] = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
    struct sha256_digest d, abc, untouched;
    sha256_digest("abc", 3, &abc);
    CHECK(sha256_from_hex(hex, 64, &d));
    CHECK(sha256_equal(&d, &abc));
    char back[SHA256_HEX_CHARS + 1];
    sha256_to_hex(&d, back);
    CHECK(strcmp(back, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);

    memset(&untouched, 0x5a, sizeof(untouched));
    d = untouched;
    CHECK(!sha256_from_hex(hex, 63, &d));
    CHECK(!sha256_from_hex(hex, 0, &d));
    char bad[65];
    memcpy(bad, hex, 65);
    bad[17] = 'g';
    CHECK(!sha256_from_hex(bad, 64, &d));
    bad[17] = ' ';
    CHECK(!sha256_from_hex(bad, 64, &d));
    CHECK(memcmp(&d, &untouched, sizeof(d)) == 0);

    /* Equality looks at every byte: a difference in the last one counts. */
    struct sha256_digest e = abc;
    e.bytes[SHA256_DIGEST_BYTES - 1] ^= 1;
    CHECK(!sha256_equal(&abc, &e));
    e = abc;
    e.bytes[0] ^= 0x80;
    CHECK(!sha256_equal(&abc, &e));
}

/* ---- against sha256sum ----------------------------------------------------------- */

struct file_list {
    char **paths;
    size_t count, cap;
};

static void list_add(struct file_list *l, const char *path)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->paths = realloc(l->paths, l->cap * sizeof(*l->paths));
    }
    l->paths[l->count++] = strdup(path);
}

static void list_free(struct file_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->paths[i]);
    free(l->paths);
}

/* Every regular file under dir, recursively. */
static void list_files(const char *dir, struct file_list *out)
{
    DIR *d = opendir(dir);
    if (!d) {
        CHECKF(0, "cannot open %s", dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            list_files(path, out);
        else if (S_ISREG(st.st_mode))
            list_add(out, path);
    }
    closedir(d);
}

static uint8_t *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

/*
 * Runs sha256sum once over every file of the list and compares each line
 * with this implementation's hash of the same file. Returns the files compared.
 */
static size_t compare_with_sha256sum(const struct file_list *files)
{
    char listname[] = "/tmp/canopy-sha256-list.XXXXXX";
    int fd = mkstemp(listname);
    CHECKF(fd >= 0, "mkstemp");
    if (fd < 0)
        return 0;
    FILE *lf = fdopen(fd, "w");
    for (size_t i = 0; i < files->count; i++)
        fprintf(lf, "%s%c", files->paths[i], 0);
    fclose(lf);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "xargs -0 sha256sum < %s", listname);
    FILE *p = popen(cmd, "r");
    CHECKF(p != NULL, "cannot run sha256sum");
    if (!p)
        return 0;
    size_t compared = 0;
    char line[8192];
    for (size_t i = 0; i < files->count && fgets(line, sizeof(line), p); i++) {
        size_t len;
        uint8_t *data = read_whole(files->paths[i], &len);
        CHECKF(data != NULL, "cannot read %s", files->paths[i]);
        if (!data)
            continue;
        char mine[SHA256_HEX_CHARS + 1];
        hex_of(data, len, mine);
        free(data);
        /* sha256sum's line: 64 hex digits, two characters, the name as given. */
        CHECKF(
            strncmp(line, mine, SHA256_HEX_CHARS) == 0 &&
                strncmp(line + SHA256_HEX_CHARS + 2, files->paths[i], strlen(files->paths[i])) == 0,
            "%s (%zu bytes): sha256sum says %.64s, sha256.c %s", files->paths[i], len, line, mine);
        compared++;
    }
    int status = pclose(p);
    CHECKF(status == 0, "sha256sum exited with %d", status);
    unlink(listname);
    return compared;
}

/* Random bytes of every length from 0 to 300 and 64 longer ones, each a file. */
static void test_sha256_matches_sha256sum_on_random_inputs(void)
{
    char dir[] = "/tmp/canopy-sha256-random.XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    uint64_t seed = 0x5ea256;
    struct file_list files = {0};
    for (size_t i = 0; i < 301 + 64; i++) {
        size_t len = i <= 300 ? i : (size_t)(splitmix64_next(&seed) % 200000);
        uint8_t *buf = malloc(len + 1);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)splitmix64_next(&seed);
        char path[256];
        snprintf(path, sizeof(path), "%s/%03zu-%zu.bin", dir, i, len);
        FILE *f = fopen(path, "wb");
        REQUIRE(f != NULL);
        fwrite(buf, 1, len, f);
        fclose(f);
        free(buf);
        list_add(&files, path);
    }
    size_t compared = compare_with_sha256sum(&files);
    CHECKF(compared == files.count, "compared %zu of %zu files", compared, files.count);
    for (size_t i = 0; i < files.count; i++)
        unlink(files.paths[i]);
    rmdir(dir);
    list_free(&files);
}

/* Every file of every corpus fuzzers.txt names (at least one corpus, at least one file each). */
static void test_sha256_matches_sha256sum_on_fuzz_corpora(const char *fuzzers_txt)
{
    FILE *f = fopen(fuzzers_txt, "r");
    REQUIREF(f != NULL, "cannot open %s", fuzzers_txt);
    struct file_list files = {0};
    size_t corpora = 0;
    char name[256], binary[4096], corpus[4096];
    while (fscanf(f, "%255s %4095s %4095s", name, binary, corpus) == 3) {
        size_t before = files.count;
        list_files(corpus, &files);
        CHECKF(files.count > before, "corpus of %s (%s) has no files", name, corpus);
        corpora++;
    }
    fclose(f);
    CHECKF(corpora >= 1, "%s names no corpus", fuzzers_txt);
    size_t compared = compare_with_sha256sum(&files);
    CHECKF(compared == files.count && compared > 0, "compared %zu of %zu files", compared,
           files.count);
    printf("sha256sum agrees on %zu files of %zu fuzz corpora\n", compared, corpora);
    list_free(&files);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FUZZERS_TXT\n", argv[0]);
        return 2;
    }
    RUN(test_sha256_matches_fips_examples);
    RUN(test_sha256_matches_cavp_short_messages);
    RUN(test_sha256_million_a_in_any_pieces);
    RUN(test_sha256_one_gib_message);
    RUN(test_sha256_hex_round_trip_and_rejects);
    RUN(test_sha256_matches_sha256sum_on_random_inputs);
    RUN_ARGS(test_sha256_matches_sha256sum_on_fuzz_corpora, argv[1]);
    return check_finish();
}
