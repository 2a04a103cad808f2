#!/bin/sh
# ensure-spin.sh - make sure the model checker is there; install it if we can.
#
#   spin   from the Debian package spin (turns verify/reserves.pml into a C verifier, pan)
#   cc     from the Debian package gcc (compiles pan; spin also runs its preprocessor)
#
# As root on Debian or Ubuntu we install what is missing; otherwise we stop and print the
# exact command to run. The same shape as qemu/ensure-qemu.sh.
set -e
missing_packages=
for pair in spin:spin cc:gcc; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing_packages="$missing_packages ${pair#*:}"
done
[ -z "$missing_packages" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the Debian package(s)$missing_packages"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends $missing_packages >/dev/null 2>&1 || {
        apt-get update >/dev/null
        apt-get install -y --no-install-recommends $missing_packages
    }
    for program in spin cc; do
        command -v "$program" >/dev/null 2>&1 || { echo "installing$missing_packages did not provide $program" >&2; exit 1; }
    done
    exit 0
fi
echo "missing:$missing_packages. Install with:" >&2
if command -v apt-get >/dev/null 2>&1; then
    echo "    sudo apt-get install$missing_packages" >&2
else
    echo "    your distribution's packages for spin (the SPIN model checker) and a C compiler" >&2
fi
exit 1
