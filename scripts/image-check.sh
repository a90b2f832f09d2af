#!/usr/bin/env bash
# Builds soapgate's container image without Docker, by the Dockerfile's own
# steps, into a staging directory, then starts the staged binary the way the
# image would and checks it: /healthz, /readyz, `?wsdl` of every example
# service, the image's HEALTHCHECK command, a clean stop on the image's
# STOPSIGNAL, and the documented `serve --emulator` opt-in answering an
# example call. CI runs it (.ci/run) because CI has no Docker daemon.
#
#   bash scripts/image-check.sh                     # the Dockerfile's profile (production)
#   bash scripts/image-check.sh --profile release   # like --build-arg BUILD_PROFILE=release
#   bash scripts/image-check.sh --target-dir target # keep the cargo build there between runs
#   bash scripts/image-check.sh --keep              # leave the staging directory for inspection
#
# How it keeps from drifting away from the Dockerfile: the build steps
# themselves (cargo's command, profile and flags; what is installed where,
# with which modes; the service user and its data folder) are in one file,
# scripts/image-steps.sh, which the Dockerfile's RUN instructions call and
# this script calls with the same arguments. Everything else it reads from
# the Dockerfile, instruction by instruction, in order: the stages, ARG
# defaults, WORKDIR, COPY (the build context is the allow-list in
# .dockerignore), the RUN instructions with their mounts, USER, ENV,
# EXPOSE, HEALTHCHECK, STOPSIGNAL, ENTRYPOINT and CMD. An instruction, a
# RUN command or a COPY form it cannot reproduce faithfully makes it fail
# rather than skip, so a Dockerfile edit that CI cannot follow is caught
# the day it is made. (Reading the Dockerfile alone would mean re-rooting
# arbitrary shell commands; a shared step file alone would leave the COPY
# and runtime instructions to drift.)
#
# What differs from `docker build`, and why:
# - Absolute paths of the image are mapped under the staging directory
#   (each stage has its own root); the steps file takes its ROOT as an
#   argument for that reason.
# - The builder runs on this machine's toolchain, not in the RUST_IMAGE
#   container: the script fails if `rustc --version` is not the version in
#   the image's tag. The cargo registry cache mount is this machine's
#   CARGO_HOME. The target cache mount is an empty folder in the staging
#   directory (a cold build, as the first `docker build`), or --target-dir.
# - The runtime stage's apt-get step cannot run outside a container: the
#   script checks instead that the same packages are installed here.
# - The base image's /etc/passwd and /etc/group are stood in for by Debian
#   base-passwd's passwd.master and group.master (what a fresh Debian
#   image's files are made from), its /etc/login.defs by this machine's
#   (the same Debian release); the user step then runs on them with
#   useradd --prefix, which needs root. As root, the staged binary runs
#   as the image's USER (setpriv); otherwise that step is skipped, and the
#   binary runs as the calling user, which the script says.
# - The staged binary runs on this machine's libraries: the script checks
#   that it needs none beyond glibc's and libgcc's, which the slim runtime
#   image has.
# - It listens on a free loopback port instead of the image's: SOAPGATE_LISTEN
#   is overridden as `docker run -e` would; the environment is otherwise the
#   image's ENV alone (env -i), so no AWS_* variable of the caller reaches it.
#
# Profile and time: by default this builds the Dockerfile's own profile,
# `production` (fat LTO, one codegen unit), and CI (.ci/run) runs it so:
# the binary it starts is built exactly as the image's is. Cold, on two
# cores at load 1 to 2, the whole check took 12 min 1 s here (the build
# 11 min 58 s, 877 s of CPU); under load 9 to 13 the same build took
# 34 min. `release` took no less CPU (1,005 s), so CI does not trade the
# real binary for it.
# docs/deploy.md has the figures.
#
# Needs: a Rust toolchain, python3, curl, bash, and for the user step root
# with useradd/groupadd (passwd), setpriv (util-linux) and Debian's
# base-passwd.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD

profile=""
target_dir=""
keep=0
build_args=()
while [ $# -gt 0 ]; do
    case $1 in
    --profile) profile=$2; shift 2 ;;
    --target-dir) target_dir=$2; shift 2 ;;
    --build-arg) build_args+=("$2"); shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
[ -n "$profile" ] && build_args+=("BUILD_PROFILE=$profile")
if [ -n "$target_dir" ]; then
    mkdir -p "$target_dir"
    target_dir=$(cd "$target_dir" && pwd)
fi

step() { printf '\n=== image-check: %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'image-check: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }
# CHILD_CPU: CPU seconds (user + system) of this shell's finished children
# so far. `times` must run in this shell, not in a $(...) subshell.
read_child_cpu() {
    times >"$STAGING/times"
    CHILD_CPU=$(awk 'NR == 2 {
        n = split($0, f, " "); total = 0
        for (i = 1; i <= n; i++) { split(f[i], ms, "m"); total += ms[1] * 60 + ms[2] }
        printf "%d", total }' "$STAGING/times")
}

started=$(now)
IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1

# The staging directory is under target/ (ignored by git) rather than
# TMPDIR: the service user must be able to reach it, and /root is closed.
STAGING=$REPO/target/image-check
rm -rf "$STAGING"
mkdir -p "$STAGING"
chmod 0755 "$REPO/target" "$STAGING"

SERVER_PID=""
cleanup() {
    local status=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    if [ $status -ne 0 ]; then
        for log in "$STAGING"/*.log; do
            [ -f "$log" ] || continue
            echo "--- last lines of $log" >&2
            tail -n 30 "$log" >&2
        done
        echo "image-check: FAILED; the staging directory is kept: $STAGING" >&2
    elif [ $keep = 0 ]; then
        rm -rf "$STAGING"
    else
        echo "image-check: staging directory kept: $STAGING"
    fi
}
trap cleanup EXIT

# --- Reading the Dockerfile --------------------------------------------------
# One instruction per array entry: comment lines dropped (as Docker does,
# also inside continuations), continuation lines joined.
instructions=()
current=""
while IFS= read -r line || [ -n "$line" ]; do
    trimmed=${line#"${line%%[![:space:]]*}"}
    case $trimmed in '#'*|'') continue ;; esac
    if [[ $line =~ ^(.*)\\[[:space:]]*$ ]]; then
        current+="${BASH_REMATCH[1]} "
        continue
    fi
    current+=$line
    instructions+=("$current")
    current=""
done < Dockerfile
[ -z "$current" ] || die "Dockerfile ends inside a continuation line"

# --- The build context: .dockerignore's allow-list ---------------------------
context_paths=()
first=1
while IFS= read -r line || [ -n "$line" ]; do
    line=${line%"${line##*[![:space:]]}"}
    case $line in '#'*|'') continue ;; esac
    if [ $first = 1 ]; then
        [ "$line" = '*' ] || die ".dockerignore must start with '*' (an allow-list); found: $line"
        first=0
        continue
    fi
    case $line in
    '!'*[*?[]*) die ".dockerignore: wildcards are not understood here: $line" ;;
    '!'*) context_paths+=("${line#!}") ;;
    *) die ".dockerignore: only '!path' lines follow '*'; found: $line" ;;
    esac
done < .dockerignore
for p in "${context_paths[@]}"; do
    [ -e "$p" ] || die ".dockerignore allows $p, which does not exist"
done

# Copies the build context into DEST (a directory).
copy_context() {
    local dest=$1 p
    mkdir -p "$dest"
    for p in "${context_paths[@]}"; do
        mkdir -p "$dest/$(dirname "$p")"
        cp -R "$p" "$dest/$p"
    done
}

# ${VAR} and $VAR from the named associative array.
expand() {
    local -n vars=$2
    local text=$1 name
    for name in "${!vars[@]}"; do
        text=${text//\$\{$name\}/${vars[$name]}}
        text=${text//\$$name/${vars[$name]}}
    done
    case $text in *'$'*) die "unexpanded variable in: $1" ;; esac
    printf '%s' "$text"
}

json_words() { # a JSON array of strings -> NUL-separated words
    python3 -c 'import json, sys
words = json.loads(sys.argv[1])
assert isinstance(words, list) and all(isinstance(w, str) for w in words)
sys.stdout.write("\0".join(words))' "$1"
}

# --- Running the Dockerfile, stage by stage ----------------------------------
declare -A global_args=() stage_root=()
declare -A overrides=()
for kv in "${build_args[@]}"; do overrides[${kv%%=*}]=${kv#*=}; done

stage=""            # name of the current stage
root=""             # its root in the staging directory
workdir="/"
declare -A args=()  # the current stage's ARGs
final_user="" final_workdir="/" stop_signal="SIGTERM"
declare -A image_env=()
entrypoint_json="" cmd_json="" healthcheck_json="" exposed=""
builder_image="" runtime_image=""
build_seconds=0
build_cpu=0
built_profile=""
user_step_ran=0

# Runs the Dockerfile's instructions in order. With DRY=1 it only reads and
# checks them (the forms, the mounts, the packages), so a Dockerfile this
# script cannot follow fails before the long build, not after it.
interpret() {
    local dry=$1
    stage="" root="" workdir="/" n=0
    args=() image_env=()
    entrypoint_json="" cmd_json="" healthcheck_json="" exposed=""
    final_user="" final_workdir="/" stop_signal="SIGTERM"
    for instr in "${instructions[@]}"; do
        n=$((n + 1))
        keyword=${instr%%[[:space:]]*}
        rest=${instr#"$keyword"}
        rest=${rest#"${rest%%[![:space:]]*}"}
        keyword=${keyword^^}
        case $keyword in
        ARG)
            name=${rest%%=*}
            value=""; [[ $rest == *=* ]] && value=${rest#*=}
            [ -n "${overrides[$name]+x}" ] && value=${overrides[$name]}
            # shellcheck disable=SC2034 # global_args is read through expand's nameref
            if [ -z "$stage" ]; then global_args[$name]=$value; else args[$name]=$value; fi
            ;;
        FROM)
            read -r image as name extra <<<"$rest"
            if [ -z "$as" ]; then
                name=final # the last stage may be unnamed
            elif [ "${as^^}" != AS ] || [ -z "$name" ] || [ -n "$extra" ]; then
                die "FROM: expected 'FROM image [AS name]': $rest"
            fi
            image=$(expand "$image" global_args)
            stage=$name
            root=$STAGING/$stage
            stage_root[$stage]=$root
            workdir="/"
            args=()
            image_env=() entrypoint_json="" cmd_json="" healthcheck_json="" exposed=""
            final_user="" final_workdir="/"
            if [ "$stage" = builder ]; then builder_image=$image; else runtime_image=$image; fi
            [ "$dry" = 1 ] && continue
            mkdir -p "$root"
            chmod 0755 "$root"
            step "stage $stage (FROM $image) -> $root"
            ;;
        WORKDIR)
            case $rest in /*) workdir=$rest ;; *) workdir=${workdir%/}/$rest ;; esac
            final_workdir=$workdir
            [ "$dry" = 1 ] || mkdir -p "$root$workdir"
            ;;
        COPY)
            read -r -a words <<<"$rest"
            from=""
            if [[ ${words[0]} == --from=* ]]; then from=${words[0]#--from=}; words=("${words[@]:1}"); fi
            [[ ${words[0]} == --* ]] && die "COPY: flag ${words[0]} is not reproduced by this script"
            [ ${#words[@]} = 2 ] || die "COPY: one source and one destination expected: $rest"
            src=${words[0]} dest=${words[1]}
            case $dest in /*) ;; .) dest=$workdir ;; *) dest=${workdir%/}/$dest ;; esac
            if [ -z "$from" ]; then
                [ "$src" = . ] || die "COPY from the context: only 'COPY . DEST' is reproduced: $rest"
                [ "$dry" = 1 ] && continue
                note "COPY . $dest  (the .dockerignore allow-list: ${context_paths[*]})"
                copy_context "$root$dest"
            else
                from_root=${stage_root[$from]:-}
                [ -n "$from_root" ] || die "COPY --from=$from: no such stage"
                [[ $src == /* ]] || die "COPY --from: absolute source expected: $src"
                [ "$dry" = 1 ] && continue
                note "COPY --from=$from $src $dest"
                mkdir -p "$root$dest"
                cp -a "$from_root${src%/}/." "$root$dest"
            fi
            ;;
        RUN)
            mounts=()
            while [[ $rest == --mount=* ]]; do
                mounts+=("${rest%%[[:space:]]*}")
                rest=${rest#*[[:space:]]}
                rest=${rest#"${rest%%[![:space:]]*}"}
            done
            [[ $rest == --* ]] && die "RUN: flag ${rest%% *} is not reproduced by this script"
            # The runtime image's packages: checked here instead of installed.
            if [[ $rest =~ ^apt-get\ update\ +\&\&\ +apt-get\ install\ -y\ --no-install-recommends\ +([a-z0-9.+\ -]+[a-z0-9.+-])\ +\&\&\ +rm\ -rf\ /var/lib/apt/lists/\*$ ]]; then
                [ ${#mounts[@]} = 0 ] || die "RUN apt-get with mounts is not reproduced"
                for pkg in ${BASH_REMATCH[1]}; do
                    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
                    [ "$status" = "install ok installed" ] ||
                        die "the image installs $pkg; it is not installed on this machine"
                    [ "$dry" = 1 ] || note "RUN apt-get install $pkg: installed on this machine ($(dpkg-query -W -f='${Version}' "$pkg"))"
                done
                continue
            fi
            # Otherwise only the steps file: `sh FILE STEP ROOT`.
            read -r -a words <<<"$rest"
            if [ ${#words[@]} != 4 ] || [ "${words[0]}" != sh ]; then
                die "RUN: only 'sh <steps file> STEP ROOT' and the apt-get line are reproduced: $rest"
            fi
            file=${words[1]} what=${words[2]} to=${words[3]}
            [[ $to == /* ]] || die "RUN: ROOT must be absolute: $rest"
            run_env=()
            for name in "${!args[@]}"; do run_env+=("$name=${args[$name]}"); done
            script_path=""
            for m in "${mounts[@]}"; do
                spec=${m#--mount=}
                declare -A opt=()
                IFS=, read -r -a parts <<<"$spec"
                for part in "${parts[@]}"; do
                    if [[ $part == *=* ]]; then opt[${part%%=*}]=${part#*=}; else opt[$part]=""; fi
                done
                case ${opt[type]:-} in
                cache)
                    if [ "${opt[target]}" = "${workdir%/}/target" ]; then
                        if [ -n "$target_dir" ]; then
                            run_env+=("CARGO_TARGET_DIR=$target_dir")
                            [ "$dry" = 1 ] || note "cache mount ${opt[target]}: $target_dir (--target-dir)"
                        else
                            [ "$dry" = 1 ] || note "cache mount ${opt[target]}: empty (a cold build)"
                        fi
                    elif [ "${opt[target]}" = /usr/local/cargo/registry ]; then
                        [ "$dry" = 1 ] || note "cache mount ${opt[target]}: this machine's ${CARGO_HOME:-$HOME/.cargo}/registry"
                    else
                        die "RUN: cache mount ${opt[target]} is not reproduced"
                    fi
                    ;;
                bind)
                    [ -z "${opt[from]:-}" ] || die "RUN: bind mount from a stage is not reproduced"
                    [ "${opt[target]}" = "$file" ] || die "RUN: a bind mount other than the steps file: $m"
                    in_context=0
                    for p in "${context_paths[@]}"; do [ "$p" = "${opt[source]}" ] && in_context=1; done
                    [ $in_context = 1 ] || die "RUN: bind mount of ${opt[source]}, which .dockerignore leaves out of the context"
                    script_path=$REPO/${opt[source]}
                    ;;
                *) die "RUN: mount $m is not reproduced" ;;
                esac
                unset opt
            done
            if [ -z "$script_path" ] && [ "$dry" = 1 ]; then
                # Not copied yet: the context's own file, which must be in it.
                in_context=0
                for p in "${context_paths[@]}"; do [ "$p" = "$file" ] && in_context=1; done
                [ $in_context = 1 ] || die "RUN: $file is not in the build context (.dockerignore)"
                script_path=$REPO/$file
            elif [ -z "$script_path" ]; then
                case $file in
                /*) script_path=$root$file ;;
                *) script_path=$root${workdir%/}/$file ;;
                esac
            fi
            if [ "$(basename "$script_path")" != image-steps.sh ] || [ ! -f "$script_path" ]; then
                die "RUN: $file is not the steps file (scripts/image-steps.sh)"
            fi
            cmp -s "$script_path" scripts/image-steps.sh || die "RUN: $script_path differs from scripts/image-steps.sh"
            mapped=$root${to%/}/
            case $what in build|user) ;; *) die "RUN: unknown step $what" ;; esac
            [ "$dry" = 1 ] && continue
            case $what in
            build)
                note "RUN ${run_env[*]} sh $file build $to   (in $root$workdir; ROOT -> $mapped)"
                built_profile=${args[BUILD_PROFILE]:-production}
                t0=$(now)
                read_child_cpu
                cpu0=$CHILD_CPU
                (cd "$root$workdir" && env "${run_env[@]}" sh "$script_path" build "$mapped")
                build_seconds=$(($(now) - t0))
                read_child_cpu
                build_cpu=$((CHILD_CPU - cpu0))
                note "build step: ${build_seconds} s wall, ${build_cpu} s CPU (user + system), load average now $(cut -d' ' -f1-3 /proc/loadavg)"
                ;;
            user)
                if [ $IS_ROOT = 0 ]; then
                    note "RUN sh $file user $to: SKIPPED (useradd --prefix needs root); the binary will run as $(id -un)"
                    mkdir -p "$root/app/data"
                    continue
                fi
                # Stand-ins for the base image's account files.
                mkdir -p "$root/etc"
                install -m 0644 /usr/share/base-passwd/passwd.master "$root/etc/passwd"
                install -m 0644 /usr/share/base-passwd/group.master "$root/etc/group"
                install -m 0644 /etc/login.defs "$root/etc/login.defs"
                install -m 0640 /dev/null "$root/etc/shadow"
                install -m 0640 /dev/null "$root/etc/gshadow"
                note "RUN sh $file user $to   (ROOT -> $mapped; /etc from base-passwd's masters and this machine's login.defs)"
                (cd "$root$workdir" && env "${run_env[@]}" sh "$script_path" user "$mapped")
                user_step_ran=1
                ;;
            *) die "RUN: unknown step $what" ;;
            esac
            ;;
        USER) final_user=$rest ;;
        ENV)
            read -r -a pairs <<<"$rest"
            for kv in "${pairs[@]}"; do
                [[ $kv == *=* ]] || die "ENV: only KEY=VALUE pairs without spaces are reproduced: $rest"
                image_env[${kv%%=*}]=${kv#*=}
            done
            ;;
        EXPOSE) exposed=$rest ;;
        HEALTHCHECK)
            [[ $rest =~ CMD[[:space:]]+(\[.*\])$ ]] || die "HEALTHCHECK: the exec form CMD [...] is expected"
            healthcheck_json=${BASH_REMATCH[1]}
            ;;
        STOPSIGNAL) stop_signal=$rest ;;
        ENTRYPOINT) entrypoint_json=$rest ;;
        CMD) cmd_json=$rest ;;
        LABEL) ;;
        *) die "Dockerfile instruction $n ($keyword) is not reproduced by this script: teach it, or keep the Dockerfile to what it reproduces" ;;
        esac
    done
}

interpret 1
[ "$stage" != builder ] || die "the last stage must be the runtime image"
[ -n "$entrypoint_json" ] || die "the runtime stage has no ENTRYPOINT"
[ -n "$healthcheck_json" ] || die "the runtime stage has no HEALTHCHECK"

# --- The images named ---------------------------------------------------------
step "images"
rustc_version=$(rustc --version | awk '{print $2}')
tag=${builder_image#*:}
tag_version=${tag%%-*}
note "builder: $builder_image; this machine: rustc $rustc_version"
[ "$tag_version" = "$rustc_version" ] ||
    die "the builder image's Rust ($tag_version) is not this toolchain's ($rustc_version): update RUST_IMAGE in the Dockerfile (or the toolchain)"
builder_release=${tag##*-}
runtime_release=${runtime_image#*:}
runtime_release=${runtime_release%%-*}
note "runtime: $runtime_image"
[ "$builder_release" = "$runtime_release" ] ||
    die "builder ($builder_release) and runtime ($runtime_release) are not the same Debian release: the binary may need a newer glibc than the runtime has"
# shellcheck disable=SC1091
host_release=$(. /etc/os-release && echo "${VERSION_CODENAME:-unknown}")
[ "$host_release" = "$runtime_release" ] ||
    note "WARNING: this machine is Debian $host_release, the image $runtime_release: the staged run uses this machine's glibc"

interpret 0
rootfs=${stage_root[$stage]}

# --- What the runtime image holds --------------------------------------------
step "the runtime image's files"
binary=$rootfs/usr/local/bin/soapgate
[ -x "$binary" ] || die "no executable $binary"
[ "$(stat -c '%a' "$binary")" = 755 ] || die "$binary: expected mode 755"
for f in app/soapgate.toml app/wsdl app/mappings app/examples; do
    [ -e "$rootfs/$f" ] || die "missing /$f in the image"
done
# Only the data folder is the service's; the rest is root's, read-only to it.
if [ $IS_ROOT = 1 ] && [ -n "$(find "$rootfs/app" "$binary" -path "$rootfs/app/data" -prune -o ! -user 0 -print)" ]; then
    die "files of the image other than /app/data are not root-owned"
fi
note "$("$binary" --version); $(du -h "$binary" | cut -f1) ($(stat -c %s "$binary") bytes)"
# Libraries: the slim runtime image has glibc and libgcc_s, nothing more.
libs=$(ldd "$binary" | awk '{print $1}' | sort -u | tr '\n' ' ')
note "needs: $libs"
for lib in $libs; do
    case $lib in
    linux-vdso.so.*|/lib64/ld-linux-*|ld-linux-*|libc.so.*|libm.so.*|libgcc_s.so.*|libpthread.so.*|libdl.so.*|librt.so.*) ;;
    *) die "the binary needs $lib, which the slim runtime image does not have: install it in the runtime stage" ;;
    esac
done

uid=${final_user%%:*}
gid=${final_user#*:}
[[ $uid =~ ^[0-9]+$ && $gid =~ ^[0-9]+$ && $uid != 0 ]] ||
    die "USER must be a numeric non-root uid:gid (orchestrators check runAsNonRoot by number): $final_user"
run_as=()
if [ $user_step_ran = 1 ]; then
    entry=$(awk -F: -v u="$uid" '$3 == u' "$rootfs/etc/passwd")
    [ -n "$entry" ] || die "USER $uid is not in the image's /etc/passwd"
    [ "$(awk -F: -v u="$uid" '$3 == u {print $4}' "$rootfs/etc/passwd")" = "$gid" ] ||
        die "USER $final_user: the passwd entry's group is not $gid"
    [ "$(stat -c '%u:%g %a' "$rootfs/app/data")" = "$uid:$gid 750" ] ||
        die "/app/data: expected owner $uid:$gid, mode 750"
    note "user: $entry; /app/data $(stat -c '%u:%g %a' "$rootfs/app/data")"
    run_as=(setpriv "--reuid=$uid" "--regid=$gid" --clear-groups --)
fi
listen_port=${image_env[SOAPGATE_LISTEN]##*:}
for p in $exposed; do
    [ "${p%/tcp}" = "$listen_port" ] || die "EXPOSE $p is not SOAPGATE_LISTEN's port ($listen_port)"
done

# --- Running it as the image would --------------------------------------------
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port)
base=http://127.0.0.1:$port
# The container's environment: Docker's PATH, HOME of the USER, the image's
# ENV; SOAPGATE_LISTEN as `docker run -e` would set it.
container_env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "HOME=$rootfs/app")
for name in "${!image_env[@]}"; do container_env+=("$name=${image_env[$name]}"); done
container_env+=("SOAPGATE_LISTEN=127.0.0.1:$port")

mapfile -d '' -t entrypoint < <(json_words "$entrypoint_json")
mapfile -d '' -t cmd < <(json_words "$cmd_json")
mapfile -d '' -t healthcheck < <(json_words "$healthcheck_json")
[[ ${entrypoint[0]} == /* ]] || die "ENTRYPOINT must name the binary by its absolute path"
entrypoint[0]=$rootfs${entrypoint[0]}

start() { # LOG ARGS...: starts the image's ENTRYPOINT with ARGS
    local log=$1; shift
    (cd "$rootfs$final_workdir" &&
        exec env -i "${container_env[@]}" "${run_as[@]}" "${entrypoint[@]}" "$@") >"$log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null "$base/healthz" 2>/dev/null; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited at start (log: $log)"
        sleep 0.2
    done
    die "no answer on $base/healthz within 60 s"
}

stop() { # stops the server with the image's STOPSIGNAL; it must exit 0
    local log=$1 status
    kill -s "${stop_signal#SIG}" "$SERVER_PID"
    for _ in $(seq 1 150); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.2
    done
    kill -0 "$SERVER_PID" 2>/dev/null && die "still running 30 s after $stop_signal"
    status=0
    wait "$SERVER_PID" || status=$?
    SERVER_PID=""
    [ "$status" = 0 ] || die "exit status $status after $stop_signal (log: $log)"
    grep -q "soapgate stopped" "$log" || die "no 'soapgate stopped' in $log"
}

healthcheck_passes() {
    (cd "$rootfs$final_workdir" && env -i "${container_env[@]}" "${run_as[@]}" "${healthcheck[@]}") >/dev/null 2>&1
}

step "start: ${entrypoint[*]#$rootfs} ${cmd[*]}  (as ${final_user:-$(id -un)}, in $final_workdir, on $base)"
log=$STAGING/serve.log
t0=$(now)
start "$log" "${cmd[@]}"
note "answering /healthz after $(($(now) - t0)) s"

code=$(curl -s -o "$STAGING/healthz" -w '%{http_code}' "$base/healthz")
[ "$code" = 200 ] || die "/healthz: HTTP $code"
note "/healthz: 200 $(tr -d '\n' <"$STAGING/healthz")"

code=$(curl -s -o "$STAGING/readyz" -w '%{http_code}' "$base/readyz")
[ "$code" = 200 ] || die "/readyz: HTTP $code: $(cat "$STAGING/readyz")"
grep -q '"database":"ok"' "$STAGING/readyz" || die "/readyz: the database is not ok: $(cat "$STAGING/readyz")"
note "/readyz: 200 $(cat "$STAGING/readyz")"
db=$rootfs/app/data/soapgate.db
[ -f "$db" ] || die "no SQLite database at /app/data/soapgate.db"
[ $user_step_ran = 0 ] || [ "$(stat -c %u "$db")" = "$uid" ] || die "$db is not owned by uid $uid"
note "database: /app/data/soapgate.db, owner uid $(stat -c %u "$db")"

for dir in "$rootfs"/app/examples/*/; do
    service=$(basename "$dir")
    code=$(curl -s -o "$STAGING/$service.wsdl" -w '%{http_code}' "$base/soap/$service?wsdl")
    [ "$code" = 200 ] || die "/soap/$service?wsdl: HTTP $code"
    grep -q 'definitions' "$STAGING/$service.wsdl" || die "/soap/$service?wsdl: not a WSDL"
    grep -q "location=\"$base/soap/$service\"" "$STAGING/$service.wsdl" ||
        die "/soap/$service?wsdl: no address pointing at $base/soap/$service"
    note "/soap/$service?wsdl: 200, $(wc -c <"$STAGING/$service.wsdl") bytes, address $base/soap/$service"
done

healthcheck_passes || die "the image's HEALTHCHECK command fails against a healthy server"
note "HEALTHCHECK command: passes"

t0=$(now)
stop "$log"
note "$stop_signal: exited 0 after $(($(now) - t0)) s"
healthcheck_passes && die "the HEALTHCHECK command passes with the server stopped"
note "HEALTHCHECK command: fails once stopped"

# The documented opt-in, `docker run IMAGE serve --emulator`: the CMD
# replaced, the ENTRYPOINT kept.
step "start: ${entrypoint[*]#$rootfs} serve --emulator"
log=$STAGING/emulator.log
start "$log" serve --emulator
request=$rootfs/app/examples/SupportDesk/TriageTicket.xml
code=$(curl -s -o "$STAGING/call.xml" -w '%{http_code}' -H 'Content-Type: text/xml; charset=utf-8' \
    --data-binary @"$request" "$base/soap/SupportDesk")
[ "$code" = 200 ] || die "SupportDesk.TriageTicket through the emulator: HTTP $code: $(head -c 400 "$STAGING/call.xml")"
grep -q 'TriageTicketResponse' "$STAGING/call.xml" || die "no TriageTicketResponse: $(head -c 400 "$STAGING/call.xml")"
note "POST /soap/SupportDesk (examples/SupportDesk/TriageTicket.xml): 200 TriageTicketResponse"
stop "$log"
note "$stop_signal: exited 0"

step "passed: profile $built_profile; build step ${build_seconds} s wall, ${build_cpu} s CPU; whole check $(($(now) - started)) s"
