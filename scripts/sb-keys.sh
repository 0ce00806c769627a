#!/usr/bin/env bash
# Creates a Secure Boot key set of your own for one machine: a platform key
# (PK), a key-exchange key (KEK) and a signature-database key (db), each as
#   NAME.key   the private key (PEM, unencrypted, mode 600: keep it offline)
#   NAME.crt   the certificate (PEM: what sbsign and the build take)
#   NAME.cer   the certificate (DER: what firmware setup screens and KeyTool take)
#   NAME.esl   an EFI signature list holding the certificate (efitools)
#   NAME.auth  the signature list signed for an authenticated variable update:
#              PK by itself, KEK by PK, db by KEK (efitools)
# and prints what to do next. It never overwrites: DIR must not hold any of them.
#
#   sb-keys.sh [--name TEXT] DIR
#
# Needs openssl, cert-to-efi-sig-list and sign-efi-sig-list (Debian's
# efitools); scripts/deps.sh installs both.
set -euo pipefail

readonly PROG=sb-keys
readonly DAYS=3650 # ten years: firmware does not check expiry, but tools print it

usage() {
    cat <<'EOF'
usage: sb-keys.sh [--name TEXT] DIR

Creates PK, KEK and db keys and certificates in DIR (created if missing) for
enrolling in a PC's firmware, and prints the next steps. TEXT goes into each
certificate's common name (default: "Canopy").
EOF
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

name=Canopy
dir=
while [ $# -gt 0 ]; do
    case "$1" in
    --name) name=${2:?--name wants a text}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
    *) [ -z "$dir" ] || { usage >&2; exit 2; }; dir=$1; shift ;;
    esac
done
[ -n "$dir" ] || { usage >&2; exit 2; }

for tool in openssl cert-to-efi-sig-list sign-efi-sig-list; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs it)"
done

mkdir -p "$dir"
for key in PK KEK db; do
    for ext in key crt cer esl auth; do
        [ ! -e "$dir/$key.$ext" ] || die "$dir/$key.$ext exists; refusing to overwrite a key set"
    done
done

# The owner GUID the signature lists carry: one per key set, kept beside it.
if [ -e "$dir/owner.guid" ]; then
    die "$dir/owner.guid exists; refusing to overwrite a key set"
fi
guid=$(cat /proc/sys/kernel/random/uuid)
echo "$guid" >"$dir/owner.guid"

umask 077
for key in PK KEK db; do
    openssl req -new -x509 -newkey rsa:2048 -sha256 -nodes -days "$DAYS" \
        -subj "/CN=$name $key/" -keyout "$dir/$key.key" -out "$dir/$key.crt" 2>/dev/null ||
        die "openssl could not create the $key key"
    openssl x509 -in "$dir/$key.crt" -outform DER -out "$dir/$key.cer"
    cert-to-efi-sig-list -g "$guid" "$dir/$key.crt" "$dir/$key.esl" >/dev/null
done
chmod 644 "$dir"/*.crt "$dir"/*.cer "$dir"/*.esl "$dir/owner.guid"

# Each variable's update signed by the key above it; PK signs itself.
sign() { # VARIABLE SIGNER
    sign-efi-sig-list -g "$guid" -k "$dir/$2.key" -c "$dir/$2.crt" "$1" "$dir/$1.esl" \
        "$dir/$1.auth" >/dev/null || die "sign-efi-sig-list could not sign $1"
    chmod 644 "$dir/$1.auth"
}
sign PK PK
sign KEK PK
sign db KEK

cat <<EOF
$PROG: a key set in $dir (owner GUID $guid):
  PK, KEK, db  .key (private: keep offline)  .crt/.cer (certificate, PEM/DER)
               .esl (signature list)  .auth (signed update)

Next:
  1. Build the signed image with the db key:
       cmake -S . -B build -DCANOPY_SB_KEY=$dir/db.key -DCANOPY_SB_CERT=$dir/db.crt
       cmake --build build        (build/canopy-sb.img)
  2. Put the PC's firmware in setup mode (its setup screen: "Secure Boot",
     "Reset to Setup Mode" or "Clear Secure Boot keys"), then enroll, in this
     order, db, KEK and PK last (enrolling PK ends setup mode):
       - in the setup screen: db.cer, KEK.cer, PK.cer from a FAT stick, or
       - with KeyTool from efitools (/usr/lib/efitools/x86_64-linux-gnu/KeyTool.efi):
         db.auth, KEK.auth, PK.auth.
     Keep Microsoft's keys too (append instead of replace) if the PC must also
     boot Windows or a graphics card's option ROM signed by Microsoft.
  3. Flash: scripts/flash-usb.sh build/canopy-sb.img /dev/sdX, and boot it
     with Secure Boot on. docs/secure-boot.md has the details, and the other
     way, shim with a MOK (scripts/flash-usb.sh --shim), for a PC whose keys
     you do not replace.
EOF
