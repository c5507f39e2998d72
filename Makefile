# kavach build targets. `make test` is what CI runs.
GO ?= go
PKGS := ./...

.PHONY: build test bench vet fmt clean

# Static (no cgo): sandbox inits re-execute this binary, and a static one
# starts faster (docs/performance.md).
build:
	CGO_ENABLED=0 $(GO) build -o bin/kavach ./cmd/kavach

test:
	$(GO) test -count=1 -timeout 20m $(PKGS)

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l .)" || (gofmt -l .; exit 1)

# Go benchmarks, then the side-by-side comparison with bare exec and peers.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem . ./policy ./score ./lifecycle ./backend/process ./internal/seccomp
	./bin/kavach bench

clean:
	rm -rf bin
