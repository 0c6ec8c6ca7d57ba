# retnet: build the library (static + shared), the CLI, tests and benchmarks.
# `make` builds; `make test` runs the suite; `make demo` trains and generates.

CC      ?= gcc
CFLAGS  ?= -O3 -march=native
override CFLAGS += -std=c11 -Wall -Wextra -fopenmp -fPIC -fvisibility=hidden -fno-math-errno -Iinclude -Isrc $(SAN)
LDLIBS  = -lopenblas -lcjson -lpcre2-8 -lutf8proc -lpthread -lm
BUILD   = build

SRC     = src/common.c src/config.c src/model.c src/ops.c src/retention.c src/forward.c src/backward.c src/train.c src/sample.c src/io.c src/formats.c src/data.c src/tokenizer.c src/tok_bpe.c src/tok_text.c
OBJ     = $(SRC:src/%.c=$(BUILD)/obj/%.o)
OBJ64   = $(SRC:src/%.c=$(BUILD)/obj64/%.o)
CLI_SRC = cli/retnet.c
HDR     = $(wildcard include/*.h src/*.h cli/*.h)

all: $(BUILD)/libretnet.a $(BUILD)/libretnet.so $(BUILD)/retnet

$(BUILD)/obj/%.o: src/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The float64 build of the library, used by the agreement tests.
$(BUILD)/obj64/%.o: src/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DRETNET_DOUBLE -c $< -o $@

$(BUILD)/libretnet.a: $(OBJ)
	ar rcs $@ $^

$(BUILD)/libretnet64.a: $(OBJ64)
	ar rcs $@ $^

$(BUILD)/libretnet.so: $(OBJ)
	$(CC) -shared -fopenmp $(SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/retnet: $(CLI_SRC) $(wildcard cli/*.c) $(BUILD)/libretnet.a $(HDR)
	$(CC) $(CFLAGS) -o $@ $(wildcard cli/*.c) $(BUILD)/libretnet.a $(LDLIBS)

# ------------------------------------------------------------------ tests
TESTS32 = $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
TESTS64 = $(patsubst tests/%.c,$(BUILD)/tests/%_f64,$(wildcard tests/test_*.c))

$(BUILD)/tests/%: tests/%.c tests/check.h tests/same_config.h $(BUILD)/libretnet.a $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icli -o $@ $< cli/plot.c $(BUILD)/libretnet.a $(LDLIBS)

$(BUILD)/tests/%_f64: tests/%.c tests/check.h tests/same_config.h $(BUILD)/libretnet64.a $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icli -DRETNET_DOUBLE -o $@ $< cli/plot.c $(BUILD)/libretnet64.a $(LDLIBS)

tests: $(TESTS32) $(TESTS64) $(BUILD)/retnet

test:
	@bash scripts/setup.sh test
	@$(MAKE) -s -j2 tests
	@bash tests/run.sh

demo:
	@bash scripts/demo.sh

# Benchmarks: one table, every figure a ratio to a limit measured in the same run.
bench: all
	./build/retnet bench

# The suite under AddressSanitizer + UndefinedBehaviorSanitizer (separate build dir).
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan:
	$(MAKE) BUILD=build/asan SAN="$(SANFLAGS)" CFLAGS="-O1 -g" tests

clean:
	rm -rf $(BUILD)

# Optional parts (fuzzing, benchmarks, ...) each add their own rules here.
-include $(wildcard mk/*.mk)

.PHONY: all tests test demo bench clean asan
