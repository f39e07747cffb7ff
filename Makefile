# rdx - GNU Makefile. `make help` lists the targets.
#
# Objects go under $(BUILD) (build/ by default); `make asan` and `make fuzz`
# use their own trees (build/asan, build/fuzz) so the builds never mix.

BUILD ?= build
PREFIX ?= /usr/local
DESTDIR ?=
FUZZ_SECONDS ?= 10
RDX_DATA ?= $(abspath ../shared/data)
export RDX_DATA

CC ?= cc
CXX ?= c++
ifeq ($(origin CC),default)
CC := gcc
endif
ifeq ($(origin CXX),default)
CXX := g++
endif
AR ?= ar

WARN := -Wall -Wextra -Werror
CPPFLAGS += -Iinclude -MMD -MP
CFLAGS_STD := -std=c11 $(WARN) -fstack-protector-strong -g
CXXFLAGS_STD := -std=c++17 $(WARN) -fstack-protector-strong -g

ifeq ($(SAN),1)
  OPTFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
  LDSAN := -fsanitize=address,undefined
else ifeq ($(SAN),thread)
  OPTFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=thread
  LDSAN := -fsanitize=thread
else ifeq ($(FUZZ),1)
  OPTFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
    -fno-sanitize-recover=all
  LDSAN := -fsanitize=address,undefined
else
  OPTFLAGS := -O2 -D_FORTIFY_SOURCE=2
  LDSAN :=
endif

CFLAGS ?=
CXXFLAGS ?=
ALL_CFLAGS = $(CFLAGS_STD) $(OPTFLAGS) $(CFLAGS)
ALL_CXXFLAGS = $(CXXFLAGS_STD) $(OPTFLAGS) $(CXXFLAGS)

# System libraries per engine. Recursively expanded on purpose: pkg-config
# runs at link time, after the dependency check below has installed them.
LIBS_common :=
LIBS_hub :=
LIBS_ecg = $(shell pkg-config --libs fftw3) -lm
LIBS_imaging = $(shell pkg-config --libs sqlite3 libpq) -ldcmjpeg -ldcmdata -loflog \
	-lofstd -lgdcmMSFF -lgdcmDSED -lgdcmCommon -lz
LIBS_lab = $(shell pkg-config --libs inih sqlite3)
LIBS_transport = $(shell pkg-config --libs libevent_pthreads libevent openssl sqlite3 inih) -lpthread
SYSLIBS = $(LIBS_transport) $(LIBS_imaging) $(LIBS_lab) $(LIBS_ecg) -lpthread -lm

# Link order: engines before common, since engines use common; the hub composes
# the engines and the transport, so it comes first.
ENGINES := hub transport imaging lab ecg common

define engine_vars
SRCS_$(1) := $$(wildcard $(1)/*.c) $$(wildcard $(1)/*.cpp)
OBJS_$(1) := $$(patsubst %,$(BUILD)/obj/%.o,$$(basename $$(SRCS_$(1))))
LIB_$(1) := $(BUILD)/librdx_$(1).a
endef
$(foreach e,$(ENGINES),$(eval $(call engine_vars,$(e))))

LIBS := $(foreach e,$(ENGINES),$(LIB_$(e)))
ALL_OBJS := $(foreach e,$(ENGINES),$(OBJS_$(e)))

CLI_SRCS := $(wildcard cli/*.c)
CLI_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(CLI_SRCS))
RDX := $(BUILD)/rdx

TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
TEST_SUPPORT_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/support/*.c))
# The out-of-memory sweep swaps the allocator in test binaries only.
TEST_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc

BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

DEPS_OK := $(BUILD)/.deps-ok

.PHONY: all test bench asan tsan fuzz fuzz-build fuzz-run lint format install uninstall demo eval \
	clean help deps
.DEFAULT_GOAL := all

all: $(RDX) $(LIBS)

help:
	@echo "Targets:"
	@echo "  all      build $(BUILD)/rdx and $(BUILD)/librdx_<engine>.a (default)"
	@echo "  test     build and run the cmocka suites"
	@echo "  asan     the same tests built with ASan+UBSan (in build/asan)"
	@echo "  tsan     the transport's tests with ThreadSanitizer (in build/tsan)"
	@echo "  fuzz     build the libFuzzer targets and run each for FUZZ_SECONDS ($(FUZZ_SECONDS))"
	@echo "  bench    build and run the benchmarks under bench/"
	@echo "  lint     clang-format check and banned-function check"
	@echo "  format   reformat the sources with clang-format"
	@echo "  install  install into DESTDIR/PREFIX ($(DESTDIR)$(PREFIX))"
	@echo "  demo     run the demonstration"
	@echo "  clean    remove build/"

# Installs missing Debian packages once per build tree; scripts/deps.sh is
# called only when its quick check fails.
$(DEPS_OK): scripts/deps.sh
	@mkdir -p $(@D)
	@sh scripts/deps.sh --check || sh scripts/deps.sh
	@touch $@

deps:
	@sh scripts/deps.sh

$(BUILD)/obj/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cpp | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(ALL_CXXFLAGS) -c $< -o $@

define engine_rules
$(LIB_$(1)): $(OBJS_$(1))
	@mkdir -p $$(@D)
	@rm -f $$@
	$(AR) rcs $$@ $$^
endef
$(foreach e,$(ENGINES),$(eval $(call engine_rules,$(e))))

$(RDX): $(CLI_OBJS) $(LIBS)
	$(CXX) $(LDSAN) -o $@ $(CLI_OBJS) $(LIBS) $(SYSLIBS) $(LDFLAGS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_SUPPORT_OBJS) $(LIBS)
	@mkdir -p $(@D)
	$(CXX) $(LDSAN) $(TEST_WRAP) -o $@ $< $(TEST_SUPPORT_OBJS) $(LIBS) \
		$(shell pkg-config --libs cmocka) $(SYSLIBS) $(LDFLAGS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIBS)
	@mkdir -p $(@D)
	$(CXX) $(LDSAN) -o $@ $< $(LIBS) $(SYSLIBS) $(LDFLAGS)

test: $(RDX) $(TEST_BINS)
	@RDX_BIN=$(abspath $(RDX)) sh scripts/run-tests.sh $(TEST_BINS)

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 test

# The transport's threads (event loop, store lanes, spill, delivery, janitor)
# under ThreadSanitizer: the node processes the tests start are TSan builds
# too, and stop at the first race (the test then fails).
TSAN_TESTS := test_transport_node test_transport_net test_transport_frame test_transport_digest
tsan:
	@$(MAKE) --no-print-directory BUILD=build/tsan SAN=thread build/tsan/rdx \
	  $(addprefix build/tsan/tests/,$(TSAN_TESTS))
	@TSAN_OPTIONS="halt_on_error=1 exitcode=66" RDX_BIN=$(abspath build/tsan/rdx) \
	  sh scripts/run-tests.sh $(addprefix build/tsan/tests/,$(TSAN_TESTS))

bench: $(RDX) $(BENCH_BINS)
	@sh scripts/run-bench.sh $(BUILD) $(BENCH_BINS)

# rdx against Orthanc and DCMTK dcmqrscp (installs them first); writes docs/imaging-anchors.md.
.PHONY: bench-anchors
bench-anchors: $(RDX) $(BUILD)/bench/imaging_bench
	@sh scripts/anchors-deps.sh && sh scripts/bench-anchors.sh $(BUILD)

# libFuzzer needs clang; the libraries are rebuilt with coverage hooks in build/fuzz.
fuzz:
	@$(MAKE) --no-print-directory BUILD=build/fuzz FUZZ=1 CC=clang CXX=clang++ fuzz-run

fuzz-build: $(FUZZ_BINS)

fuzz-run: fuzz-build
	@sh scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(LIBS)
	@mkdir -p $(@D)
	$(CXX) -fsanitize=fuzzer,address,undefined -o $@ $< $(LIBS) $(SYSLIBS) $(LDFLAGS)

lint: | $(DEPS_OK)
	@sh scripts/lint.sh

format:
	@clang-format -i $$(git ls-files -co --exclude-standard '*.c' '*.h' '*.cpp')

eval: $(RDX)
	@sh scripts/ecg-eval.sh $(RDX)

demo: $(RDX)
	@RDX_BIN=$(abspath $(RDX)) sh scripts/demo.sh

$(BUILD)/rdx.pc: rdx.pc.in
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(shell sed -n 's/^#define RDX_VERSION "\(.*\)"/\1/p' include/rdx/common.h)|g' $< > $@

install: all $(BUILD)/rdx.pc
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include/rdx \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(RDX) $(DESTDIR)$(PREFIX)/bin/rdx
	install -m 0644 include/rdx/*.h $(DESTDIR)$(PREFIX)/include/rdx/
	install -m 0644 $(LIBS) $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 $(BUILD)/rdx.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/rdx.pc
	install -m 0644 docs/rdx.1 $(DESTDIR)$(PREFIX)/share/man/man1/rdx.1

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/rdx $(DESTDIR)$(PREFIX)/lib/pkgconfig/rdx.pc \
		$(DESTDIR)$(PREFIX)/share/man/man1/rdx.1
	rm -rf $(DESTDIR)$(PREFIX)/include/rdx
	rm -f $(foreach e,$(ENGINES),$(DESTDIR)$(PREFIX)/lib/librdx_$(e).a)

clean:
	rm -rf build

.SECONDARY:

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
