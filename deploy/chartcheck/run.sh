#!/usr/bin/env bash
# Checks the Helm chart deploy/helm/modgate offline, as CI does:
#
#   1. helm lint --strict with each values file of the chart's ci/;
#   2. helm template with each, and chartcheck on the output (strict
#      decoding into the Kubernetes types, semantic checks, and every
#      MODGATE_* variable known to `modgate serve --help`);
#   3. values that cannot work must stop the render, with the message
#      that says which value to change;
#   4. chartcheck's own tests.
#
# Usage: deploy/chartcheck/run.sh [HELM]   (default: helm on PATH)
# Run from anywhere; needs the go command. Prints "chart: ok" at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
helm="${1:-helm}"
chart="$root/deploy/helm/modgate"
# The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion):
# helm renders for it, and a helm built by `go install` would otherwise
# assume an old default.
kube_version=1.27.0

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fail() {
	echo "chart: FAILED: $*" >&2
	exit 1
}

echo "chart: modgate serve --help (the options the chart may set)"
(cd "$root" && go run ./cmd/modgate serve --help) >"$work/help.txt" 2>&1 ||
	fail "modgate serve --help: $(tail -3 "$work/help.txt")"

echo "chart: building chartcheck"
(cd "$root/deploy/chartcheck" && go build -o "$work/chartcheck" .) || fail "building chartcheck"

shopt -s nullglob
values=("$chart"/ci/*.yaml)
[ ${#values[@]} -gt 0 ] || fail "no values files in $chart/ci"
for v in "${values[@]}"; do
	name="$(basename "$v" .yaml)"
	echo "chart: lint and template with ci/$name.yaml"
	"$helm" lint --strict --kube-version "$kube_version" "$chart" -f "$v" >"$work/lint-$name.txt" 2>&1 ||
		{ cat "$work/lint-$name.txt"; fail "helm lint with ci/$name.yaml"; }
	"$helm" template modgate "$chart" --namespace modgate --kube-version "$kube_version" -f "$v" \
		>"$work/$name.yaml" 2>"$work/template-$name.txt" ||
		{ cat "$work/template-$name.txt"; fail "helm template with ci/$name.yaml"; }
	"$work/chartcheck" -options-help "$work/help.txt" "$work/$name.yaml" || fail "chartcheck with ci/$name.yaml"
done

# Values the chart must refuse, each with words of its message.
refuse() {
	local want="$1"
	shift
	if "$helm" template modgate "$chart" --kube-version "$kube_version" "$@" >"$work/refused.yaml" 2>"$work/refused.txt"; then
		fail "helm template $* rendered; want a refusal saying: $want"
	fi
	grep -qF -- "$want" "$work/refused.txt" ||
		fail "helm template $* failed with $(cat "$work/refused.txt"); want a message saying: $want"
}
echo "chart: values that must be refused"
refuse "upstream is required"
refuse "storage.kind must be disk or s3" --set upstream=https://u.example --set storage.kind=gcs
refuse "disk runs exactly one replica" --set upstream=https://u.example --set replicaCount=3
refuse "autoscaling needs storage.kind s3" --set upstream=https://u.example --set autoscaling.enabled=true
refuse "storage.s3.bucket is required" --set upstream=https://u.example --set storage.kind=s3
refuse "needs redis.url" --set upstream=https://u.example --set storage.kind=s3 --set storage.s3.bucket=b
refuse "go together" --set upstream=https://u.example --set storage.kind=s3 --set storage.s3.bucket=b --set replicaCount=1 --set storage.s3.accessKey=k
refuse "tls.enabled needs tls.secretName" --set upstream=https://u.example --set tls.enabled=true
refuse "options.redis: set by the chart" --set upstream=https://u.example --set options.redis=redis://r:6379
refuse "flag name" --set upstream=https://u.example --set options.LIST_TTL=1m
refuse "not both" --set upstream=https://u.example --set podDisruptionBudget.minAvailable=2

echo "chart: chartcheck's tests"
(cd "$root/deploy/chartcheck" && go test -count=1 ./...) || fail "chartcheck's tests"
echo "chart: ok"
