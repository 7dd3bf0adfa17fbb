# Kiln. `make demo` runs the main job, `make test` runs every test; both
# install what is missing first (see hack/).

GO       ?= go
VERSION  ?= $(shell git describe --tags --dirty 2>/dev/null || echo v0.0.0-dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS  := -X main.version=$(VERSION) -X main.revision=$(REVISION)
TOOLS    := $(CURDIR)/bin/tools

# Pinned code generators and linters (make proto, make lint).
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
STATICCHECK_VERSION        := v0.8.2

.PHONY: all build test demo bench compat-goldens bench-go proto lint clean

all: build

## build: compile bin/kilnd and bin/kiln
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/kilnd ./cmd/kilnd
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/kiln ./cmd/kiln

## test: go vet, gofmt, go mod tidy and every test, e2e included (run as root)
test:
	bash hack/test.sh

## demo: build, start kilnd on its built-in config in ./.state, show kiln info
demo:
	bash hack/demo.sh

## bench: end-to-end benchmarks against a real kilnd, beside BuildKit's figures
bench:
	bash hack/bench.sh

## compat-goldens: rebuild the BuildKit goldens of e2e/testdata/compat (root)
compat-goldens:
	bash hack/compat.sh

## bench-go: the Go micro-benchmarks of every package
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## proto: regenerate api/*.pb.go with the pinned protoc plugins
proto:
	bash -c '. hack/lib.sh && ensure_go && ensure_apt protobuf-compiler && \
		ensure_go_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go $(PROTOC_GEN_GO_VERSION) && \
		ensure_go_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc $(PROTOC_GEN_GO_GRPC_VERSION)'
	PATH="$(TOOLS):$$PATH" protoc -I api -I /usr/include \
		--go_out=api --go_opt=paths=source_relative \
		--go-grpc_out=api --go-grpc_opt=paths=source_relative \
		api/control.proto

## lint: gofmt, go vet, go mod tidy (go.mod unchanged) and staticcheck (pinned)
lint:
	@out=$$(find . -name '*.go' -not -path './bin/*' -not -path './.state/*' -not -path '*/testdata/*' -print0 | xargs -0 gofmt -l); \
		if [ -n "$$out" ]; then echo "gofmt -w needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(GO) mod tidy -diff || { echo 'go.mod or go.sum is not tidy: run "go mod tidy"'; exit 1; }
	bash -c '. hack/lib.sh && ensure_go && ensure_go_tool staticcheck honnef.co/go/tools/cmd/staticcheck $(STATICCHECK_VERSION)'
	$(TOOLS)/staticcheck ./...

clean:
	rm -rf bin .state
