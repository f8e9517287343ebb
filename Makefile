# Svyazka — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /usr/bin/env bash
GO    ?= go
BIN   := bin/svyazka
PKGS  := ./...

.PHONY: run test build services vet lint bench widget clean

## run: start PostgreSQL/Redis if needed, then the whole product in one process
run: services build
	./$(BIN) run

## test: vet (also for windows/amd64, where the connector runs), the connector's Windows
## cross-compile, then every test with the race detector against real PostgreSQL and Redis
## (installs chromium for the browser tests when missing)
test: services
	@./scripts/browser.sh
	$(GO) vet $(PKGS)
	GOOS=windows GOARCH=amd64 $(GO) vet ./connector/... ./cmd/svyazka-connector/
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/svyazka-connector
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## build: the svyazka binary and the svyazka-connector agent in bin/
build:
	$(GO) build -trimpath -o $(BIN) ./cmd/svyazka
	$(GO) build -trimpath -o bin/svyazka-connector ./cmd/svyazka-connector

## connector-windows: the connector agent for the clinic's Windows server (bin/svyazka-connector.exe)
.PHONY: connector-windows
connector-windows:
	GOOS=windows GOARCH=amd64 $(GO) build -trimpath -o bin/svyazka-connector.exe ./cmd/svyazka-connector

## widget: the amoCRM widget archive widget.zip for PUBLIC_URL (validated)
widget: build
	./$(BIN) widget-archive -o widget.zip

## services: make sure PostgreSQL and Redis answer (installs/starts them on a fresh machine)
services:
	@./scripts/services.sh

vet:
	$(GO) vet $(PKGS)

## lint: formatting and vet
lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: every benchmark, with allocations
bench: services
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## bench-sync: the sync's import benchmark (README, «Синхронизация: замеры»): a real worker
## writes SYNC_BENCH_PATIENTS (20000) patients and SYNC_BENCH_APPOINTMENTS (60000) appointments
## into the sandbox at 7 rps (about 6 minutes at full size)
.PHONY: bench-sync
bench-sync: services
	SYNC_BENCH=1 $(GO) test -run '^$$' -bench '^BenchmarkSync$$' -benchtime 1x -timeout 60m -v ./cmd/svyazka/

clean:
	rm -rf bin widget.zip .artifacts
