#!/bin/sh
# The build steps of soapgate's container image, kept in one file: the
# Dockerfile's RUN instructions call it, and scripts/image-check.sh calls it
# with the same arguments (ROOT mapped into a staging directory) to prove
# the steps where there is no Docker. Change a step here, not in either
# caller.
#
#   sh scripts/image-steps.sh build ROOT   from the source tree: compiles the
#       binary with the BUILD_PROFILE cargo profile (default: production)
#       and lays out what the runtime image receives under ROOT:
#       ROOT/usr/local/bin/soapgate and the example configuration in
#       ROOT/app (soapgate.toml, wsdl/, mappings/, examples/), root-owned and
#       read-only to the service.
#   sh scripts/image-steps.sh user ROOT    in the runtime image: the service
#       user and group (uid and gid 10001, no login, home /app) in ROOT/etc,
#       and its writable folder ROOT/app/data (the default SQLite database).
#
# POSIX sh: the builder and runtime images have no bash requirement here.
set -eu

SERVICE_UID=10001
SERVICE_GID=10001

usage() {
    echo "usage: $0 build|user ROOT" >&2
    exit 2
}

[ $# -eq 2 ] || usage
step=$1
root=$2
case $root in
/*) ;;
*) echo "$0: ROOT must be an absolute path, not $root" >&2; exit 2 ;;
esac
# Joins ROOT and an absolute path without doubling the slash for ROOT=/.
at() { printf '%s%s' "${root%/}" "$1"; }

case $step in
build)
    profile=${BUILD_PROFILE:-production}
    # cargo's folder for a profile is its name, except dev's.
    case $profile in
    dev) dir=debug ;;
    *) dir=$profile ;;
    esac
    cargo build --locked --profile "$profile" --bin soapgate
    install -D -m 0755 "${CARGO_TARGET_DIR:-target}/$dir/soapgate" "$(at /usr/local/bin/soapgate)"
    install -d -m 0755 "$(at /app)"
    install -m 0644 soapgate.toml "$(at /app/soapgate.toml)"
    for folder in wsdl mappings examples; do
        rm -rf "$(at "/app/$folder")"
        cp -R "$folder" "$(at "/app/$folder")"
        find "$(at "/app/$folder")" -type d -exec chmod 0755 {} +
        find "$(at "/app/$folder")" -type f -exec chmod 0644 {} +
    done
    ;;
user)
    # --prefix edits ROOT/etc/{passwd,group,shadow,gshadow} only (ROOT=/ is
    # the running system, as without it). Not --system: its uids stop at 999.
    groupadd --prefix "$root" --gid "$SERVICE_GID" soapgate
    useradd --prefix "$root" --uid "$SERVICE_UID" --gid "$SERVICE_GID" \
        --no-create-home --home-dir /app --shell /usr/sbin/nologin soapgate
    # Numeric owner: the name need not resolve where this runs.
    install -d -m 0755 "$(at /app)"
    install -d -m 0750 -o "$SERVICE_UID" -g "$SERVICE_GID" "$(at /app/data)"
    ;;
*)
    usage
    ;;
esac
