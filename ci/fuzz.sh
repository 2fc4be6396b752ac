#!/usr/bin/env bash
# Runs every Fuzz* target of the library for a short time each (FUZZTIME,
# default 5s). Targets are discovered with `go test -list`, so new ones run
# without editing this script. Seed corpora live in testdata/fuzz/ and also
# run, as regression tests, in every plain `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-5s}

ran=0
for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "fuzz: $pkg $target ($FUZZTIME)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
		ran=$((ran + 1))
	done
done
if [ "$ran" -eq 0 ]; then
	echo "fuzz: no Fuzz targets found"; exit 1
fi
echo "fuzz: $ran targets ok"
