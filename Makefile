# Developer shortcuts; CI runs .ci/run.
.PHONY: all fmt lint test ci

all: fmt lint test

fmt:
	gofmt -s -w .
	go mod tidy

lint:
	go vet ./...

test:
	go test -race -count=1 ./...

ci:
	bash .ci/run
