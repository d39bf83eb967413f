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

.PHONY: all test test-unit test-faults bench vet build services-up services-down services-reset env

all: build

## test: vet, then every test with -race against real Redis and Kafka.
test:
	$(WITH_SERVICES) bash -c '$(GO) vet $(PKGS) && $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)'

## test-unit: tests without the services (integration tests skip).
test-unit:
	env -u OPPSYNC_TEST_REDIS_ADDR -u OPPSYNC_TEST_KAFKA_BROKERS $(GO) test -count=1 $(PKGS)

## test-faults: fault-injection tests (build tag faults, names matching Fault),
## one package at a time: they stop and start the shared services.
test-faults:
	$(WITH_SERVICES) $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -p 1 -tags faults -run Fault $(PKGS)

## bench: benchmarks only, with the services up.
bench:
	$(WITH_SERVICES) $(GO) test -run '^$$' -bench . -benchmem -timeout $(TEST_TIMEOUT) $(PKGS)

vet:
	$(GO) vet $(PKGS)

build:
	$(GO) build -o bin/oppsync ./cmd/oppsync

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
