#!/usr/bin/env bash
# Step "base-image": the sandbox base image swerl-base:latest, built offline (no registry is reachable).
#   1. debootstrap --variant=minbase with packages.txt → .cache/images/rootfs-<key>.tar (built once)
#   2. docker import of that tarball as swerl-rootfs:<key>
#   3. docker build --network none of packages/swerl-sandbox-docker/image/Dockerfile FROM it, with
#      claude-code's native binary in the build context
# The image carries the label org.swerl.inputs=<hash of suite, packages, Dockerfile, claude
# version>; it is rebuilt only when that hash changes. Environment: SWERL_DEBIAN_MIRROR.
STEP=base-image
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE=swerl-base:latest
LABEL=org.swerl.inputs
SUITE=bookworm
MIRROR=${SWERL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Bump when the way the root filesystem is made changes (the package list is hashed anyway).
ROOTFS_RECIPE="swerl-rootfs/1 minbase $SUITE"
HERE=packages/swerl-sandbox-docker/image

claude_version=$(toml_pin claude-code version)
packages=$(grep -v '^[[:space:]]*#' "$HERE/packages.txt" | tr -s '[:space:]' '\n' | sed '/^$/d' | sort)
rootfs_key=$(printf '%s\n%s\n' "$ROOTFS_RECIPE" "$packages" | sha256sum | cut -c1-16)
inputs=$(printf '%s\n%s\nclaude-code %s\n' "$rootfs_key" "$(cat "$HERE/Dockerfile")" \
  "$claude_version" | sha256sum | cut -c1-16)

have=$(docker image inspect --format "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null || true)
if [[ "$have" == "$inputs" ]]; then
  size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
  skipped "$IMAGE ($((size / 1000000)) MB, inputs $inputs)"
fi
if [[ -n "$have" ]]; then
  missing "$IMAGE is out of date (inputs $have, want $inputs)"
else
  missing "$IMAGE is not built"
fi

docker info >/dev/null 2>&1 || die "no running Docker engine: run the docker step first (scripts/setup/docker.sh)"
claude="$CACHE/claude-code/$claude_version/node_modules/@anthropic-ai/claude-code/bin/claude.exe"
[[ -x "$claude" ]] || die "claude-code $claude_version is not in .cache: run scripts/setup/claude_code.sh first"

images="$CACHE/images"
tarball="$images/rootfs-$rootfs_key.tar"
rootfs_image="swerl-rootfs:$rootfs_key"
mkdir -p "$images"

# Remove a half-made root filesystem, unmounting whatever debootstrap left mounted in it first.
drop_rootfs() {
  local dir=$1 mnt
  [[ -e "$dir" ]] || return 0
  for mnt in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$mnt" || die "cannot unmount $mnt; remove $dir by hand"
  done
  rm -rf --one-file-system "$dir"
}

if docker image inspect "$rootfs_image" >/dev/null 2>&1; then
  say "root filesystem image $rootfs_image exists"
else
  if [[ -f "$tarball" ]]; then
    say "root filesystem tarball .cache/images/${tarball##*/} exists"
  else
    is_root || die "debootstrap needs root: run \`make setup\` as root, or build $IMAGE where you are root"
    if ! command -v debootstrap >/dev/null; then
      say "installing debootstrap with apt-get"
      apt_install debootstrap ||
        die "debootstrap is missing: install it (Debian/Ubuntu: apt-get install debootstrap)"
    fi
    dir="$images/rootfs.tmp"
    drop_rootfs "$dir"
    say "debootstrap $SUITE ($(echo $packages | tr ' ' ',')) from $MIRROR (about 2 min; log: .cache/images/debootstrap.log)"
    t0=$SECONDS
    debootstrap --variant=minbase --include="$(echo $packages | tr ' ' ',')" \
      "$SUITE" "$dir" "$MIRROR" >"$images/debootstrap.log" 2>&1 || {
      tail -n 15 "$images/debootstrap.log" >&2
      drop_rootfs "$dir"
      die "debootstrap failed (log above; .cache/images/debootstrap.log): is $MIRROR reachable? set SWERL_DEBIAN_MIRROR"
    }
    say "debootstrap took $((SECONDS - t0))s; packing .cache/images/${tarball##*/}"
    # Downloaded .debs and package lists are not needed in a sandbox.
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar --numeric-owner -C "$dir" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    drop_rootfs "$dir"
  fi
  say "docker import .cache/images/${tarball##*/} as $rootfs_image"
  docker import --message "$ROOTFS_RECIPE" "$tarball" "$rootfs_image" >/dev/null
fi

ctx="$images/context"
rm -rf "$ctx"
mkdir -p "$ctx"
cp "$HERE/Dockerfile" "$ctx/Dockerfile"
ln "$claude" "$ctx/claude" 2>/dev/null || install -m 755 "$claude" "$ctx/claude"
chmod 755 "$ctx/claude"
old=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
say "docker build --network none $IMAGE (claude-code $claude_version, inputs $inputs)"
t0=$SECONDS
DOCKER_BUILDKIT=0 docker build --quiet --network none --build-arg "ROOTFS=$rootfs_image" \
  --label "$LABEL=$inputs" --label "org.swerl.claude-code=$claude_version" \
  --tag "$IMAGE" "$ctx" >"$images/build.log" 2>&1 || {
  tail -n 15 "$images/build.log" >&2
  die "docker build failed (log above; .cache/images/build.log)"
}
rm -rf "$ctx"
new=$(docker image inspect --format '{{.Id}}' "$IMAGE")
if [[ -n "$old" && "$old" != "$new" ]]; then
  docker image rm "$old" >/dev/null 2>&1 || true # still used by a container: leave it
fi
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
finished "$IMAGE, $((size / 1000000)) MB, build $((SECONDS - t0))s"
