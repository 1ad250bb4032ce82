#!/usr/bin/env bash
# Builds the Supervisor Service package (`make carvel`, `make carvel-push`):
#   OUT/bundle/                      the imgpkg bundle: config/ (carvel/config/ and what crds/ holds generated:
#                                    the CRD and its admission policy) and .imgpkg/images.yml (kbld's lock of
#                                    the operator image)
#   OUT/vmray-operator-<version>.yaml  the one file a VI admin uploads in vSphere Client:
#                                    PackageMetadata + Package, the bundle pinned by digest
#   OUT/values-sample.yaml           sample install values
#   OUT/prometheus-alerts.yaml       Prometheus alert rules on the operator's metrics (carvel/monitoring/)
#   OUT/monitoring/                  Grafana dashboards and Prometheus scrape configurations (carvel/monitoring/)
#   OUT/bundle.digest                the bundle's digest (sha256:...)
# The digest comes from pushing the bundle to an OCI registry on loopback (crane registry serve) that
# lives only while this script runs: imgpkg bundles are reproducible, so the same bundle pushed to
# the real registry has the same digest. With PUSH=1 the bundle is pushed there too and the two
# digests are compared.
#
# usage: build-carvel.sh [OUT]        (default OUT: build/carvel)
# environment:
#   CARVEL_REGISTRY  registry and path the Package refers to; the bundle is
#                    $CARVEL_REGISTRY/vmray-operator-bundle (required)
#   OPERATOR_IMAGE   the operator image (default $CARVEL_REGISTRY/vmray-operator:<version>); kbld resolves
#                    a tag to its digest through the image's registry, a reference with @sha256: is
#                    taken as it is
#   PUSH             1: also push the bundle to $CARVEL_REGISTRY
#   RELEASED_AT      RFC 3339 time of the release (default: the time of the last commit)
#   REGISTRY_INSECURE  1: talk plain HTTP to $CARVEL_REGISTRY and the operator image's registry
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${VMRAY_CACHE:-$HOME/.cache/vmray-dev}/bin
out=$(mkdir -p "${1:-$root/build/carvel}" && cd "${1:-$root/build/carvel}" && pwd)
say() { printf '[carvel] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

for tool in ytt kbld imgpkg crane; do
  [ -x "$bin/$tool" ] || die "$tool is not installed: run 'make tools' (ci/scripts/install-tools.sh)"
done
: "${CARVEL_REGISTRY:?set CARVEL_REGISTRY to the registry and path the Package refers to}"
CARVEL_REGISTRY=${CARVEL_REGISTRY%/}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml" | head -n 1)
[ -n "$version" ] || die "no version in pyproject.toml"
operator_image=${OPERATOR_IMAGE:-$CARVEL_REGISTRY/vmray-operator:$version}
released_at=${RELEASED_AT:-$(TZ=UTC git -C "$root" log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || true)}
released_at=${released_at:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
insecure=()
[ "${REGISTRY_INSECURE:-}" = 1 ] && insecure=(--registry-insecure)

work=$(mktemp -d)
registry_pid=""
cleanup() {
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The release notes: the version's section of CHANGELOG.md (a version without one is not packaged).
awk -v heading="## $version" '
  /^## / { inside = ($0 == heading); next }
  inside { print }
' "$root/CHANGELOG.md" >"$work/release-notes.md"
grep -q '[^[:space:]]' "$work/release-notes.md" || die "CHANGELOG.md has no section '## $version'"

# 1. The bundle's config: the templates, and the CRD and admission policy generated from the API models
#    (never a copy kept by hand). Files get fixed permissions; imgpkg ignores times, so the same sources
#    give the same bundle.
bundle=$out/bundle
rm -rf "$bundle"
mkdir -p "$bundle/config/crds" "$bundle/.imgpkg"
cp "$root"/carvel/config/* "$bundle/config/"
cp "$root"/crds/*.yaml "$bundle/config/crds/"
find "$bundle" -type d -exec chmod 0755 {} + && find "$bundle" -type f -exec chmod 0644 {} +

# 2. .imgpkg/images.yml: kbld maps the templates' logical image name to the operator image, pinned by digest.
preresolved=false
case $operator_image in *@sha256:*) preresolved=true ;; esac
cat >"$work/kbld.yaml" <<EOF
apiVersion: kbld.k14s.io/v1alpha1
kind: Config
overrides:
- image: vmray-operator
  newImage: $operator_image
  preresolved: $preresolved
EOF
say "resolving the operator image $operator_image"
# (any namespace does: this rendering only shows kbld the image; an install's comes from kapp-controller)
"$bin/ytt" -f "$bundle/config" --data-value namespace=image-resolution >"$work/rendered.yaml"
"$bin/kbld" -f "$work/rendered.yaml" -f "$work/kbld.yaml" "${insecure[@]}" \
  --imgpkg-lock-output "$bundle/.imgpkg/images.yml" >/dev/null \
  || die "kbld could not resolve $operator_image: push the image built from the Dockerfile first, or set OPERATOR_IMAGE (a reference with @sha256: needs no registry)"
grep -q '@sha256:' "$bundle/.imgpkg/images.yml" || die "images.yml holds no digest"
chmod 0644 "$bundle/.imgpkg/images.yml"

# 3. The bundle's digest, from a registry on loopback.
: >"$work/registry.log"  # there before the background job opens it: the loop below reads it at once
"$bin/crane" registry serve --address 127.0.0.1:0 >>"$work/registry.log" 2>&1 &
registry_pid=$!
port=""
for _ in $(seq 600); do  # up to 30 s on a busy machine
  port=$(sed -n 's/.*serving on port \([0-9][0-9]*\).*/\1/p' "$work/registry.log")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || die "the loopback registry did not start: $(cat "$work/registry.log")"

push() {  # push REPOSITORY: pushes the bundle, prints its digest
  "$bin/imgpkg" push -b "$1:$version" -f "$bundle" --lock-output "$work/lock.yaml" "${@:2}" >&2
  sed -n 's/^ *image: .*@\(sha256:[0-9a-f]\{64\}\)$/\1/p' "$work/lock.yaml"
}
say "pushing the bundle to the loopback registry 127.0.0.1:$port"
digest=$(push "127.0.0.1:$port/vmray-operator-bundle")
[ -n "$digest" ] || die "imgpkg reported no digest"
say "bundle digest $digest"
printf '%s\n' "$digest" >"$out/bundle.digest"

if [ "${PUSH:-}" = 1 ]; then
  say "pushing the bundle to $CARVEL_REGISTRY/vmray-operator-bundle:$version"
  pushed=$(push "$CARVEL_REGISTRY/vmray-operator-bundle" "${insecure[@]}")
  [ "$pushed" = "$digest" ] || die "the registry holds the bundle as $pushed, expected $digest"
fi

# 4. The file the VI admin uploads (with the release notes read above), the sample values and the alert rules.
"$bin/ytt" -f "$bundle/config" --data-values-schema-inspect -o openapi-v3 >"$work/values-openapi.yaml"
package=$out/vmray-operator-$version.yaml
"$bin/ytt" -f "$root/carvel/package" \
  --data-value "version=$version" \
  --data-value "releasedAt=$released_at" \
  --data-value-file "releaseNotes=$work/release-notes.md" \
  --data-value "bundle=$CARVEL_REGISTRY/vmray-operator-bundle@$digest" \
  --data-value-file "valuesOpenAPI=$work/values-openapi.yaml" >"$package"
cp "$root/carvel/values-sample.yaml" "$out/values-sample.yaml"
cp "$root/carvel/monitoring/alerts.yaml" "$out/prometheus-alerts.yaml"
mkdir -p "$out/monitoring"
cp "$root"/carvel/monitoring/grafana-*.json "$root/carvel/monitoring/prometheus-scrape.yaml" \
  "$root/carvel/monitoring/servicemonitor.yaml" "$out/monitoring/"
say "bundle:  $bundle"
say "package: $package (upload it in vSphere Client: Workload Management -> Services -> Add New Service)"
say "values:  $out/values-sample.yaml"
say "alerts:  $out/prometheus-alerts.yaml (Prometheus rule_files)"
say "monitoring: $out/monitoring/ (Grafana dashboards to import, Prometheus scrape configurations)"
