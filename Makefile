# rxc — build, test and install.
#
#   make                 build ./rxc (warning-free, -Wall -Wextra, C11)
#   make test            set up (below), build, run every test suite (strict: see tests/run_all.sh)
#   make setup           what the tests need (scripts/setup.sh): missing Debian packages (as
#                        root), TensorBoard from PyPI, python3-sklearn's sample images
#   make asan            build build/asan/rxc with AddressSanitizer + UBSan
#   make fuzz            bounded fuzzing of the front end (see mk/fuzz.mk)
#   make install PREFIX=/usr/local
#
# Sources are found by directory: every .c under compiler/, runtime/, target/ and cli/ is
# part of rxc, plus the scanner and parser generated from grammar/.
# Suite-specific targets live in mk/*.mk.

CC       ?= cc
PYTHON   ?= /usr/bin/python3
PREFIX   ?= /usr/local
CUDA_HOME ?= /usr/local/cuda
BUILD    ?= build/release
OPT      ?= -O2

CPPFLAGS += -D_GNU_SOURCE -Icompiler -Iruntime -Itarget/cpu -Itarget/cuda -Icli -I. -I$(BUILD)/gen
CFLAGS   += -std=c11 $(OPT) -g -Wall -Wextra -fopenmp -MMD -MP
LDLIBS   += -lcjson -ljpeg -lpng -lm -ldl -lpthread

# The CUDA toolkit is optional at build time: libcuda, NVRTC and cuBLAS are
# loaded with dlopen at run time. Its headers give the exact API types.
ifneq ($(wildcard $(CUDA_HOME)/include/nvrtc.h),)
  CPPFLAGS += -DRXC_HAVE_CUDA_HEADERS -I$(CUDA_HOME)/include -DRXC_CUDA_HOME='"$(CUDA_HOME)"'
  CUDA_NOTE := CUDA toolkit found at $(CUDA_HOME): GPU support built in (used when a GPU is present)
else
  CPPFLAGS += -DRXC_CUDA_HOME='"$(CUDA_HOME)"'
  CUDA_NOTE := no CUDA toolkit at $(CUDA_HOME): building for the CPU only (set CUDA_HOME to change)
endif

GEN_DIR  := $(BUILD)/gen
GEN_SRCS := $(if $(wildcard grammar/parser.y),$(GEN_DIR)/parser.c) $(if $(wildcard grammar/lexer.l),$(GEN_DIR)/lexer.c)
SRCS     := $(wildcard compiler/*.c runtime/*.c runtime/*/*.c target/*/*.c cli/*.c)
OBJS     := $(patsubst %.c,$(BUILD)/obj/%.o,$(SRCS)) $(patsubst $(GEN_DIR)/%.c,$(BUILD)/obj/gen/%.o,$(GEN_SRCS))
BIN      := $(if $(filter build/release,$(BUILD)),rxc,$(BUILD)/rxc)

.PHONY: all test setup asan install clean check-cuda-note
all: $(BIN)

$(BIN): $(OBJS)
	@echo "rxc: $(CUDA_NOTE)"
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(LDLIBS)

# The direct conv kernels' inner loops are short and hot: 64-byte aligned
# loops measured up to 10% faster on them (and never slower).
$(BUILD)/obj/target/cpu/conv_cpu.o: CFLAGS += -falign-loops=64

$(BUILD)/obj/%.o: %.c | $(GEN_SRCS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# Generated code is not held to -Wextra's unused-parameter rules of flex's skeleton.
# Every generated source waits for all of them: parser.c includes lexer.h, which
# flex writes, so under -j it must not compile while flex is still running.
$(BUILD)/obj/gen/%.o: $(GEN_DIR)/%.c $(GEN_SRCS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-unused-function -Wno-unused-parameter -Wno-sign-compare -c -o $@ $<

$(GEN_DIR)/parser.c $(GEN_DIR)/parser.h &: grammar/parser.y
	@mkdir -p $(GEN_DIR)
	bison -Wall -Werror --defines=$(GEN_DIR)/parser.h -o $(GEN_DIR)/parser.c $<

$(GEN_DIR)/lexer.c $(GEN_DIR)/lexer.h &: grammar/lexer.l $(GEN_DIR)/parser.h
	@mkdir -p $(GEN_DIR)
	flex --header-file=$(GEN_DIR)/lexer.h -o $(GEN_DIR)/lexer.c $<

asan:
	$(MAKE) BUILD=build/asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	        LDFLAGS="-fsanitize=address,undefined"

setup:
	@PYTHON=$(PYTHON) bash scripts/setup.sh


test: setup
	@$(MAKE) --no-print-directory -j$$(nproc) all
	@$(MAKE) --no-print-directory -j$$(nproc) asan
	@PYTHON=$(PYTHON) bash tests/run_all.sh

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/rxc/models $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 rxc $(DESTDIR)$(PREFIX)/bin/rxc
	install -m 644 models/*.net $(DESTDIR)$(PREFIX)/share/rxc/models/
	if [ -f docs/rxc.1 ]; then install -m 644 docs/rxc.1 $(DESTDIR)$(PREFIX)/share/man/man1/rxc.1; fi

clean:
	rm -rf build rxc

-include mk/*.mk
-include $(OBJS:.o=.d)

# The README's main command: setup, build, demo data, train the small model.
.PHONY: run
run: setup
	@$(MAKE) --no-print-directory all
	@if [ -f data/digits/.complete ] || [ -d data/digits/val ]; then echo "demo data: data/digits (already prepared)"; else ./rxc demo --out data/digits; fi
	./rxc models/tiny_resnext.net
