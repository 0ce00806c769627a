#!/usr/bin/env bash
# scripts/sb-keys.sh makes a key set that works: each certificate is the one
# of its key, the db key signs a stage 1 that sbverify accepts with db.crt and
# refuses with KEK.crt, each .auth file holds a signature by the key above it (PK
# by itself, KEK by PK, db by KEK: its PKCS#7 names the signer), and a second
# run into the same directory is refused, leaving the keys as they were.
#
# usage: sb_keys_test.sh SB_KEYS EFI WORKDIR
set -euo pipefail
sb_keys=$1 efi=$2 work=$3
passed=0 failed=0
check() { # WHAT COMMAND...
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then
        echo "ok   $what"
        passed=$((passed + 1))
    else
        echo "FAIL $what"
        failed=$((failed + 1))
    fi
}

same_text() { # A B: both non-empty and equal
    [ -n "$1" ] && [ -n "$2" ] && [ "$1" = "$2" ]
}

rm -rf "$work"
mkdir -p "$work"
keys=$work/keys
"$sb_keys" --name "Canopy test" "$keys" >"$work/out.txt"
grep -q "CANOPY_SB_KEY=$keys/db.key" "$work/out.txt" && echo "ok   prints the build step" &&
    passed=$((passed + 1)) || { echo "FAIL prints the build step"; failed=$((failed + 1)); }

for k in PK KEK db; do
    # Each public key on its own line, so that openssl failing stops the script
    # (set -e): inside the test below, two failures would compare equal.
    crt_pub=$(openssl x509 -in "$keys/$k.crt" -noout -pubkey)
    key_pub=$(openssl pkey -in "$keys/$k.key" -pubout)
    check "$k.crt is the certificate of $k.key" \
        same_text "$crt_pub" "$key_pub"
    check "$k.cer is $k.crt in DER" \
        cmp "$keys/$k.cer" <(openssl x509 -in "$keys/$k.crt" -outform DER)
    check "$k.key is readable by its owner only" test "$(stat -c %a "$keys/$k.key")" = 600
done

sbsign --key "$keys/db.key" --cert "$keys/db.crt" --output "$work/signed.efi" "$efi" >/dev/null 2>&1
check "sbverify accepts a stage 1 signed with db.key" sbverify --cert "$keys/db.crt" "$work/signed.efi"
check "sbverify refuses it with KEK.crt" bash -c "! sbverify --cert '$keys/KEK.crt' '$work/signed.efi'"

# An .auth file: a 16-byte EFI_TIME, then WIN_CERTIFICATE_UEFI_GUID (dwLength,
# revision, type, the PKCS#7 GUID) holding a DER SignedData (without the
# ContentInfo around it, as UEFI has it), then the list. The SignedData
# carries the signer's certificate: its name must be there, the others not.
auth_signer() { # VAR SIGNER
    local f=$keys/$1.auth len names
    len=$(od -An -tu4 -j16 -N4 "$f" | tr -d ' ')
    tail -c +$((16 + 24 + 1)) "$f" | head -c $((len - 24)) >"$work/$1.p7"
    names=$(openssl asn1parse -inform DER -in "$work/$1.p7" | grep -o 'Canopy test [A-Za-z]*' |
        sort -u)
    [ "$names" = "Canopy test $2" ]
}
check "PK.auth holds a PKCS#7 signature by PK" auth_signer PK PK
check "KEK.auth holds a PKCS#7 signature by PK" auth_signer KEK PK
check "db.auth holds a PKCS#7 signature by KEK" auth_signer db KEK
check "db.auth carries db.esl" bash -c "tail -c $(stat -c %s "$keys/db.esl") '$keys/db.auth' | cmp - '$keys/db.esl'"

before=$(sha256sum "$keys"/*)
check "a second run into the same directory is refused" bash -c "! '$sb_keys' '$keys'"
check "and leaves the key set as it was" test "$before" = "$(sha256sum "$keys"/*)"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
