# The project's two commands: `make demo` and `make test`. See README.md.
SHELL := /bin/bash
export PKG_CONFIG_PATH := /usr/local/lib/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH))

# Tests get a stack of their own (own directory and ports), so they never touch the demo's.
TEST_PG_PORT ?= 55433
TEST_KAFKA_PORT ?= 59093
TEST_STACK := SCEN_STACK_DIR=$(CURDIR)/.stack-test SCEN_STACK_PG_PORT=$(TEST_PG_PORT) SCEN_STACK_KAFKA_PORT=$(TEST_KAFKA_PORT)

.PHONY: demo test bootstrap build stack-up stack-down stack-status clean

bootstrap:
	@scripts/bootstrap

build: bootstrap

stack-up:
	@scripts/stack up

stack-down:
	@scripts/stack down

stack-status:
	@scripts/stack status

# Every suite: hermetic unit tests, the real-model tests and the stack tests. Release mode,
# because the real-model tests run the forward pass; the build is the one bootstrap made.
test: bootstrap
	@echo "test: compose/docker-compose.yml is valid (docker-compose config)"
	@SCEN_ADMIN_TOKEN=check SCEN_DB_PASSWORD=check docker-compose -f compose/docker-compose.yml config -q
	@$(TEST_STACK) scripts/stack up
	@set -o pipefail; status=0; \
	  SCEN_STACK_ENV=$(CURDIR)/.stack-test/env SCEN_REQUIRE_STACK=1 SCEN_REQUIRE_MODEL=1 \
	    swift test -c release --disable-testable-imports 2>&1 | scripts/test-summary || status=$$?; \
	  $(TEST_STACK) scripts/stack down; exit $$status

demo: bootstrap
	@scripts/demo

clean:
	rm -rf .build .stack-test
