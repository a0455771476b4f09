# mk/fuzz.mk — `make fuzz`: a bounded libFuzzer run over the front end
# (scanner, parser, elaborator, recipe checks) built with clang's
# -fsanitize=fuzzer,address,undefined. FUZZ_TIME seconds (default 120);
# the corpus starts from fuzz/seeds, the models and the test files and grows
# in build/fuzz/corpus; crashes are written to build/fuzz/. See docs/fuzzing.md.

FUZZ_TIME  ?= 120
FUZZ_CC    ?= clang
FUZZ_DIR   := build/fuzz
FUZZ_GEN   := $(FUZZ_DIR)/gen
FUZZ_SRCS  := fuzz/fuzz_frontend.c compiler/ast.c compiler/diag.c compiler/frontend.c compiler/recipe.c \
              compiler/elaborate.c compiler/evaluate.c compiler/value.c compiler/ops_table.c \
              compiler/builtins.c compiler/naming.c compiler/unused_names.c compiler/graph.c compiler/util.c compiler/error.c
FUZZ_FLAGS := -std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=undefined -D_GNU_SOURCE -Icompiler -I$(FUZZ_GEN)

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_DIR)/fuzz_frontend

$(FUZZ_GEN)/parser.c: grammar/parser.y
	@mkdir -p $(FUZZ_GEN)
	bison -Wall -Werror --defines=$(FUZZ_GEN)/parser.h -o $@ $<

$(FUZZ_GEN)/lexer.c: grammar/lexer.l $(FUZZ_GEN)/parser.c
	flex --header-file=$(FUZZ_GEN)/lexer.h -o $@ $<

$(FUZZ_DIR)/fuzz_frontend: $(FUZZ_SRCS) $(FUZZ_GEN)/parser.c $(FUZZ_GEN)/lexer.c compiler/*.h
	$(FUZZ_CC) $(FUZZ_FLAGS) -Wno-unused-function -Wno-unused-parameter -Wno-sign-compare \
	    -o $@ $(FUZZ_SRCS) $(FUZZ_GEN)/parser.c $(FUZZ_GEN)/lexer.c -lm

fuzz: $(FUZZ_DIR)/fuzz_frontend
	@mkdir -p $(FUZZ_DIR)/corpus
	@cp -n fuzz/seeds/* models/*.net examples/*.net tests/frontend/good/*.net tests/frontend/bad/*.net \
	    $(FUZZ_DIR)/corpus/ 2>/dev/null || true
	cd $(FUZZ_DIR) && ./fuzz_frontend -max_total_time=$(FUZZ_TIME) -max_len=4096 -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 -dict=../../fuzz/net.dict corpus
