/*
 * gop: the framebuffer, from a Graphics Output Protocol with a linear
 * framebuffer. fw_framebuffer picks and describes the mode the kernel gets;
 * fw_framebuffer_for_reports only describes the current one, for the
 * post-mortem screen (fbtext.c). Both use the one GOP choose_gop() takes.
 *
 *   every handle with a GOP (LocateHandleBuffer), in the firmware's order
 *     skipped: no linear mode at all (blit only: virtio-gpu, or EDK2's
 *              console splitter when it drives more than one display)
 *     1st: a console device's: a device path and EFI_CONSOLE_OUT_DEVICE_GUID
 *     2nd: any physical device's: a device path
 *     3rd: any other (a handle without a device path: a virtual console)
 *   the first of the best rank wins, as in Linux's EFI stub (docs/stage1.md)
 *
 * Called by main.c (gather_platform) and fault.c (fw_fault_init).
 */
#include "fw_efi.h"

/* EDK2's gEfiConsoleOutDeviceGuid: on each handle that is part of ConOut. */
#define CONSOLE_OUT_DEVICE_GUID                                                                    \
    {                                                                                              \
        0xd3b36f2c, 0xd551, 0x11d4,                                                                \
        {                                                                                          \
            0x9a, 0x46, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d                                         \
        }                                                                                          \
    }

static uint32_t mask_top_bit(uint32_t m)
{
    return m ? 32 - (uint32_t)__builtin_clz(m) : 0;
}

static enum fw_status describe_mode(EFI_GRAPHICS_OUTPUT_PROTOCOL *gop,
                                    struct canopy_framebuffer *fb, const char **note);
static bool mode_is_linear(const EFI_GRAPHICS_OUTPUT_MODE_INFORMATION *info);
static bool pick_mode(EFI_GRAPHICS_OUTPUT_PROTOCOL *gop, uint32_t width, uint32_t height,
                      UINT32 *out);

/* How good a GOP is for Canopy's console; the higher the better. */
enum gop_rank {
    GOP_UNUSABLE, /* no Mode, or no mode with a linear framebuffer */
    GOP_VIRTUAL,  /* no device path: a console splitter or another virtual output */
    GOP_PHYSICAL, /* a device path: a real adapter's output */
    GOP_CONSOLE,  /* ... that the firmware made part of its console (ConOut) */
};

static bool handle_has(EFI_HANDLE h, EFI_GUID guid)
{
    void *iface = NULL;
    return !EFI_ERROR(fw_bs->HandleProtocol(h, &guid, &iface)) && iface;
}

static enum gop_rank gop_rank(EFI_HANDLE h, EFI_GRAPHICS_OUTPUT_PROTOCOL *gop)
{
    UINT32 mode;
    if (!gop || !gop->Mode || !gop->Mode->Info)
        return GOP_UNUSABLE;
    if (!mode_is_linear(gop->Mode->Info) && !pick_mode(gop, 0, 0, &mode))
        return GOP_UNUSABLE;
    if (!handle_has(h, (EFI_GUID)EFI_DEVICE_PATH_PROTOCOL_GUID))
        return GOP_VIRTUAL;
    if (!handle_has(h, (EFI_GUID)CONSOLE_OUT_DEVICE_GUID))
        return GOP_PHYSICAL;
    return GOP_CONSOLE;
}

/* The choice, made once: the post-mortem screen and the kernel's are the same. */
static struct {
    bool made;
    EFI_GRAPHICS_OUTPUT_PROTOCOL *gop; /* NULL: none usable */
    unsigned count;                    /* handles with a GOP */
} choice;

/*
 * The GOP Canopy draws on: the best ranked (above), the first of its rank in
 * the firmware's handle order. NULL if no GOP has a linear mode; choice.count
 * then tells "none at all" from "blit only".
 */
static EFI_GRAPHICS_OUTPUT_PROTOCOL *choose_gop(void)
{
    if (choice.made)
        return choice.gop;
    choice.made = true;
    EFI_GUID guid = EFI_GRAPHICS_OUTPUT_PROTOCOL_GUID;
    EFI_HANDLE *handles = NULL;
    UINTN n = 0;
    if (EFI_ERROR(fw_bs->LocateHandleBuffer(ByProtocol, &guid, NULL, &n, &handles)) || !handles)
        return NULL;
    enum gop_rank best = GOP_UNUSABLE;
    for (UINTN i = 0; i < n; i++) {
        EFI_GRAPHICS_OUTPUT_PROTOCOL *gop = NULL;
        if (EFI_ERROR(fw_bs->HandleProtocol(handles[i], &guid, (void **)&gop)) || !gop)
            continue;
        choice.count++;
        enum gop_rank r = gop_rank(handles[i], gop);
        if (r > best) {
            best = r;
            choice.gop = gop;
        }
    }
    fw_bs->FreePool(handles);
    return choice.gop;
}

/* A mode the console can draw on: a linear framebuffer with known pixels. */
static bool mode_is_linear(const EFI_GRAPHICS_OUTPUT_MODE_INFORMATION *info)
{
    return info->PixelFormat == PixelRedGreenBlueReserved8BitPerColor ||
           info->PixelFormat == PixelBlueGreenRedReserved8BitPerColor ||
           info->PixelFormat == PixelBitMask;
}

#define GOP_MODES_MAX  1024
#define FB_PREFERRED_W 1920 /* the largest mode picked on our own: plenty for a text console */
#define FB_PREFERRED_H 1200

/*
 * Picks a mode: exactly width x height when asked (0, 0: none asked), else the
 * largest linear mode within FB_PREFERRED_W x FB_PREFERRED_H, else the smallest
 * linear one. Returns false if no mode qualifies.
 */
static bool pick_mode(EFI_GRAPHICS_OUTPUT_PROTOCOL *gop, uint32_t width, uint32_t height,
                      UINT32 *out)
{
    bool found = false, found_fit = false;
    uint64_t best_area = 0;
    /* Real adapters offer tens of modes; the cap bounds the loop whatever MaxMode says. */
    for (UINT32 m = 0; m < gop->Mode->MaxMode && m < GOP_MODES_MAX; m++) {
        EFI_GRAPHICS_OUTPUT_MODE_INFORMATION *info;
        UINTN size;
        if (EFI_ERROR(gop->QueryMode(gop, m, &size, &info)))
            continue;
        uint32_t w = info->HorizontalResolution, h = info->VerticalResolution;
        bool linear = mode_is_linear(info);
        fw_bs->FreePool(info);
        if (!linear)
            continue;
        if (width && height) {
            if (w == width && h == height) {
                *out = m;
                return true;
            }
            continue;
        }
        uint64_t area = (uint64_t)w * h;
        bool fits = w <= FB_PREFERRED_W && h <= FB_PREFERRED_H;
        if ((fits && (!found_fit || area > best_area)) ||
            (!fits && !found_fit && (!found || area < best_area))) {
            *out = m;
            best_area = area;
            found = true;
            found_fit = found_fit || fits;
        }
    }
    return found;
}

enum fw_status fw_framebuffer(uint32_t width, uint32_t height, struct canopy_framebuffer *fb,
                              const char **note)
{
    *fb = (struct canopy_framebuffer){.format = CANOPY_FB_NONE};
    *note = NULL;
    EFI_GRAPHICS_OUTPUT_PROTOCOL *gop = choose_gop();
    if (!gop && choice.count == 0)
        return FW_NOT_FOUND;
    if (!gop) {
        *note = choice.count == 1 ? "the graphics output has no linear framebuffer (blit only)"
                                  : "no graphics output has a linear framebuffer (blit only)";
        fbtext_use(fb);
        return FW_UNSUPPORTED;
    }
    /*
     * The firmware's current mode is kept unless the config asks for another
     * or the current one cannot be drawn on (blit only).
     */
    UINT32 mode;
    if (width && height) {
        if (!pick_mode(gop, width, height, &mode) || EFI_ERROR(gop->SetMode(gop, mode)))
            *note = "the configured resolution is not offered; keeping the current mode";
    } else if (!mode_is_linear(gop->Mode->Info) && pick_mode(gop, 0, 0, &mode)) {
        gop->SetMode(gop, mode);
    }
    enum fw_status st = describe_mode(gop, fb, note);
    fbtext_use(fb);
    return st;
}

void fw_framebuffer_for_reports(void)
{
    struct canopy_framebuffer fb = {.format = CANOPY_FB_NONE};
    const char *note;
    EFI_GRAPHICS_OUTPUT_PROTOCOL *gop = choose_gop();
    if (gop)
        (void)describe_mode(gop, &fb, &note);
    fbtext_use(&fb);
}

static void set_pixel_format(struct canopy_framebuffer *fb, enum canopy_fb_format format,
                             uint32_t red, uint32_t green, uint32_t blue, uint32_t reserved)
{
    fb->format = format;
    fb->red_mask = red;
    fb->green_mask = green;
    fb->blue_mask = blue;
    fb->reserved_mask = reserved;
}

/* Fills *fb from the GOP's current mode; FW_UNSUPPORTED (and *note) if it cannot be drawn on. */
static enum fw_status describe_mode(EFI_GRAPHICS_OUTPUT_PROTOCOL *gop,
                                    struct canopy_framebuffer *fb, const char **note)
{
    const EFI_GRAPHICS_OUTPUT_MODE_INFORMATION *info = gop->Mode->Info;
    uint32_t bpp = 32;
    switch (info->PixelFormat) {
    case PixelRedGreenBlueReserved8BitPerColor:
        set_pixel_format(fb, CANOPY_FB_RGBX, 0x0000ff, 0x00ff00, 0xff0000, 0xff000000);
        break;
    case PixelBlueGreenRedReserved8BitPerColor:
        set_pixel_format(fb, CANOPY_FB_BGRX, 0xff0000, 0x00ff00, 0x0000ff, 0xff000000);
        break;
    case PixelBitMask: {
        const EFI_PIXEL_BITMASK *m = &info->PixelInformation;
        set_pixel_format(fb, CANOPY_FB_BITMASK, m->RedMask, m->GreenMask, m->BlueMask,
                         m->ReservedMask);
        bpp = (mask_top_bit(m->RedMask | m->GreenMask | m->BlueMask | m->ReservedMask) + 7) & ~7u;
        break;
    }
    default:
        *fb = (struct canopy_framebuffer){.format = CANOPY_FB_NONE};
        *note = "the display has no linear framebuffer (blit only)";
        return FW_UNSUPPORTED;
    }
    if (bpp == 0 || gop->Mode->FrameBufferBase == 0 || info->PixelsPerScanLine == 0) {
        fb->format = CANOPY_FB_NONE;
        *note = "the display reports an unusable framebuffer";
        return FW_UNSUPPORTED;
    }
    fb->base = gop->Mode->FrameBufferBase;
    fb->size_bytes = gop->Mode->FrameBufferSize;
    fb->width = info->HorizontalResolution;
    fb->height = info->VerticalResolution;
    fb->bpp = bpp;
    fb->pitch_bytes = info->PixelsPerScanLine * (bpp / 8);
    /* Some firmware reports a size of 0 or too small; what the mode needs is what gets mapped. */
    uint64_t need = (uint64_t)fb->pitch_bytes * fb->height;
    if (fb->size_bytes < need)
        fb->size_bytes = need;
    return FW_OK;
}
