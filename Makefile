# Thin wrapper over CMake/ctest. The two commands of the README:
#   make demo   set up (Debian + pinned npm packages), build, and run the main job
#   make test   set up, build, and run the whole test suite (then the unit tests under ASan/UBSan)
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
export GRAFT_CACHE ?= $(HOME)/.cache/graft

.PHONY: all setup build test test-fast asan fuzz demo bench-infer bench-data bench-train bench-transfer bench-keyword clean

all: build

setup:
	@bash scripts/setup.sh

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)

# The whole suite, then the fast labels again under AddressSanitizer + UBSan, then every fuzz
# target for 60 s (libFuzzer; two at a time on the two cores).
test: setup build
	cd $(BUILD) && ctest --output-on-failure -j1
	$(MAKE) asan
	FUZZ_JOBS=2 bash scripts/fuzz.sh --ci 60

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -L 'unit|op|onnx|badinput'

# -O2 -g as ./build (ASan at -O0 ran the keyword features 3x slower); the tests run at reduced
# sizes there (GRAFT_TEST_SMALL, tests/CMakeLists.txt).
asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRAFT_SANITIZE=ON > /dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L 'unit|op|onnx|badinput|fuzz'

# libFuzzer on every parser (clang): FUZZ_SECONDS per target (300); see fuzz/README.md.
fuzz:
	@bash scripts/fuzz.sh

demo: setup build
	@bash scripts/demo.sh $(BUILD)

bench-infer: setup build
	@bash bench/infer.sh $(BUILD)

bench-data: setup build
	@bash bench/data.sh $(BUILD)

bench-train: setup build
	@bash bench/train.sh $(BUILD)

bench-transfer: setup build
	@bash bench/transfer.sh $(BUILD)

bench-keyword: setup build
	@bash bench/keyword.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
