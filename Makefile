# Developer entry points; each target is a script that also runs alone.
# CI runs .ci/run, which calls the same scripts. Every target that checks Go
# code covers every module of the repository (ci/modules.sh).
.PHONY: all fmt test lint tidy vulncheck fuzz bench bench-quick ci

all: fmt lint test

fmt:
	gofmt -s -w .
	ci/tidy.sh --write

test:
	ci/test.sh

lint:
	ci/lint.sh

tidy:
	ci/tidy.sh

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
