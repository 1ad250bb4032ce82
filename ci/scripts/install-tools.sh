#!/usr/bin/env bash
# Builds and caches the pinned tools the project needs outside the work tree:
# kube-apiserver and kubectl (from Kubernetes' Go sources), etcd, the Carvel CLIs, crane (whose
# `crane registry serve` is the loopback OCI registry of the Carvel package build), controller-gen, and VM
# Operator's CRDs generated with it from VM Operator's API module (the local cloud serves them).
# Idempotent: a tool already built at its pinned version is not built again.
# Result: $VMRAY_CACHE/bin/<tool> points at the pinned build of each tool, $VMRAY_CACHE/vm-operator-crds at
# the generated CRDs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../versions.env
. "$here/../versions.env"

cache=${VMRAY_CACHE:-$HOME/.cache/vmray-dev}
bin=$cache/bin
mkdir -p "$bin" "$cache/build"
export GOFLAGS=-buildvcs=false
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}

say() { printf '[install-tools] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
command -v go >/dev/null || die "go is not on PATH; install Go 1.24 or newer"

# link NAME PATH: make $bin/NAME point at PATH
link() { ln -sfn "$2" "$bin/$1"; }

# built NAME VERSION: true when the pinned build exists already
built() { [ -x "$cache/$1/$2/$1" ]; }

timed() {  # timed LABEL CMD...: runs CMD, printing how long it took
  local label=$1 start=$SECONDS; shift
  say "$label ..."
  "$@" || die "$label failed (see the output above)"
  say "$label done in $((SECONDS - start)) s"
}

build_kubernetes() {
  local v=$KUBERNETES_VERSION staging_v work
  local tools="kube-apiserver kube-controller-manager kubectl" t missing=""
  for t in $tools; do built "$t" "$v" || missing="$missing $t"; done
  if [ -z "$missing" ]; then
    for t in $tools; do link "$t" "$cache/$t/$v/$t"; done
    return
  fi
  staging_v=v0.${v#v1.}
  work=$cache/build/kubernetes-$v
  mkdir -p "$work/cmd/kube-apiserver" "$work/cmd/kube-controller-manager" "$work/cmd/kubectl"
  timed "downloading k8s.io/kubernetes@$v" go mod download -json "k8s.io/kubernetes@$v" >"$work/download.json"
  local gomod
  gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' "$work/download.json")
  [ -f "$gomod" ] || die "no go.mod for k8s.io/kubernetes@$v"
  {
    printf 'module vmray.local/kubernetes-build\n\ngo 1.24\n\nrequire k8s.io/kubernetes %s\n\n' "$v"
    # Every staging module the release replaces with a local path comes from the proxy instead.
    grep -E '^\s*(replace\s+)?k8s\.io/[^ ]+ => \./staging/' "$gomod" \
      | sed -E 's/^\s*(replace\s+)?(k8s\.io\/[^ ]+) => .*/replace \2 => \2 '"$staging_v"'/'
  } >"$work/go.mod"
  cat >"$work/cmd/kube-apiserver/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
GO
  cat >"$work/cmd/kube-controller-manager/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() { os.Exit(cli.Run(app.NewControllerManagerCommand())) }
GO
  cat >"$work/cmd/kubectl/main.go" <<'GO'
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err)
	}
}
GO
  (cd "$work" && timed "resolving Kubernetes $v modules" go mod tidy)
  local minor=${v#v1.}; minor=${minor%%.*}
  local version_flags="-X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1"
  version_flags="$version_flags -X k8s.io/component-base/version.gitMinor=$minor"
  version_flags="$version_flags -X k8s.io/component-base/version.gitTreeState=clean"
  for t in $missing; do
    mkdir -p "$cache/$t/$v"
    (cd "$work" && timed "building $t $v (minutes on a fresh machine)" \
      go build -trimpath -ldflags="-s -w $version_flags" -o "$cache/$t/$v/$t" "./cmd/$t")
  done
  for t in $tools; do link "$t" "$cache/$t/$v/$t"; done
}

build_etcd() {
  local v=$ETCD_VERSION work
  if ! built etcd "$v"; then
    work=$cache/build/etcd-$v
    mkdir -p "$work"
    printf 'module vmray.local/etcd-build\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$v" >"$work/go.mod"
    cat >"$work/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    (cd "$work" && timed "resolving etcd $v modules" go mod tidy)
    mkdir -p "$cache/etcd/$v"
    (cd "$work" && timed "building etcd $v" go build -trimpath -ldflags='-s -w' -o "$cache/etcd/$v/etcd" .)
  fi
  link etcd "$cache/etcd/$v/etcd"
}

install_go_tool() {  # install_go_tool NAME MODULE PACKAGE VERSION
  local name=$1 module=$2 pkg=$3 v=$4 work
  if ! built "$name" "$v"; then
    # A scratch module pins the version; `go install pkg@v` would also ask the proxy for the module's
    # version list, which the proxy refuses for carvel.dev.
    work=$cache/build/$name-$v
    mkdir -p "$work" "$cache/$name/$v"
    printf 'module vmray.local/%s-build\n\ngo 1.24\n\nrequire %s %s\n' "$name" "$module" "$v" >"$work/go.mod"
    # The checksum database does not list carvel.dev modules; they are still fetched by pinned version.
    (cd "$work" && GONOSUMDB=carvel.dev GOFLAGS="$GOFLAGS -mod=mod" timed "building $name $v" \
      go build -trimpath -ldflags='-s -w' -o "$cache/$name/$v/$name" "$pkg")
  fi
  link "$name" "$cache/$name/$v/$name"
}

build_controller_gen() {
  local v=$CONTROLLER_TOOLS_VERSION work
  if ! built controller-gen "$v"; then
    work=$cache/build/controller-gen-$v
    mkdir -p "$work" "$cache/controller-gen/$v"
    printf 'module vmray.local/controller-gen-build\n\ngo 1.24\n\nrequire (\n\tsigs.k8s.io/controller-tools %s\n\tgolang.org/x/tools %s\n)\n' \
      "$v" "$CONTROLLER_GEN_X_TOOLS_VERSION" >"$work/go.mod"
    (cd "$work" && GOFLAGS="$GOFLAGS -mod=mod" timed "building controller-gen $v" \
      go build -trimpath -ldflags='-s -w' -o "$cache/controller-gen/$v/controller-gen" \
      sigs.k8s.io/controller-tools/cmd/controller-gen)
  fi
  link controller-gen "$cache/controller-gen/$v/controller-gen"
}

generate_vmop_crds() {
  # VM Operator's CRDs from the Go types of its API module, generated the way VM Operator's own Makefile
  # does (controller-gen's crd generator over every API version package, CRD v1 only). Measured with empty
  # Go caches: controller-gen builds in about 75 s, the module's fetch and the generation take 7 s more.
  local module=github.com/vmware-tanzu/vm-operator/api v=$VM_OPERATOR_API_VERSION
  local out=$cache/vm-operator-crds-$v-controller-gen-$CONTROLLER_TOOLS_VERSION work
  if ! ls "$out"/vmoperator.vmware.com_virtualmachines.yaml >/dev/null 2>&1; then
    work=$cache/build/vm-operator-crds-$v
    mkdir -p "$work"
    printf 'module vmray.local/vm-operator-crds\n\ngo 1.24\n\nrequire %s %s\n' "$module" "$v" >"$work/go.mod"
    # The module's root package imports every API version: `go mod tidy` then fetches all their types need.
    printf 'package crds\n\nimport _ "%s"\n' "$module" >"$work/crds.go"
    (cd "$work" && timed "fetching $module $v" go mod tidy)
    rm -rf "$out.tmp"
    (cd "$work" && timed "generating VM Operator's CRDs with controller-gen $CONTROLLER_TOOLS_VERSION" \
      "$cache/controller-gen/$CONTROLLER_TOOLS_VERSION/controller-gen" "paths=$module/..." crd:crdVersions=v1 \
      "output:crd:dir=$out.tmp" output:none)
    rm -rf "$out" && mv "$out.tmp" "$out"
  fi
  ln -sfn "$out" "$cache/vm-operator-crds"
}

install_cloud_init() {
  # cloud-init's own JSON schema, from Debian's package, to validate the user-data we render.
  local v=$CLOUD_INIT_DEB_VERSION dir=$cache/cloud-init/$CLOUD_INIT_DEB_VERSION
  if [ ! -f "$dir/schema-cloud-config-v1.json" ]; then
    command -v apt-get >/dev/null || die "apt-get is needed to fetch Debian's cloud-init package"
    mkdir -p "$dir/deb"
    if ! (cd "$dir/deb" && apt-get download "cloud-init=$v" >/dev/null 2>&1); then
      timed "refreshing the package lists" apt-get update -qq
      (cd "$dir/deb" && timed "downloading cloud-init $v" apt-get download "cloud-init=$v")
    fi
    dpkg-deb -x "$dir"/deb/cloud-init_*.deb "$dir/root"
    cp "$dir/root/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json" "$dir/"
    rm -rf "$dir/deb"
    say "cloud-init $v schema ready"
  fi
  ln -sfn "$dir/schema-cloud-config-v1.json" "$cache/schema-cloud-config-v1.json"
}

install_system_packages() {
  # The simulator's ray mode runs each VM in network and mount namespaces: ip (iproute2), unshare, mount.
  if ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then
    timed "installing iproute2 and util-linux" bash -c 'apt-get update -qq && apt-get install -y -qq iproute2 util-linux'
  fi
}

start=$SECONDS
install_system_packages
install_cloud_init
build_etcd
build_kubernetes
install_go_tool ytt carvel.dev/ytt carvel.dev/ytt/cmd/ytt "$YTT_VERSION"
install_go_tool kbld carvel.dev/kbld carvel.dev/kbld/cmd/kbld "$KBLD_VERSION"
install_go_tool imgpkg carvel.dev/imgpkg carvel.dev/imgpkg/cmd/imgpkg "$IMGPKG_VERSION"
install_go_tool kapp carvel.dev/kapp carvel.dev/kapp/cmd/kapp "$KAPP_VERSION"
install_go_tool crane github.com/google/go-containerregistry github.com/google/go-containerregistry/cmd/crane \
  "$CRANE_VERSION"
build_controller_gen
generate_vmop_crds
say "tools ready in $bin ($((SECONDS - start)) s)"
