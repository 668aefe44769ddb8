#!/usr/bin/env bash
# Builds the static watertight binary on the host and the `FROM scratch` image around it
# (deploy/Dockerfile.scratch), without pulling any image. Prints the image size.
#
#   deploy/build-image.sh                    # cargo build + docker build, tag watertight:dev
#   SKIP_CARGO=1 deploy/build-image.sh       # reuse the last static binary
#   IMAGE=watertight:test deploy/build-image.sh
#
# Environment:
#   IMAGE          tag to build (default watertight:dev)
#   SKIP_CARGO     1: do not run cargo, use the binary already in $CARGO_TARGET_DIR
#   CARGO_TARGET_DIR  where the static build goes (default target/static, so it does not
#                  invalidate the normal release build's cache)
#   TARGET         Rust target triple (default: the host's, e.g. x86_64-unknown-linux-gnu)
#   MAX_IMAGE_MB   size goal; a bigger image is reported (and fails with STRICT_SIZE=1)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

IMAGE="${IMAGE:-watertight:dev}"
MAX_IMAGE_MB="${MAX_IMAGE_MB:-25}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/static}"
TARGET="${TARGET:-$(rustc -vV | sed -n 's/^host: //p')}"
binary="$CARGO_TARGET_DIR/$TARGET/release/watertight"
ca_bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { printf '[build-image] error: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker not found"

if [[ "${SKIP_CARGO:-0}" != 1 ]]; then
    log "cargo build (static, stripped) for $TARGET into $CARGO_TARGET_DIR"
    # +crt-static with an explicit --target: a static-pie glibc binary (no musl needed).
    # strip=symbols keeps the image small; the workspace profile already sets panic=abort.
    RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
        cargo build --release --locked --target "$TARGET" -p watertight
fi
[[ -x "$binary" ]] || die "no binary at $binary (run without SKIP_CARGO=1)"

# A scratch image has no libc: the binary must not need a dynamic loader.
if ! file "$binary" | grep -Eq 'static(-pie)? linked|statically linked'; then
    file "$binary" >&2
    die "$binary is not statically linked"
fi
if ldd "$binary" >/dev/null 2>&1 && ! ldd "$binary" 2>&1 | grep -q 'statically linked'; then
    ldd "$binary" >&2
    die "$binary has dynamic dependencies"
fi
log "binary: $(file -b "$binary" | cut -d, -f1-2), $(du -h "$binary" | cut -f1)"

# The image's HEALTHCHECK runs `watertight health`; warn if this build does not have it.
if ! "$binary" health --help >/dev/null 2>&1; then
    log "WARNING: this binary has no 'health' subcommand; the image's HEALTHCHECK will report unhealthy"
fi

[[ -r "$ca_bundle" ]] || die "no CA bundle at $ca_bundle (set CA_BUNDLE)"

staging="$(mktemp -d "${TMPDIR:-/tmp}/watertight-image.XXXXXX")"
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { rm -rf -- "$staging"; }
trap cleanup EXIT

mkdir -p "$staging/rootfs/etc/ssl/certs" "$staging/rootfs/var/cache/watertight"
cp "$binary" "$staging/watertight"
cp "$ca_bundle" "$staging/rootfs/etc/ssl/certs/ca-certificates.crt"
cat >"$staging/rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$staging/rootfs/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
chmod 0644 "$staging/rootfs/etc/passwd" "$staging/rootfs/etc/group" \
    "$staging/rootfs/etc/ssl/certs/ca-certificates.crt"
chmod 0755 "$staging/watertight"
cp "$here/Dockerfile.scratch" "$staging/Dockerfile"

log "docker build -t $IMAGE (FROM scratch)"
# DOCKER_BUILDKIT=0: the legacy builder, which needs no builder image.
DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" docker build -q -t "$IMAGE" "$staging" >/dev/null

bytes="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
mb="$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1000000 }')"
mib="$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')"
printf 'image %s: %s bytes (%s MB, %s MiB), goal <= %s MB\n' "$IMAGE" "$bytes" "$mb" "$mib" "$MAX_IMAGE_MB"
if (( bytes > MAX_IMAGE_MB * 1000000 )); then
    log "WARNING: image is over the ${MAX_IMAGE_MB} MB goal"
    [[ "${STRICT_SIZE:-0}" == 1 ]] && exit 1
fi
exit 0
