/*
 * fault: stage 1's post-mortem and its guard against an endless reset loop.
 * From efi_main until the kernel loads its own IDT, a CPU exception prints
 * the vector, error code, RIP, CR2 and the boot phase on serial and on the
 * framebuffer, is recorded in a non-volatile UEFI variable, and the machine
 * resets a few seconds later. The record (include/canopy/faultrec.h) also
 * counts the failed boots in a row: the next stage 1 run prints it, keeps
 * it (the kernel deletes it at `canopy: ready`), and after
 * CANOPY_FAILED_BOOTS_MAX of them stops before the kernel. docs/stage1.md
 * has the reasons.
 *
 *   struct fault_page (LoaderCode, in the image's .bss, page aligned)
 *     0     idt[256]      copy of the firmware's IDT; vectors 0-31 -> fault_stubs
 *     4096  fw_cr3        the firmware's page-table root
 *     4104  rescue_rsp    top of rescue_stack (identity address)
 *     4112  handler       fault_report (identity address)
 *     4120  depth         exceptions being reported (a second one triple-faults)
 *     ...   gdt           a copy of the firmware's GDT, for after the CR3 switch
 *           tables        GDT and IDT pseudo-descriptors through the HHDM, then
 *                         the same through their identity addresses
 *
 * While boot services run, vectors 32-255 stay the firmware's, so its timer
 * and other interrupts work as before; fw_fault_fini puts the firmware's own
 * IDT back before stage 1 returns to it. The stubs live on the trampoline
 * page (trampoline.S), which both the firmware's tables and the kernel's map
 * at the same address. The kernel's tables map this page at its identity
 * address too (until the kernel drops it), so the trampoline loads its GDT
 * and IDT before CR3 changes and no instruction of the switch runs with a
 * table unmapped; right after it, it loads them again through the HHDM. The
 * stubs switch back to fw_cr3, so the report below always runs under the
 * firmware's tables.
 *
 * Called by entry.c (fw_fault_init/fini), main.c (fw_fault_phase,
 * fw_fault_previous, fw_fault_failed_boots), exit.c (fault_before_exit), the
 * stubs (fault_report) and reset.c (fault_record_fatal).
 */
#include <canopy/faultrec.h>
#include <canopy/fmt.h>
#include <canopy/page.h>
#include <canopy/phase.h>

#include <canopy/x86/cpu.h>
#include <canopy/x86/desc.h>

#include "fw_efi.h"

#define GDT_COPY_MAX   1024
#define RESCUE_STACK   (32 * 1024)
#define RESET_DELAY_US 5000000
#define KEY_WAIT_S     60 /* the failed-boot stop waits this long for a key */

/*
 * EFI_RT_PROPERTIES_TABLE (UEFI 2.8, 4.6): which runtime services still work
 * after ExitBootServices. gnu-efi's headers predate it.
 */
#define RT_PROPERTIES_TABLE_GUID                                                                   \
    {                                                                                              \
        0xeb66918a, 0x7eef, 0x402a,                                                                \
        {                                                                                          \
            0x84, 0x2e, 0x93, 0x1d, 0x21, 0xc3, 0x8a, 0xe9                                         \
        }                                                                                          \
    }
#define RT_SUPPORTED_SET_VARIABLE 0x0040u

/* One pseudo-descriptor per 16 bytes, as the trampoline reads them. */
struct table_slot {
    struct arch_pseudo_desc d;
    uint8_t pad[6];
};

struct fault_page {
    struct arch_idt_gate idt[256];
    uint64_t fw_cr3;
    uint64_t rescue_rsp;
    uint64_t handler;
    uint64_t depth;
    uint8_t gdt[GDT_COPY_MAX];
    struct table_slot tables[4]; /* what the trampoline loads: GDT, IDT (HHDM; identity) */
};
/* trampoline.S reads these offsets. */
_Static_assert(offsetof(struct fault_page, fw_cr3) == 4096, "fault page layout");
_Static_assert(offsetof(struct fault_page, rescue_rsp) == 4104, "fault page layout");
_Static_assert(offsetof(struct fault_page, handler) == 4112, "fault page layout");
_Static_assert(offsetof(struct fault_page, depth) == 4120, "fault page layout");
_Static_assert(sizeof(struct table_slot) == 16, "trampoline.S loads the tables at 16-byte steps");

_Static_assert(sizeof(struct canopy_guid) == sizeof(EFI_GUID), "the vendor GUID is an EFI_GUID");

extern const char fault_stubs[];

static struct fault_page page __attribute__((aligned(PAGE_SIZE)));
static uint8_t rescue_stack[RESCUE_STACK] __attribute__((aligned(16)));

static struct {
    bool installed;
    struct arch_pseudo_desc fw_idtr;
    unsigned phase;
    uint64_t tsc_hz;
    uint64_t image_base, image_size;
    bool rt_set_variable;  /* SetVariable works after ExitBootServices (RT properties) */
    bool record_kept;      /* a previous boot's record is still in the store */
    uint32_t failed_boots; /* in a row before this boot, from that record */
} flt = {.rt_set_variable = true};

static CHAR16 record_name[] = CANOPY_FAULT_RECORD_NAME;
static CHAR16 phase_var_name[] = CANOPY_PHASE_VAR_NAME;

/* Called by the stubs with the firmware's tables live; never returns. */
_Noreturn void fault_report(uint64_t vector, uint64_t error, uint64_t rip, uint64_t cr2,
                            uint64_t cr3);

static EFI_GUID vendor_guid(void)
{
    EFI_GUID g = CANOPY_VENDOR_GUID_INIT;
    return g;
}

/*
 * Our IDT, before anything else can fault: vectors 0-31 are ours at once,
 * and the firmware's 32-255 are copied with interrupts off, so neither a
 * broken firmware handler nor an unreadable firmware IDT goes unreported.
 */
static void install_idt(void)
{
    struct arch_pseudo_desc idtr;
    uint16_t cs;
    uint64_t rflags = arch_read_rflags();
    arch_cli();
    arch_sidt(&idtr);
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    flt.fw_idtr = idtr;
    for (unsigned v = 0; v < 32; v++)
        page.idt[v] = arch_idt_gate((uint64_t)(uintptr_t)fault_stubs + 16 * v, cs, 0);
    page.fw_cr3 = arch_read_cr3();
    page.rescue_rsp = (uint64_t)(uintptr_t)(rescue_stack + RESCUE_STACK);
    page.handler = (uint64_t)(uintptr_t)fault_report;
    page.depth = 0;
    struct arch_pseudo_desc ours = {.limit = sizeof(page.idt) - 1,
                                    .base = (uint64_t)(uintptr_t)page.idt};
    arch_lidt(&ours);
    flt.installed = true;

    /* The firmware's other vectors (as many as its IDT has): its timer keeps working. */
    const struct arch_idt_gate *fw = (const struct arch_idt_gate *)(uintptr_t)idtr.base;
    unsigned fw_count = ((unsigned)idtr.limit + 1) / sizeof(struct arch_idt_gate);
    for (unsigned v = 32; v < 256; v++)
        page.idt[v] = v < fw_count ? fw[v] : (struct arch_idt_gate){0};
    if (rflags & ARCH_RFLAGS_IF)
        arch_sti();
}

void fw_fault_init(void)
{
    install_idt();

    /* The GDT for after the switch: a copy when it fits (it always has on real firmware). */
    struct arch_pseudo_desc gdtr;
    arch_sgdt(&gdtr);
    uint64_t gdt_bytes = (uint64_t)gdtr.limit + 1;
    if (gdt_bytes <= GDT_COPY_MAX) {
        __builtin_memcpy(page.gdt, (const void *)(uintptr_t)gdtr.base, gdt_bytes);
        page.tables[0].d =
            (struct arch_pseudo_desc){.limit = gdtr.limit, .base = (uint64_t)(uintptr_t)page.gdt};
    } else {
        page.tables[0].d = gdtr; /* rebased like the rest in fw_fault_tables */
    }
    page.tables[1].d = (struct arch_pseudo_desc){.limit = sizeof(page.idt) - 1,
                                                 .base = (uint64_t)(uintptr_t)page.idt};

    /* What makes a report better: where the image is, the TSC rate, a screen. */
    EFI_GUID li_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
    EFI_LOADED_IMAGE *li = NULL;
    if (!EFI_ERROR(fw_bs->HandleProtocol(fw_image, &li_guid, (void **)&li)) && li) {
        flt.image_base = (uint64_t)(uintptr_t)li->ImageBase;
        flt.image_size = li->ImageSize;
    }
    flt.tsc_hz = fw_tsc_hz();
    fw_trampoline_exec();
    fw_framebuffer_for_reports();
}

void fw_fault_fini(void)
{
    fw_trampoline_exec_undo();
    if (!flt.installed)
        return;
    arch_lidt(&flt.fw_idtr);
    flt.installed = false;
}

uint64_t fw_fault_tables(uint64_t hhdm)
{
    page.tables[2] = page.tables[0];
    page.tables[3] = page.tables[1];
    page.tables[0].d.base += hhdm;
    page.tables[1].d.base += hhdm;
    return (uint64_t)(uintptr_t)page.tables;
}

void fw_fault_tables_pages(uint64_t *base, uint64_t *bytes)
{
    uint64_t start = (uint64_t)(uintptr_t)&page;
    *base = page_down(start);
    *bytes = page_up(start + sizeof(page)) - *base;
}

/*
 * Writes (rec != NULL) or deletes the record: with boot services, or after
 * them through the runtime services in physical mode, unless the firmware
 * says SetVariable does not work then. NULL if it worked, else why not.
 */
static const char *record_store(const struct canopy_fault_record *rec)
{
    if (!fw_bs && !flt.rt_set_variable)
        return "this firmware keeps no variables after ExitBootServices";
    EFI_GUID g = vendor_guid();
    UINT32 attrs =
        EFI_VARIABLE_NON_VOLATILE | EFI_VARIABLE_BOOTSERVICE_ACCESS | EFI_VARIABLE_RUNTIME_ACCESS;
    EFI_STATUS s =
        fw_rt->SetVariable(record_name, &g, rec ? attrs : 0, rec ? sizeof(*rec) : 0, (void *)rec);
    if (s == EFI_SUCCESS || (!rec && s == EFI_NOT_FOUND))
        return NULL;
    return s == EFI_UNSUPPORTED        ? "SetVariable is not supported"
           : s == EFI_WRITE_PROTECTED  ? "the variable store is write-protected"
           : s == EFI_OUT_OF_RESOURCES ? "the variable store is full"
                                       : "SetVariable failed";
}

/* A new record for this boot: one more failed boot than the previous record counted. */
static struct canopy_fault_record record_new(uint32_t kind)
{
    uint32_t n = flt.failed_boots < UINT32_MAX ? flt.failed_boots + 1 : UINT32_MAX;
    return (struct canopy_fault_record){.magic = CANOPY_FAULT_RECORD_MAGIC,
                                        .version = CANOPY_FAULT_RECORD_VERSION,
                                        .kind = kind,
                                        .phase = flt.phase,
                                        .failed_boots = n};
}

void fw_fault_phase(enum canopy_phase p, bool inject)
{
    flt.phase = p;
    if (fw_bs) {
        EFI_GUID g = vendor_guid();
        uint32_t v = p;
        fw_rt->SetVariable(phase_var_name, &g,
                           EFI_VARIABLE_BOOTSERVICE_ACCESS | EFI_VARIABLE_RUNTIME_ACCESS, sizeof(v),
                           &v);
    }
    if (inject) {
        /* debug_fault=: a read of an address no table maps (page fault); else an invalid opcode. */
        (void)*(volatile const uint64_t *)(uintptr_t)FW_FAULT_INJECT_VA;
        __asm__ volatile("ud2");
    }
}

uint64_t fw_image_base(void)
{
    return flt.image_base;
}

__attribute__((noinline)) void fw_smash_stack(void)
{
    volatile uint8_t buf[16];
    volatile uint8_t *p = buf;

    __asm__ volatile("" : "+r"(p)); /* hides p's bounds: an overrun at run time only */
    for (size_t i = 0; i < 64; i++)
        p[i] = 0xa5;
    (void)buf[0];
}

static const char *vector_name(uint64_t v)
{
    static const char *const names[32] = {
        [0] = "divide error",
        [1] = "debug",
        [2] = "non-maskable interrupt",
        [3] = "breakpoint",
        [4] = "overflow",
        [5] = "bound range exceeded",
        [6] = "invalid opcode",
        [7] = "device not available",
        [8] = "double fault",
        [9] = "coprocessor segment overrun",
        [10] = "invalid TSS",
        [11] = "segment not present",
        [12] = "stack-segment fault",
        [13] = "general protection",
        [14] = "page fault",
        [16] = "x87 floating-point error",
        [17] = "alignment check",
        [18] = "machine check",
        [19] = "SIMD floating-point error",
        [20] = "virtualization exception",
        [21] = "control protection",
        [28] = "hypervisor injection",
        [29] = "VMM communication",
        [30] = "security exception",
    };
    return v < 32 && names[v] ? names[v] : "reserved";
}

/* One report line on the screen and on serial (no firmware call). */
PRINTF_LIKE(1, 2) static void say(const char *fmt, ...)
{
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    size_t n = fmt_vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    /* The screen first: once a line is on serial, it is on the screen too. */
    fbtext_line(line);
    serial_write(line, n);
    serial_write("\n", 1);
}

/* The RIP, and where it lies when that is stage 1's own image. */
static void format_rip(char *buf, size_t cap, uint64_t rip)
{
    if (flt.image_size && rip - flt.image_base < flt.image_size)
        fmt_snprintf(buf, cap, "0x%llx (BOOTX64.EFI+0x%llx)", (unsigned long long)rip,
                     (unsigned long long)(rip - flt.image_base));
    else
        fmt_snprintf(buf, cap, "0x%llx", (unsigned long long)rip);
}

_Noreturn void fault_report(uint64_t vector, uint64_t error, uint64_t rip, uint64_t cr2,
                            uint64_t cr3)
{
    char at[64];
    format_rip(at, sizeof(at), rip);
    serial_init(); /* whatever the firmware or the config left: the report goes out */
    say("canopy: CPU exception in phase %s: vector %llu (%s), error code 0x%llx",
        phase_name(flt.phase), (unsigned long long)vector, vector_name(vector),
        (unsigned long long)error);
    say("canopy: RIP %s, CR2 0x%llx, CR3 0x%llx", at, (unsigned long long)cr2,
        (unsigned long long)cr3);
    struct canopy_fault_record rec = record_new(CANOPY_FAULT_RECORD_EXCEPTION);
    rec.vector = (uint32_t)vector;
    rec.error_code = error;
    rec.rip = rip;
    rec.cr2 = cr2;
    const char *why = record_store(&rec);
    if (why)
        say("canopy: not recorded (%s); resetting in %u seconds", why, RESET_DELAY_US / 1000000);
    else
        say("canopy: recorded for the next boot; resetting in %u seconds",
            RESET_DELAY_US / 1000000);
    cpu_delay_us(flt.tsc_hz, RESET_DELAY_US);
    fw_reset();
}

const char *fault_record_fatal(const char *message)
{
    struct canopy_fault_record rec = record_new(CANOPY_FAULT_RECORD_FATAL);
    fmt_snprintf(rec.message, sizeof(rec.message), "%s", message);
    return record_store(&rec);
}

/* Reads which runtime services the firmware keeps after ExitBootServices. */
static void read_rt_properties(void)
{
    EFI_GUID want = RT_PROPERTIES_TABLE_GUID;
    for (UINTN i = 0; i < fw_st->NumberOfTableEntries; i++) {
        const EFI_CONFIGURATION_TABLE *t = &fw_st->ConfigurationTable[i];
        if (__builtin_memcmp(&t->VendorGuid, &want, sizeof(want)) != 0 || !t->VendorTable)
            continue;
        /* UINT16 Version, UINT16 Length, UINT32 RuntimeServicesSupported */
        const uint8_t *p = t->VendorTable;
        uint16_t length = (uint16_t)(p[2] | p[3] << 8);
        uint32_t supported;
        if (length < 8)
            return; /* malformed: assume what the specification promises without it */
        __builtin_memcpy(&supported, p + 4, sizeof(supported));
        flt.rt_set_variable = (supported & RT_SUPPORTED_SET_VARIABLE) != 0;
        return;
    }
}

/* The record's one line ("phase X: what happened"). */
static void show_record(const char *lead, struct canopy_fault_record *rec)
{
    if (rec->kind == CANOPY_FAULT_RECORD_EXCEPTION) {
        con_printf("canopy: %s phase %s: vector %u (%s), error code 0x%llx, at RIP 0x%llx, "
                   "CR2 0x%llx\n",
                   lead, phase_name(rec->phase), rec->vector, vector_name(rec->vector),
                   (unsigned long long)rec->error_code, (unsigned long long)rec->rip,
                   (unsigned long long)rec->cr2);
        return;
    }
    rec->message[sizeof(rec->message) - 1] = '\0';
    for (char *c = rec->message; *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            *c = '?';
    con_printf("canopy: %s phase %s: %s\n", lead, phase_name(rec->phase), rec->message);
}

/*
 * The guard's stop: the record, then a key (clears the count) or the
 * timeout (keeps it, so an unattended machine stops here again instead of
 * failing again). Either way back to the firmware's boot manager.
 */
static enum fw_status stop_before_kernel(struct canopy_fault_record *rec)
{
    con_printf("canopy: %u failed boots in a row; not starting the kernel\n", rec->failed_boots);
    show_record("the last one stopped at", rec);
    con_printf("canopy: press a key to clear the count (the next boot tries the kernel again), "
               "or wait %u s to keep it; then back to the firmware\n",
               KEY_WAIT_S);
    if (!con_wait_key((uint64_t)KEY_WAIT_S * 1000000)) {
        con_printf("canopy: no key; the count stays; back to the firmware\n");
        return FW_FAILED;
    }
    const char *why = record_store(NULL);
    if (why)
        con_printf("canopy: a key; the count cannot be cleared (%s); back to the firmware\n", why);
    else
        con_printf("canopy: a key; the count is cleared; back to the firmware\n");
    return FW_FAILED;
}

enum fw_status fw_fault_previous(void)
{
    read_rt_properties();
    if (!flt.rt_set_variable)
        con_printf("canopy: this firmware keeps no variables after ExitBootServices: a failure "
                   "after it leaves no record, and failed boots there are not counted\n");

    EFI_GUID g = vendor_guid();
    struct canopy_fault_record rec;
    UINTN size = sizeof(rec);
    UINT32 attrs;
    EFI_STATUS s = fw_rt->GetVariable(record_name, &g, &attrs, &size, &rec);
    if (s == EFI_NOT_FOUND)
        return FW_OK;
    if (EFI_ERROR(s) || size != sizeof(rec) || rec.magic != CANOPY_FAULT_RECORD_MAGIC ||
        rec.version != CANOPY_FAULT_RECORD_VERSION || rec.failed_boots == 0) {
        /* Deleted, so a bad one does not stick. */
        const char *why = record_store(NULL);
        con_printf("canopy: the previous boot left an unreadable fault record; %s%s\n",
                   why ? "cannot clear it: " : "cleared", why ? why : "");
        return FW_OK;
    }
    flt.record_kept = true;
    flt.failed_boots = rec.failed_boots;
    if (rec.failed_boots >= CANOPY_FAILED_BOOTS_MAX)
        return stop_before_kernel(&rec);
    show_record("the previous boot stopped at", &rec);
    return FW_OK;
}

void fault_before_exit(void)
{
    if (!flt.record_kept || flt.rt_set_variable)
        return;
    /*
     * The kernel cannot delete it on this firmware, and a failure after the
     * exit could not be recorded anyway: the count ends with this boot.
     */
    const char *why = record_store(NULL);
    if (why)
        con_printf("canopy: cannot clear the failed-boot count before ExitBootServices (%s)\n",
                   why);
    flt.record_kept = why != NULL;
    flt.failed_boots = 0;
}

uint32_t fw_fault_failed_boots(void)
{
    return flt.record_kept ? flt.failed_boots : 0;
}
