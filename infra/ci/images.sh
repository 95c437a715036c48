#!/usr/bin/env bash
# Image tooling for the serving image, idempotent, run as root (by .ci/run and `make images-setup`):
#   1. installs buildah, podman, runc, skopeo, docker-registry, mmdebstrap (only those missing);
#   2. builds a local base image (Debian bookworm + python3 3.11 + venv + pip) with mmdebstrap into a
#      tarball cached OUTSIDE the repo, and imports it into the buildah storage the tests use;
#   3. starts a loopback registry on 127.0.0.1:5000 unless something already listens there.
# Nothing can be pulled from Docker Hub here, hence the local base (see README "Images").
#
# Env (same names and defaults as src/slipway/settings.py):
#   SLIPWAY_BASE_IMAGE       base image name       (localhost/slipway-base:bookworm-py311)
#   SLIPWAY_BUILDAH_ROOT     buildah storage root  (/var/cache/slipway/containers/storage: machine-wide,
#                            so the layer cache and the base image outlive checkouts and CI clones)
#   SLIPWAY_BUILDAH_RUNROOT  buildah run root      (/run/slipway/containers)
#   SLIPWAY_REGISTRY_ADDR    loopback registry     (127.0.0.1:5000)
set -euo pipefail

CACHE=/var/cache/slipway
BASE_TAR=$CACHE/base/bookworm-py311.tar
BASE_IMAGE=${SLIPWAY_BASE_IMAGE:-localhost/slipway-base:bookworm-py311}
ROOT=$(realpath -m "${SLIPWAY_BUILDAH_ROOT:-$CACHE/containers/storage}")
RUNROOT=$(realpath -m "${SLIPWAY_BUILDAH_RUNROOT:-/run/slipway/containers}")
REGISTRY_ADDR=${SLIPWAY_REGISTRY_ADDR:-127.0.0.1:5000}
REGISTRY_DIR=$CACHE/registry
MIRROR=${SLIPWAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}

say() { echo "== images: $*"; }
listening() { [[ -n $(ss -Hltn "sport = :$1") ]]; }
elapsed() { echo $(($(date +%s) - $1)); }

if [[ $(id -u) -ne 0 ]]; then
  echo "images.sh: run as root (it installs packages and builds a base image with mmdebstrap)" >&2
  exit 2
fi

# --- 1. packages --------------------------------------------------------------------------------
t=$(date +%s)
missing=()
for pkg in buildah podman runc catatonit skopeo docker-registry mmdebstrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null
  say "apt install took $(elapsed "$t") s"
else
  say "packages present (buildah $(buildah --version | awk '{print $3}'), podman $(podman --version | awk '{print $3}'))"
fi

# --- 2. storage driver: overlay, else vfs in a sibling root (one root never mixes drivers) ----------
DRIVER=overlay
mkdir -p "$ROOT" "$RUNROOT"
if ! buildah --root "$ROOT" --runroot "$RUNROOT" --storage-driver overlay images >/dev/null 2>&1; then
  DRIVER=vfs
  ROOT=$ROOT-vfs
  RUNROOT=$RUNROOT-vfs
  mkdir -p "$ROOT" "$RUNROOT"
  say "overlay storage unusable here; using vfs in $ROOT"
fi
B=(buildah --root "$ROOT" --runroot "$RUNROOT" --storage-driver "$DRIVER")

# --- 3. base image ------------------------------------------------------------------------------
# The recipe's hash is stamped beside the tarball and on the image: change the recipe, get a rebuild.
MMDEBSTRAP_ARGS=(
  --variant=apt --mode=root --format=tar
  --include=python3,python3-venv,python3-pip,ca-certificates
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias' --dpkgopt='path-exclude=/usr/share/info/*'
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin'
)
RECIPE=$(printf '%s\n' bookworm "$MIRROR" "${MMDEBSTRAP_ARGS[@]}" | sha256sum | cut -c1-16)
if [[ ! -f $BASE_TAR || $(cat "$BASE_TAR.recipe" 2>/dev/null) != "$RECIPE" ]]; then
  t=$(date +%s)
  say "building base tarball $BASE_TAR with mmdebstrap (bookworm, python3, venv, pip; recipe $RECIPE)"
  mkdir -p "$(dirname "$BASE_TAR")"
  rm -rf "$BASE_TAR" "$BASE_TAR.partial"
  mmdebstrap --quiet "${MMDEBSTRAP_ARGS[@]}" bookworm "$BASE_TAR.partial" "$MIRROR"
  mv "$BASE_TAR.partial" "$BASE_TAR"
  echo "$RECIPE" >"$BASE_TAR.recipe"
  say "base tarball built in $(elapsed "$t") s ($(du -m "$BASE_TAR" | cut -f1) MB)"
else
  say "base tarball cached at $BASE_TAR (recipe $RECIPE)"
fi

have=$("${B[@]}" inspect --type image --format '{{index .OCIv1.Config.Labels "io.slipway.base.recipe"}}' \
  "$BASE_IMAGE" 2>/dev/null || true)
if [[ $have == "$RECIPE" ]]; then
  say "base image $BASE_IMAGE present in $ROOT ($DRIVER)"
else
  t=$(date +%s)
  c=$("${B[@]}" from scratch)
  "${B[@]}" add "$c" "$BASE_TAR" / >/dev/null
  "${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd '["python3"]' --label io.slipway.base.recipe="$RECIPE" \
    --label org.opencontainers.image.description="Debian bookworm + python3 (slipway local base)" "$c"
  "${B[@]}" commit --quiet --rm "$c" "$BASE_IMAGE" >/dev/null
  say "imported $BASE_IMAGE into $ROOT ($DRIVER) in $(elapsed "$t") s"
fi

# --- 4. loopback registry -----------------------------------------------------------------------
port=${REGISTRY_ADDR##*:}
if listening "$port"; then
  say "registry: something already listens on $REGISTRY_ADDR"
else
  t=$(date +%s)
  mkdir -p "$REGISTRY_DIR/storage"
  cat >"$REGISTRY_DIR/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/storage
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
  setsid nohup docker-registry serve "$REGISTRY_DIR/config.yml" >"$REGISTRY_DIR/registry.log" 2>&1 </dev/null &
  for _ in $(seq 50); do
    listening "$port" && break
    sleep 0.1
  done
  listening "$port" || {
    echo "images.sh: docker-registry did not start; log:" >&2
    tail -20 "$REGISTRY_DIR/registry.log" >&2
    exit 1
  }
  say "started docker-registry on $REGISTRY_ADDR (storage $REGISTRY_DIR/storage) in $(elapsed "$t") s"
fi

say "ready: SLIPWAY_BASE_IMAGE=$BASE_IMAGE SLIPWAY_BUILDAH_ROOT=$ROOT (driver $DRIVER) registry $REGISTRY_ADDR"

# The machine's image settings for `make demo`/`make test` run without these exports: the Makefile
# includes this file when it exists (an exported env var still wins).
cat >"$CACHE/images.mk" <<EOF2
# written by infra/ci/images.sh: this machine's local base image, buildah storage and loopback registry
export SLIPWAY_BASE_IMAGE ?= $BASE_IMAGE
export SLIPWAY_BUILDAH_ROOT ?= $ROOT
export SLIPWAY_BUILDAH_RUNROOT ?= $RUNROOT
export SLIPWAY_IMAGE_REGISTRY ?= $REGISTRY_ADDR/slipway
export SLIPWAY_IMAGE_REGISTRY_TLS_VERIFY ?= false
EOF2
say "wrote $CACHE/images.mk (the Makefile includes it)"
