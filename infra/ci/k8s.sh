#!/usr/bin/env bash
# A REAL Kubernetes control plane for the Kubernetes tests, idempotent, run as root (by .ci/run):
#   1. installs etcd-server, and golang-go when a build is needed (only those missing);
#   2. unless cached, builds kube-apiserver and kube-controller-manager 1.20.2 from Debian bookworm's
#      `kubernetes` source package (the full upstream tree with vendor/, built offline in GOPATH mode
#      as 1.20's own scripts did) and installs them into a fixed cache OUTSIDE the repo;
#   3. links Debian's etcd next to them, so SLIPWAY_K8S_BIN holds all three.
# Cold: ~10 min on 2 cores (the build); warm: under a second. Nothing is pulled from outside Debian.
# See shared notes k8s-testing.md and README "Kubernetes" (tests/integration/k8s/ runs them).
#
# Env:
#   SLIPWAY_K8S_BIN         where the binaries go    (/var/cache/slipway/k8s/v1.20.2)
#   SLIPWAY_DEBIAN_MIRROR   Debian mirror            (http://deb.debian.org/debian)
set -euo pipefail

VERSION=v1.20.2
BIN=${SLIPWAY_K8S_BIN:-/var/cache/slipway/k8s/$VERSION}
MIRROR=${SLIPWAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SLIPWAY_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

say() { echo "== k8s: $*"; }
elapsed() { echo $(($(date +%s) - $1)); }

if [[ $(id -u) -ne 0 ]]; then
  echo "k8s.sh: run as root (it installs packages)" >&2
  exit 2
fi
start=$(date +%s)

# --- 1. packages --------------------------------------------------------------------------------
t=$(date +%s)
built() { [[ -x $BIN/kube-apiserver && -x $BIN/kube-controller-manager ]]; }
wanted=(etcd-server)
built || wanted+=(golang-go)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "apt install took $(elapsed "$t") s"
fi
ETCD=$(command -v etcd)
GO=$(command -v go || true)
say "packages present (etcd $("$ETCD" --version | awk '/etcd Version/ {print $3}')${GO:+, $(go version | awk '{print $3}')})"

# --- 2. kube-apiserver + kube-controller-manager ------------------------------------------------
if built; then
  say "binaries cached in $BIN"
else
  W=$(dirname "$BIN")/work
  rm -rf "$W"
  mkdir -p "$W/apt/lists/partial" "$W/apt/cache/archives/partial" "$W/src" "$W/gopath/src/k8s.io"
  trap 'say "build failed; work dir kept in $W"' ERR

  # The source package, through a private sources list (the machine's /etc/apt is left alone).
  t=$(date +%s)
  cat >"$W/apt/sources.list" <<EOF
deb-src [signed-by=$KEYRING] $MIRROR bookworm main
deb-src [signed-by=$KEYRING] $SECURITY_MIRROR bookworm-security main
EOF
  APT=(apt-get -q -o "Dir::Etc::SourceList=$W/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$W/apt/lists" -o "Dir::Cache=$W/apt/cache" -o APT::Sandbox::User=root)
  "${APT[@]}" update >/dev/null
  (cd "$W/src" && "${APT[@]}" source --download-only kubernetes >/dev/null)
  orig=$(ls "$W"/src/kubernetes_*.orig.tar.gz)
  tar -xzf "$orig" -C "$W/src"
  TREE=$W/src/kubernetes-${VERSION#v}
  [[ -d $TREE/vendor && -d $TREE/staging ]] || {
    echo "k8s.sh: $orig has no kubernetes-${VERSION#v}/ with vendor/ and staging/" >&2
    exit 1
  }
  say "fetched $(basename "$orig") in $(elapsed "$t") s"

  # GOPATH mode (module mode fails with "updates to go.mod needed"), offline, static.
  export GO111MODULE=off GOPATH=$W/gopath GOPROXY=off GOFLAGS= CGO_ENABLED=0 GOCACHE=$W/gocache
  ln -s "$TREE" "$GOPATH/src/k8s.io/kubernetes"
  cd "$GOPATH/src/k8s.io/kubernetes"

  # The OpenAPI definitions the apiserver serves (generated, not in the tarball): every package
  # whose Go files carry a `+k8s:openapi-gen=` tag, staging/src seen through vendor/.
  t=$(date +%s)
  go build -o "$W/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
  grep -rlE --include='*.go' '^\s*//\s*\+k8s:openapi-gen=' . |
    grep -vE '/(testdata|_output)/|^\./(vendor|staging/src)/k8s\.io/(code-generator|sample-apiserver)/' |
    xargs -n1 dirname | sed -E 's,^\./,,; s,^staging/src/,vendor/,' | sort -u |
    sed 's,^,k8s.io/kubernetes/,' >"$W/openapi-input-dirs"
  "$W/openapi-gen" --input-dirs "$(paste -sd, "$W/openapi-input-dirs")" \
    -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi -o "$GOPATH/src" \
    -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt --report-filename "$W/openapi-violations.txt"
  say "generated OpenAPI definitions ($(wc -l <"$W/openapi-input-dirs") packages) in $(elapsed "$t") s"

  ldflags="-s -w"
  for pkg in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=20"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  mkdir -p "$W/out"
  for cmd in kube-apiserver kube-controller-manager; do
    t=$(date +%s)
    go build -trimpath -ldflags "$ldflags" -o "$W/out/$cmd" "./cmd/$cmd"
    say "built $cmd in $(elapsed "$t") s ($(du -m "$W/out/$cmd" | cut -f1) MB)"
  done
  "$W/out/kube-apiserver" --version | grep -q "$VERSION" || {
    echo "k8s.sh: built kube-apiserver does not report $VERSION" >&2
    exit 1
  }

  cd /
  mkdir -p "$BIN"
  install -m 0755 "$W/out/kube-apiserver" "$W/out/kube-controller-manager" "$BIN/"
  echo "kubernetes $(basename "$orig" .orig.tar.gz | cut -d_ -f2) from Debian bookworm, built $(date -u +%FT%TZ)" >"$BIN/SOURCE"
  rm -rf "$W"
  trap - ERR
  say "installed into $BIN"
fi

# --- 3. etcd beside them ------------------------------------------------------------------------
ln -sfn "$ETCD" "$BIN/etcd"
say "ready in $(elapsed "$start") s: SLIPWAY_K8S_BIN=$BIN ($("$BIN/kube-apiserver" --version), etcd -> $ETCD)"
