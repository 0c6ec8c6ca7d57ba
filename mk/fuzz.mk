# Fuzzing (docs/RELIABILITY.md): libFuzzer targets for every parser, built
# with clang under AddressSanitizer + UndefinedBehaviorSanitizer in build/fuzz.
#   make fuzz [FUZZ_TIME=600] [FUZZ_JOBS=2] [FUZZ_TARGETS="model config"]
#       runs each target FUZZ_TIME seconds, FUZZ_JOBS at a time, from the seed
#       corpus (tests/fuzz/corpus) and the regression inputs (tests/fuzz/regress),
#       keeping what it finds in build/fuzz/work; a crash is saved there and fails.
#   make fuzz-build     builds the targets only
#   make fuzz-corpus    regenerates the seed corpus with the library's writers

FUZZ_CC      ?= clang
FUZZ_DIR     = $(BUILD)/fuzz
FUZZ_TIME    ?= 60
FUZZ_JOBS    ?= 2
FUZZ_TARGETS ?= model model_dir config checkpoint tokens dataset shards tokenizer serve
FUZZ_FLAGS   = -std=c11 -O1 -g -Wall -Wextra -Wno-unknown-pragmas -Iinclude -Isrc -Icli \
               -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_OBJ     = $(SRC:src/%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_CLI_OBJ = $(patsubst cli/%.c,$(FUZZ_DIR)/cli/%.o,$(wildcard cli/*.c))
FUZZ_BINS    = $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

# The library and the CLI, instrumented for coverage (no OpenMP: one thread).
$(FUZZ_DIR)/obj/%.o: src/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

# The CLI's main is renamed so that libFuzzer's can be linked.
$(FUZZ_DIR)/cli/%.o: cli/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -Dmain=retnet_cli_main -c $< -o $@

$(FUZZ_DIR)/libretnet.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

# Token lists are parsed by the CLI (parse_tokens in cli/common.c): its die()
# and die_usage() are wrapped to return to the fuzzer, and common.o's
# allocations are redirected to the fuzzer's, which frees what a refusal
# leaves (the CLI exits instead).
FUZZ_ALLOC = malloc realloc strdup free
$(FUZZ_DIR)/cli/common-tracked.o: $(FUZZ_DIR)/cli/common.o
	objcopy $(foreach f,$(FUZZ_ALLOC),--redefine-sym $(f)=fuzz_$(f)) $< $@

$(FUZZ_DIR)/fuzz_tokens: tests/fuzz/fuzz_tokens.c tests/fuzz/fuzz.h tests/same_config.h $(FUZZ_CLI_OBJ) $(FUZZ_DIR)/cli/common-tracked.o \
		$(FUZZ_DIR)/libretnet.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -Wl,--wrap=die,--wrap=die_usage -o $@ $< \
		$(filter-out $(FUZZ_DIR)/cli/common.o,$(FUZZ_CLI_OBJ)) $(FUZZ_DIR)/cli/common-tracked.o \
		$(FUZZ_DIR)/libretnet.a $(LDLIBS) $(SERVE_LIBS)

# The request bodies of `retnet serve` (cli/serve_api.c).
FUZZ_SERVE_OBJ = $(FUZZ_DIR)/cli/serve_api.o $(FUZZ_DIR)/cli/serve_sched.o $(FUZZ_DIR)/cli/util.o
$(FUZZ_DIR)/fuzz_serve: tests/fuzz/fuzz_serve.c tests/fuzz/fuzz.h tests/same_config.h $(FUZZ_SERVE_OBJ) $(FUZZ_DIR)/libretnet.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_SERVE_OBJ) $(FUZZ_DIR)/libretnet.a $(LDLIBS) $(SERVE_LIBS)

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h tests/same_config.h $(FUZZ_DIR)/libretnet.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libretnet.a $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@FUZZ_TIME=$(FUZZ_TIME) FUZZ_JOBS=$(FUZZ_JOBS) FUZZ_TARGETS="$(FUZZ_TARGETS)" FUZZ_DIR=$(FUZZ_DIR) \
		bash scripts/fuzz.sh

# The seed corpus is written by the library itself (plain build).
$(FUZZ_DIR)/make_corpus: tests/fuzz/make_corpus.c $(BUILD)/libretnet.a $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libretnet.a $(LDLIBS)

fuzz-corpus: $(FUZZ_DIR)/make_corpus
	rm -rf tests/fuzz/corpus
	mkdir -p $(patsubst %,tests/fuzz/corpus/%,$(FUZZ_TARGETS))
	$(FUZZ_DIR)/make_corpus tests/fuzz/corpus

.PHONY: fuzz fuzz-build fuzz-corpus
