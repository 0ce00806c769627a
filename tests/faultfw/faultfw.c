/*
 * faultfw: entry point of the fault-injecting firmware layer (test only).
 *
 * Placed as \EFI\BOOT\BOOTX64.EFI in a test image, with Canopy's real stage 1
 * at \canopy\stage1.efi and the scenario in \canopy\fault.cfg (one line:
 * "<name> [number]"). It prepares the scenario, loads stage 1 from the same
 * volume, patches the firmware's boot-services table (only calls coming from
 * stage 1's image are affected) and starts it. When stage 1 returns, it prints
 * `faultfw: stage 1 returned <status>`, restores the table and returns the
 * status to the boot manager.
 *
 * Invariant: the table is patched only while stage 1 runs; every path back to
 * the firmware restores it.
 */
#include <canopy/fmt.h>
#include <canopy/x86/uart.h>

#include "faultfw.h"

#define STAGE1_PATH L"\\canopy\\stage1.efi"
#define CONFIG_PATH L"\\canopy\\fault.cfg"
#define LINE_MAX    200

EFI_SYSTEM_TABLE *ff_st;

/* ---- console ----------------------------------------------------------------- */

struct line {
    char buf[LINE_MAX];
    size_t len;
};

static void line_sink(void *ctx, const char *s, size_t n)
{
    struct line *l = ctx;
    for (size_t i = 0; i < n && l->len + 1 < LINE_MAX; i++)
        l->buf[l->len++] = s[i];
}

void ff_printf(const char *fmt, ...)
{
    struct line l = {.len = 0};
    va_list ap;
    va_start(ap, fmt);
    fmt_vformat(line_sink, &l, fmt, ap);
    va_end(ap);
    CHAR16 wide[LINE_MAX * 2 + 1];
    size_t n = 0;
    for (size_t i = 0; i < l.len; i++) {
        if (l.buf[i] == '\n')
            wide[n++] = '\r';
        wide[n++] = (CHAR16)(unsigned char)l.buf[i];
    }
    wide[n] = 0;
    ff_st->ConOut->OutputString(ff_st->ConOut, wide);
}

void ff_serial_printf(const char *fmt, ...)
{
    struct line l = {.len = 0};
    va_list ap;
    va_start(ap, fmt);
    fmt_vformat(line_sink, &l, fmt, ap);
    va_end(ap);
    /* COM1 as the firmware left it; a bounded wait for the transmitter per byte. */
    for (size_t i = 0; i < l.len; i++) {
        for (int spin = 0; spin < 100000 && !(arch_inb(UART_COM1 + UART_LSR) & UART_LSR_THR_EMPTY);
             spin++)
            ;
        arch_outb(UART_COM1 + UART_DATA, (uint8_t)l.buf[i]);
    }
}

const char *ff_status_name(EFI_STATUS s)
{
    switch (s) {
    case EFI_SUCCESS:
        return "EFI_SUCCESS";
    case EFI_LOAD_ERROR:
        return "EFI_LOAD_ERROR";
    case EFI_INVALID_PARAMETER:
        return "EFI_INVALID_PARAMETER";
    case EFI_UNSUPPORTED:
        return "EFI_UNSUPPORTED";
    case EFI_BUFFER_TOO_SMALL:
        return "EFI_BUFFER_TOO_SMALL";
    case EFI_DEVICE_ERROR:
        return "EFI_DEVICE_ERROR";
    case EFI_OUT_OF_RESOURCES:
        return "EFI_OUT_OF_RESOURCES";
    case EFI_NOT_FOUND:
        return "EFI_NOT_FOUND";
    case EFI_ABORTED:
        return "EFI_ABORTED";
    case EFI_SECURITY_VIOLATION:
        return "EFI_SECURITY_VIOLATION";
    case EFI_INCOMPATIBLE_VERSION:
        return "EFI_INCOMPATIBLE_VERSION";
    default:
        return "an unknown status";
    }
}

/* ---- the scenario file --------------------------------------------------------- */

static const struct {
    const char *name;
    enum ff_scenario scenario;
} scenarios[] = {
    {"none", FF_NONE},
    {"ebs-stale-key", FF_EBS_STALE_KEY},
    {"ebs-fail-always", FF_EBS_FAIL_ALWAYS},
    {"ebs-stale-grow", FF_EBS_STALE_GROW},
    {"desc-size", FF_DESC_SIZE},
    {"unsorted", FF_UNSORTED},
    {"reversed", FF_REVERSED},
    {"overlap", FF_OVERLAP},
    {"many-descriptors", FF_MANY_DESCRIPTORS},
    {"alloc-fail-nth", FF_ALLOC_FAIL_NTH},
    {"alloc-fail-after", FF_ALLOC_FAIL_AFTER},
    {"pages-fail-over", FF_PAGES_FAIL_OVER},
    {"pool-fail-over", FF_POOL_FAIL_OVER},
    {"no-gop", FF_NO_GOP},
    {"no-rng", FF_NO_RNG},
    {"high-memory", FF_HIGH_MEMORY},
    {"memattr-xp", FF_MEMATTR_XP},
    {"above-maxphyaddr", FF_ABOVE_MAXPHYADDR},
    {"broken-handlers", FF_BROKEN_HANDLERS},
    {"free-guard", FF_FREE_GUARD},
    {"address-refuse", FF_ADDRESS_REFUSE},
};

static bool word_eq(const char *a, size_t alen, const char *b)
{
    size_t i = 0;
    for (; i < alen; i++)
        if (b[i] != a[i])
            return false;
    return b[i] == 0;
}

/* Parses "<name> [decimal]"; false with *why set on anything else. */
static bool parse_config(const char *text, size_t len, struct ff_config *cfg, const char **why)
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t'))
        i++;
    size_t start = i;
    while (i < len && text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n')
        i++;
    size_t name_len = i - start;
    cfg->name = NULL;
    for (size_t k = 0; k < sizeof(scenarios) / sizeof(scenarios[0]); k++) {
        if (word_eq(text + start, name_len, scenarios[k].name)) {
            cfg->scenario = scenarios[k].scenario;
            cfg->name = scenarios[k].name;
        }
    }
    if (!cfg->name) {
        *why = "unknown scenario name";
        return false;
    }
    while (i < len && (text[i] == ' ' || text[i] == '\t'))
        i++;
    cfg->arg = 0;
    for (; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
        if (cfg->arg > (UINT64_MAX - 9) / 10) {
            *why = "number too large";
            return false;
        }
        cfg->arg = cfg->arg * 10 + (uint64_t)(text[i] - '0');
    }
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    if (i != len) {
        *why = "trailing text after the number";
        return false;
    }
    return true;
}

static EFI_STATUS open_root(EFI_HANDLE device, EFI_FILE_HANDLE *root)
{
    EFI_GUID fs_guid = EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID;
    EFI_FILE_IO_INTERFACE *fs = NULL;
    EFI_STATUS s = ff_st->BootServices->HandleProtocol(device, &fs_guid, (void **)&fs);
    if (EFI_ERROR(s))
        return s;
    return fs->OpenVolume(fs, root);
}

static EFI_STATUS read_config(EFI_HANDLE device, struct ff_config *cfg)
{
    static char text[256];
    EFI_FILE_HANDLE root, f;
    EFI_STATUS s = open_root(device, &root);
    if (EFI_ERROR(s))
        return s;
    s = root->Open(root, &f, CONFIG_PATH, EFI_FILE_MODE_READ, 0);
    if (EFI_ERROR(s)) {
        root->Close(root);
        return s;
    }
    UINTN len = sizeof(text);
    s = f->Read(f, &len, text);
    f->Close(f);
    root->Close(root);
    if (EFI_ERROR(s))
        return s;
    const char *why = NULL;
    if (len == sizeof(text) || !parse_config(text, len, cfg, &why)) {
        ff_printf("faultfw: fault.cfg: %s\n", why ? why : "longer than 255 bytes");
        return EFI_INVALID_PARAMETER;
    }
    return EFI_SUCCESS;
}

/* ---- loading stage 1 ----------------------------------------------------------- */

static UINTN node_len(const EFI_DEVICE_PATH *n)
{
    return (UINTN)n->Length[0] | ((UINTN)n->Length[1] << 8);
}

/* The device's path followed by a file-path node for `file`, in pool memory. */
static EFI_STATUS file_device_path(EFI_HANDLE device, const CHAR16 *file, EFI_DEVICE_PATH **out)
{
    EFI_GUID dp_guid = EFI_DEVICE_PATH_PROTOCOL_GUID;
    EFI_DEVICE_PATH *dev;
    EFI_STATUS s = ff_st->BootServices->HandleProtocol(device, &dp_guid, (void **)&dev);
    if (EFI_ERROR(s))
        return s;
    UINTN dev_len = 0;
    for (const EFI_DEVICE_PATH *n = dev; !(n->Type == 0x7f && n->SubType == 0xff);
         n = (const EFI_DEVICE_PATH *)((const uint8_t *)n + node_len(n))) {
        if (node_len(n) < 4)
            return EFI_INVALID_PARAMETER;
        dev_len += node_len(n);
    }
    UINTN name_bytes = 0;
    while (file[name_bytes / 2])
        name_bytes += 2;
    name_bytes += 2;
    UINTN file_len = 4 + name_bytes;
    uint8_t *p;
    s = ff_st->BootServices->AllocatePool(EfiLoaderData, dev_len + file_len + 4, (void **)&p);
    if (EFI_ERROR(s))
        return s;
    __builtin_memcpy(p, dev, dev_len);
    uint8_t *f = p + dev_len;
    f[0] = 4; /* media device path */
    f[1] = 4; /* file path */
    f[2] = (uint8_t)file_len;
    f[3] = (uint8_t)(file_len >> 8);
    __builtin_memcpy(f + 4, file, name_bytes);
    uint8_t *end = f + file_len;
    end[0] = 0x7f;
    end[1] = 0xff;
    end[2] = 4;
    end[3] = 0;
    *out = (EFI_DEVICE_PATH *)p;
    return EFI_SUCCESS;
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    ff_st = st;
    EFI_BOOT_SERVICES *bs = st->BootServices;
    bs->SetWatchdogTimer(0, 0, 0, NULL);
    ff_printf("faultfw: fault-injecting firmware layer\n");

    EFI_GUID li_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
    EFI_LOADED_IMAGE *self;
    EFI_STATUS s = bs->HandleProtocol(image, &li_guid, (void **)&self);
    if (EFI_ERROR(s)) {
        ff_printf("faultfw: no loaded-image protocol: %s\n", ff_status_name(s));
        return s;
    }
    struct ff_config cfg = {.scenario = FF_NONE, .name = "none"};
    s = read_config(self->DeviceHandle, &cfg);
    if (EFI_ERROR(s)) {
        ff_printf("faultfw: cannot read \\canopy\\fault.cfg: %s\n", ff_status_name(s));
        return s;
    }
    ff_printf("faultfw: scenario %s %llu\n", cfg.name, (unsigned long long)cfg.arg);

    s = hooks_prepare(&cfg);
    if (EFI_ERROR(s)) {
        ff_printf("faultfw: cannot prepare the scenario: %s\n", ff_status_name(s));
        return s;
    }

    EFI_DEVICE_PATH *path;
    s = file_device_path(self->DeviceHandle, STAGE1_PATH, &path);
    if (EFI_ERROR(s)) {
        ff_printf("faultfw: no device path for stage 1: %s\n", ff_status_name(s));
        return s;
    }
    EFI_HANDLE child;
    s = bs->LoadImage(FALSE, image, path, NULL, 0, &child);
    bs->FreePool(path);
    if (EFI_ERROR(s)) {
        ff_printf("faultfw: cannot load \\canopy\\stage1.efi: %s\n", ff_status_name(s));
        return s;
    }
    EFI_LOADED_IMAGE *s1;
    s = bs->HandleProtocol(child, &li_guid, (void **)&s1);
    if (EFI_ERROR(s)) {
        ff_printf("faultfw: stage 1 has no loaded-image protocol: %s\n", ff_status_name(s));
        bs->UnloadImage(child);
        return s;
    }
    uint64_t lo = (uint64_t)(UINTN)s1->ImageBase, hi = lo + s1->ImageSize;
    ff_printf("faultfw: stage 1 loaded at 0x%llx-0x%llx; starting it\n", (unsigned long long)lo,
              (unsigned long long)hi);

    hooks_install(bs, lo, hi);
    UINTN exit_size = 0;
    CHAR16 *exit_data = NULL;
    s = bs->StartImage(child, &exit_size, &exit_data);
    hooks_remove(bs);
    hooks_report();
    ff_printf("faultfw: stage 1 returned %s\n", ff_status_name(s));
    if (exit_data)
        bs->FreePool(exit_data);
    return s;
}
