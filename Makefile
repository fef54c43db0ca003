# The two commands of the README, and the pieces they are made of.
#   make demo   install dependencies if missing, build, pack the bundled model, run it, compare
#   make test   the same build, then the whole test suite (what CI runs)
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps build demo test clean
all: build

deps:
	@bash tools/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	bash tools/demo.sh $(BUILD)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

# The same suite for 64-bit ARM (NEON): cross-built with cmake/toolchains/aarch64-linux-gnu.cmake and
# run under qemu-aarch64, end-to-end parity included (vitcc-pack runs on the host; every model's
# runner is cross-compiled and emulated).
# And once with the scalar reference kernels only (VITCC_DISABLE_SIMD), the same tests again.
# Both reuse the host build's vitcc-pack, vitcc-run and fixtures.
AARCH64_BUILD ?= build-aarch64
SCALAR_BUILD ?= build-scalar
HOST_TOOLS_FLAGS = -DCMAKE_BUILD_TYPE=Release -DVITCC_BUILD_TOOLS=OFF -DVITCC_HOST_TOOLS_DIR=$(CURDIR)/$(BUILD)/bin \
	-DVITCC_FIXTURES_DIR=$(CURDIR)/$(BUILD)/fixtures
.PHONY: test-aarch64 test-scalar
# Under emulation the end-to-end parity runs a subset of the fixtures that still covers every kernel
# shape path (timm ViT, DINOv2 with registers and LayerScale, no class token with avgpool and fc_norm,
# no qkv bias, patch 8, non-square input, both EfficientViT forms). Packer-only variations (opsets,
# dynamic batch, legacy split, output kinds, torchvision naming) are covered by the host's `make test`,
# whose runners compile the same headers.
vitcc_empty :=
vitcc_space := $(vitcc_empty) $(vitcc_empty)
AARCH64_E2E ?= $(subst $(vitcc_space),,vit_tiny_patch16_224_op17,dinov2_small_patch14_reg4_224_op17,\
variant_nocls_avgpool_fcnorm_op17,variant_no_qkv_bias_op13,variant_patch8_96_op17,\
variant_nonsquare_160x224_op17,efficientvit_m0_224_op13_bn,efficientvit_cream_m0_224_op17)
test-aarch64: build
	cmake -S . -B $(AARCH64_BUILD) -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/toolchains/aarch64-linux-gnu.cmake \
		-DVITCC_NATIVE=OFF -DVITCC_E2E_ONLY=$(AARCH64_E2E) $(HOST_TOOLS_FLAGS)
	cmake --build $(AARCH64_BUILD) -j$(JOBS)
	ctest --test-dir $(AARCH64_BUILD) --output-on-failure -j$(JOBS)

test-scalar: build
	cmake -S . -B $(SCALAR_BUILD) -DVITCC_DISABLE_SIMD=ON $(HOST_TOOLS_FLAGS)
	cmake --build $(SCALAR_BUILD) -j$(JOBS)
	ctest --test-dir $(SCALAR_BUILD) --output-on-failure -j$(JOBS)

# The full fixture matrix (tools/export/make_fixtures.py --set full: every ViT variant, and 145
# EfficientViT exports: M0..M5 at two sizes, opsets 10/13/17, plain, reparameterised, BatchNorm
# kept, dynamic batch, constant folding off, both timm forms), packed, run and held to PyTorch, in its
# own build tree. Not part of `make test`: it takes about 45 minutes on 2 cores (see README).
FULL_BUILD ?= build-full
.PHONY: test-full
test-full: deps
	cmake -S . -B $(FULL_BUILD) -DCMAKE_BUILD_TYPE=Release -DVITCC_FIXTURE_SET=full $(CMAKE_FLAGS)
	cmake --build $(FULL_BUILD) -j$(JOBS) --target vitcc-pack vitcc-run test_e2e
	ctest --test-dir $(FULL_BUILD) --output-on-failure -j$(JOBS) -R '^e2e_parity_'

# Benchmarks (own build tree; see BENCHMARKS.md). `make bench` runs the Google Benchmark suite
# (kernels, then the models packed by a previous bench-compare); `make bench-compare` compares vitcc
# at fp32, bf16 and int8 with ONNX Runtime fp32 and int8 and PyTorch and rewrites this CPU's
# benchmarks/results/CPU.md and the BENCHMARKS.md index
# (BENCH_ARGS="--models vit_s16 --precisions fp32,int8" narrows it).
BENCH_BUILD ?= build-bench
.PHONY: bench bench-compare bench-build
# CI compiles the benchmarks (in the test build, without running them), so an API change that breaks
# them is seen at once.
bench-build: build
	cmake -S . -B $(BUILD) -DVITCC_BUILD_BENCHMARKS=ON
	cmake --build $(BUILD) -j$(JOBS) --target vitcc_bench_kernels vitcc_bench_models

bench: deps
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release -DVITCC_BUILD_BENCHMARKS=ON $(CMAKE_FLAGS)
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target vitcc_bench_kernels vitcc_bench_models
	$(BENCH_BUILD)/bin/vitcc_bench_kernels
	VITCC_BENCH_MODELS=$(BENCH_BUILD)/bench-models $(BENCH_BUILD)/bin/vitcc_bench_models

bench-compare:
	BUILD=$(BENCH_BUILD) JOBS=$(JOBS) BENCH_ARGS="$(BENCH_ARGS)" bash tools/bench/compare.sh

# Hardening (issue 6, docs/SECURITY.md). test-sanitize: the whole suite again, built with
# AddressSanitizer + UndefinedBehaviorSanitizer (the runners vitcc-run compiles too), reusing the
# host build's fixtures and onnxruntime-node. install_consumer is left out: it builds a separate
# consumer project with the plain compiler and tests packaging, not memory safety. The end-to-end parity tests run on a
# subset of the fixtures that covers every packer path (all of them take ~25 min under ASan; the
# plain `make test` runs them all). fuzz: every libFuzzer target for
# FUZZ_SECONDS each (tools/fuzz.sh; clang).
ASAN_BUILD ?= build-asan
FUZZ_SECONDS ?= 60
SANITIZE_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# Sanitized builds compile at -O1 -g1: -g1 keeps the line tables a report needs and drops the
# variable descriptions (a quarter of the compile time of the template-heavy tests). The runners
# vitcc-run compiles for them get -O1 after their -O2 (the last -O wins), a third less compile time.
SANITIZE_E2E ?= vit_tiny_patch16_224_op10,vit_tiny_patch16_224_op13_dynbatch,variant_nocls_avgpool_fcnorm_op17,variant_forward_features_op17,variant_pooled_features_op13,variant_legacy_gather_split_op11,variant_nonsquare_160x224_op17,efficientvit_m0_224_op13_bn,efficientvit_cream_m0_224_op10_reparam
.PHONY: test-sanitize fuzz
test-sanitize: build
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
		-DCMAKE_CXX_FLAGS="$(SANITIZE_FLAGS)" -DCMAKE_EXE_LINKER_FLAGS="$(SANITIZE_FLAGS)" \
		-DVITCC_RUN_EXTRA_FLAGS="$(SANITIZE_FLAGS) -O1" -DVITCC_FIXTURES_DIR=$(CURDIR)/$(BUILD)/fixtures \
		-DVITCC_ORT_DIR=$(CURDIR)/$(BUILD)/ort $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/hardening/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 VITCC_E2E_ONLY=$(SANITIZE_E2E) \
		ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(JOBS) -E '^install_consumer$$'

fuzz:
	JOBS=$(JOBS) bash tools/fuzz.sh $(FUZZ_SECONDS)

# ThreadSanitizer over the thread pool (a Release build, HOST_TOOLS_FLAGS's, with -g1 for line numbers) and every threaded forward pass: the pool's own tests and both
# bundled models at 1-3 workers (test_vit_threads, test_evit_model), the checked forward with an
# executor, and every kernel split over 2, 3 and 5 workers. The tools come from the host build.
TSAN_BUILD ?= build-tsan
TSAN_TESTS = test_vit_threads test_evit_model test_checked_forward test_kernels_split_invariance
.PHONY: test-tsan
test-tsan: build
	cmake -S . -B $(TSAN_BUILD) $(HOST_TOOLS_FLAGS) \
		-DCMAKE_CXX_FLAGS="-fsanitize=thread -g1" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread"
	cmake --build $(TSAN_BUILD) -j$(JOBS) --target $(TSAN_TESTS)
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		ctest --test-dir $(TSAN_BUILD) --output-on-failure -j$(JOBS) -R '^($(subst $(vitcc_space),|,$(TSAN_TESTS)))$$'

clean:
	rm -rf $(BUILD)
