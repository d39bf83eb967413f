# oppsync developer and CI entry points. `make test` is what .ci/run runs.
#
# Integration tests talk to a real Redis and a real Apache Kafka 4.x broker,
# started by test/redis.sh and test/kafka.sh (see internal/testenv). Needs
# Go, Java 17+ and Maven; Redis is installed from Debian's packages when
# missing, the Kafka jars come from Maven Central into .cache/.

SHELL := /bin/bash
GO ?= go
PKGS ?= ./...
TEST_TIMEOUT ?= 30m
WITH_SERVICES := test/with-services.sh

.PHONY: all test test-unit test-faults bench bench-scale vet lint build generate services-up services-down services-reset env

all: build

## test: lint (gofmt, staticcheck), installs Debian's chromium for the browser test when missing
## (test/browser.sh), vets (with and without the faults tag), then runs every test with -race
## against real Redis and Kafka, then the fault-injection tests (test-faults)
## with the same services. The cluster and security tests start their own
## Redis Cluster, TLS Redis and SASL_SSL broker (test/redis-cluster.sh,
## test/certs.sh, test/kafka.sh with KAFKA_SASL_SSL_CERTS).
test: lint
	test/browser.sh >/dev/null
	$(WITH_SERVICES) bash -c '$(GO) vet $(PKGS) && $(GO) vet -tags faults $(PKGS) && \
		$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS) && \
		$(FAULTS_TEST)'

## test-unit: tests without the services (integration tests skip).
test-unit:
	env -u OPPSYNC_TEST_REDIS_ADDR -u OPPSYNC_TEST_KAFKA_BROKERS $(GO) test -count=1 $(PKGS)

## test-faults: fault-injection tests (build tag faults, names matching Fault),
## one package at a time: they stop and start the shared services.
FAULTS_TEST = $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -p 1 -tags faults -run Fault $(PKGS)
test-faults:
	$(WITH_SERVICES) $(FAULTS_TEST)

## bench: benchmarks only, with the services up.
bench:
	$(WITH_SERVICES) $(GO) test -run '^$$' -bench . -benchmem -timeout $(TEST_TIMEOUT) $(PKGS)

## bench-scale: `oppsync bench` with 1, 2 and 3 instances in one consumer
## group (BENCH_EVENTS events, BENCH_PARTITIONS partitions each run).
BENCH_EVENTS ?= 50000
BENCH_PARTITIONS ?= 6
bench-scale:
	$(WITH_SERVICES) bash -c 'for n in 1 2 3; do \
		$(GO) run ./cmd/oppsync bench --brokers "$$OPPSYNC_TEST_KAFKA_BROKERS" --redis "$$OPPSYNC_TEST_REDIS_ADDR" \
			--events $(BENCH_EVENTS) --partitions $(BENCH_PARTITIONS) --instances $$n || exit 1; done'

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags faults $(PKGS)

## lint: gofmt and staticcheck (a pinned version, installed from the Go module
## proxy into .cache/bin when missing). The faults tag is on so the fault
## tests are checked too; no file is built only without it.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK := $(CURDIR)/.cache/bin/staticcheck-$(STATICCHECK_VERSION)
lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
		if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(STATICCHECK) -tags faults $(PKGS)

$(STATICCHECK):
	mkdir -p $(CURDIR)/.cache/bin
	GOBIN=$(CURDIR)/.cache/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(CURDIR)/.cache/bin/staticcheck $@

build:
	$(GO) build -o bin/oppsync ./cmd/oppsync

## generate: the Go code of proto/pubsub_api.proto (the Salesforce Pub/Sub
## API client of `oppsync bridge`), committed in pkg/bridge/pubsubpb. Needs
## protoc (Debian's protobuf-compiler, installed when missing); the two Go
## plugins are installed at pinned versions into .cache/bin.
PROTOC_GEN_GO_VERSION ?= v1.36.12
PROTOC_GEN_GO_GRPC_VERSION ?= v1.6.2
PROTOC_GEN_GO := $(CURDIR)/.cache/bin/protoc-gen-go-$(PROTOC_GEN_GO_VERSION)
PROTOC_GEN_GO_GRPC := $(CURDIR)/.cache/bin/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)
generate: $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC)
	command -v protoc >/dev/null || { apt-get update && apt-get install -y protobuf-compiler; }
	mkdir -p pkg/bridge/pubsubpb
	protoc --proto_path=proto \
		--plugin=protoc-gen-go=$(PROTOC_GEN_GO) --go_out=pkg/bridge/pubsubpb --go_opt=paths=source_relative \
		--plugin=protoc-gen-go-grpc=$(PROTOC_GEN_GO_GRPC) --go-grpc_out=pkg/bridge/pubsubpb --go-grpc_opt=paths=source_relative \
		proto/pubsub_api.proto

$(PROTOC_GEN_GO):
	mkdir -p $(CURDIR)/.cache/bin
	GOBIN=$(CURDIR)/.cache/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	mv $(CURDIR)/.cache/bin/protoc-gen-go $@

$(PROTOC_GEN_GO_GRPC):
	mkdir -p $(CURDIR)/.cache/bin
	GOBIN=$(CURDIR)/.cache/bin $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	mv $(CURDIR)/.cache/bin/protoc-gen-go-grpc $@

## services-up: start Redis and Kafka and leave them running; prints their env.
services-up:
	test/redis.sh start
	test/kafka.sh start
	@test/redis.sh env
	@test/kafka.sh env

services-down:
	test/kafka.sh stop
	test/redis.sh stop

## services-reset: stop the services and delete their data and ports.
services-reset: services-down
	rm -rf test/.run

## env: print the exports for the running services (eval "$$(make -s env)").
env:
	@test/redis.sh env
	@test/kafka.sh env
