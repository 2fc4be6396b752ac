#!/usr/bin/env bash
# Runs every Fuzz* target of every module (ci/modules.sh) briefly: FUZZTIME
# executions each (default 3000x). A count, not a duration: with a duration,
# Go 1.26's fuzz coordinator can report "context deadline exceeded", with no
# failing input, when the deadline passes while a starved worker is mid-call
# (golang/go#75804, fixed in Go 1.27); a count has no deadline. Targets are discovered with `go test -list`
# in each package whose tests declare one, so new ones run without editing
# this script. Seed corpora live in testdata/fuzz/ and also run, as
# regression tests, in every plain `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off
FUZZTIME=${FUZZTIME:-3000x}

ran=0
for mod in $(bash ci/modules.sh); do
	for pkg in $(cd "$mod" && go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r p d; do
		if grep -qs '^func Fuzz' "$d"/*_test.go; then echo "$p"; fi
	done); do
		for target in $(cd "$mod" && go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
			echo "fuzz: $pkg $target ($FUZZTIME)"
			(cd "$mod" && go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg")
			ran=$((ran + 1))
		done
	done
done
if [ "$ran" -eq 0 ]; then
	echo "fuzz: no Fuzz targets found"; exit 1
fi
echo "fuzz: $ran targets ok"
