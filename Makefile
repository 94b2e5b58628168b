# Thin wrapper over CMake/ctest. The two commands of the README:
#   make demo   set up (Debian + pinned npm packages), build, and run the main job
#   make test   set up, check the style, build (warnings as errors), and run the whole test suite
#               (then the unit tests under ASan/UBSan)
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
export GRAFT_CACHE ?= $(HOME)/.cache/graft
# Extra CMake options for a new build folder, e.g. CMAKE_ARGS=-DGRAFT_NATIVE=ON (see
# docs/ARCHITECTURE.md, "Build and style"). A folder keeps the options it was configured with.
CMAKE_ARGS ?=

.PHONY: all setup build build-werror check-style format test test-fast asan fuzz demo bench-infer bench-data bench-train bench-transfer bench-keyword bench-adapt clean

all: build

setup:
	@bash scripts/setup.sh

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)

# The project's own build: warnings are errors (GRAFT_WERROR; off for plain CMake builds).
build-werror: $(BUILD)/Makefile
	cmake -S . -B $(BUILD) -DGRAFT_WERROR=ON > /dev/null
	cmake --build $(BUILD) -j$(JOBS)

# Formatting (clang-format 14, .clang-format) and the module order of docs/ARCHITECTURE.md.
check-style:
	@bash scripts/check_style.sh

# Applies .clang-format to every tracked C file (what check-style's format check wants).
format:
	git ls-files '*.c' '*.h' | grep -v '^fuzz/corpus/' | xargs clang-format -i

# Style first (seconds), then the whole suite with warnings as errors, then the fast labels again
# under AddressSanitizer + UBSan, then every fuzz target for 60 s (libFuzzer; two at a time on the
# two cores). Steps in order, each in its own make, so that `make -j test` keeps the order.
test:
	@$(MAKE) --no-print-directory setup
	@$(MAKE) --no-print-directory check-style
	@$(MAKE) --no-print-directory build-werror
	cd $(BUILD) && ctest --output-on-failure -j1
	$(MAKE) asan
	FUZZ_JOBS=2 bash scripts/fuzz.sh --ci 60

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -L 'unit|op|onnx|badinput|style'

# -O2 -g as ./build (ASan at -O0 ran the keyword features 3x slower); the tests run at reduced
# sizes there (GRAFT_TEST_SMALL, tests/CMakeLists.txt).
asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRAFT_SANITIZE=ON -DGRAFT_WERROR=ON > /dev/null
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

bench-adapt: setup build
	@bash bench/adapt.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
