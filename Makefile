# postern: the two commands are `make run` and `make test`. CMake + Ninja underneath.
.PHONY: all bootstrap build build-test run test bench fuzz clean

BUILD      ?= build/release
TESTBUILD  ?= build/asan
JOBS       ?= $(shell nproc)
CONFIG     ?= examples/postern.conf

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTERN_TESTS=OFF >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Tests run under ASan+UBSan with clang (which also builds the libFuzzer targets);
# the release build is made too so that gcc -Werror stays clean.
build-test: build
	@CC=clang cmake -S . -B $(TESTBUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DPOSTERN_SANITIZE=ON -DPOSTERN_FUZZ=ON >/dev/null
	@cmake --build $(TESTBUILD) -j $(JOBS)

run: build
	@mkdir -p var
	exec $(BUILD)/postern serve --config $(CONFIG)

test: build-test
	@cd $(TESTBUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900

fuzz: build-test
	@cd $(TESTBUILD) && ctest -L fuzz --output-on-failure

bench: build
	@bench/intake && bench/relay && bench/route

clean:
	rm -rf build var
