/*
 * file: reads a whole file from the volume stage 1 was loaded from
 * (LoadedImage->DeviceHandle, Simple File System protocol).
 *
 * The size comes from EFI_FILE_INFO; Read is called until that many bytes
 * arrived (firmware may return fewer per call), with a bound on the calls and
 * a short read treated as an I/O error. The data goes into LoaderData pages:
 * the kernel file is still read from after ExitBootServices.
 */
#include <canopy/page.h>

#include "fw_efi.h"

#define READ_CHUNK (1024 * 1024)

/* Converts a '/'-separated ASCII path into a '\'-separated UCS-2 one. */
static bool path_to_efi(const char *path, CHAR16 *out, size_t cap)
{
    size_t n = 0;
    for (; path[n]; n++) {
        if (n + 1 >= cap)
            return false;
        out[n] = path[n] == '/' ? (CHAR16)'\\' : (CHAR16)(unsigned char)path[n];
    }
    out[n] = 0;
    return true;
}

static EFI_STATUS open_root(EFI_FILE_HANDLE *root)
{
    EFI_GUID loaded_image_guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
    EFI_GUID fs_guid = EFI_SIMPLE_FILE_SYSTEM_PROTOCOL_GUID;
    EFI_LOADED_IMAGE *image = NULL;
    EFI_FILE_IO_INTERFACE *fs = NULL;
    EFI_STATUS s = fw_bs->HandleProtocol(fw_image, &loaded_image_guid, (void **)&image);
    if (EFI_ERROR(s))
        return s;
    s = fw_bs->HandleProtocol(image->DeviceHandle, &fs_guid, (void **)&fs);
    if (EFI_ERROR(s))
        return s;
    return fs->OpenVolume(fs, root);
}

/* Reads the file's EFI_FILE_INFO into pool memory. */
static EFI_STATUS file_info(EFI_FILE_HANDLE f, EFI_FILE_INFO **out)
{
    EFI_GUID info_guid = EFI_FILE_INFO_ID;
    UINTN size = 0;
    EFI_STATUS s = f->GetInfo(f, &info_guid, &size, NULL);
    if (s != EFI_BUFFER_TOO_SMALL)
        return EFI_ERROR(s) ? s : EFI_DEVICE_ERROR;
    s = fw_bs->AllocatePool(EfiLoaderData, size, (void **)out);
    if (EFI_ERROR(s))
        return s;
    s = f->GetInfo(f, &info_guid, &size, *out);
    if (EFI_ERROR(s))
        fw_bs->FreePool(*out);
    return s;
}

enum fw_status fw_read_file(const char *path, uint64_t max_bytes, void **data, uint64_t *size)
{
    CHAR16 wpath[260];
    EFI_FILE_HANDLE root = NULL, f = NULL;
    EFI_FILE_INFO *info = NULL;
    EFI_PHYSICAL_ADDRESS buf = 0;
    UINTN pages = 0;
    enum fw_status ret;

    if (!path_to_efi(path, wpath, sizeof(wpath) / sizeof(wpath[0])))
        return FW_NOT_FOUND;
    EFI_STATUS s = open_root(&root);
    if (EFI_ERROR(s))
        return s == EFI_UNSUPPORTED ? FW_UNSUPPORTED : fw_from_efi(s);
    s = root->Open(root, &f, wpath, EFI_FILE_MODE_READ, 0);
    if (EFI_ERROR(s)) {
        ret = fw_from_efi(s);
        goto close_root;
    }
    s = file_info(f, &info);
    if (EFI_ERROR(s)) {
        ret = fw_from_efi(s);
        goto close_file;
    }
    uint64_t total = info->FileSize;
    if (info->Attribute & EFI_FILE_DIRECTORY) {
        ret = FW_IS_DIR;
        goto free_info;
    }
    if (total == 0) {
        ret = FW_EMPTY;
        goto free_info;
    }
    if (total > max_bytes) {
        ret = FW_TOO_BIG;
        goto free_info;
    }
    pages = pages_for_bytes(total);
    s = fw_bs->AllocatePages(AllocateAnyPages, EfiLoaderData, pages, &buf);
    if (EFI_ERROR(s)) {
        ret = FW_NOMEM;
        goto free_info;
    }
    uint64_t done = 0;
    /* A file of N bytes needs N / READ_CHUNK calls; a few more allow for short reads. */
    for (uint64_t calls = 0; done < total && calls < total / READ_CHUNK + 64; calls++) {
        UINTN asked = total - done < READ_CHUNK ? total - done : READ_CHUNK;
        UINTN want = asked;
        s = f->Read(f, &want, (void *)(UINTN)(buf + done));
        /* A driver claiming more than was asked has written past the request: an I/O error. */
        if (EFI_ERROR(s) || want == 0 || want > asked)
            break;
        done += want;
    }
    if (done != total) {
        fw_bs->FreePages(buf, pages);
        ret = EFI_ERROR(s) ? fw_from_efi(s) : FW_IO;
        if (ret == FW_OK)
            ret = FW_IO;
        goto free_info;
    }
    *data = (void *)(UINTN)buf;
    *size = total;
    ret = FW_OK;
free_info:
    fw_bs->FreePool(info);
close_file:
    f->Close(f);
close_root:
    root->Close(root);
    return ret;
}

void fw_free_file(void *data, uint64_t size)
{
    if (data)
        fw_bs->FreePages((EFI_PHYSICAL_ADDRESS)(UINTN)data, pages_for_bytes(size));
}
