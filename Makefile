# Developer entry points; each target is a script that also runs alone.
# CI runs .ci/run, which calls the same scripts.
.PHONY: all fmt test lint vulncheck fuzz bench bench-quick ci

all: fmt lint test

fmt:
	gofmt -s -w .
	go mod tidy

test:
	go test -race -count=1 ./...

lint:
	ci/lint.sh

vulncheck:
	ci/vulncheck.sh

fuzz:
	ci/fuzz.sh

bench:
	bench/run.sh

bench-quick:
	BENCH_QUICK=1 bench/run.sh

ci:
	bash .ci/run
