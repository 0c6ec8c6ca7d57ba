# retnet: build the library (static + shared), the CLI, tests and benchmarks.
# `make` builds; `make test` runs the suite; `make demo` trains and generates.

CC      ?= gcc
CFLAGS  ?= -O3 -march=native
override CFLAGS += -std=c11 -Wall -Wextra -fopenmp -fPIC -fvisibility=hidden -fno-math-errno -Iinclude -Isrc $(SAN)
# BLAS: openblas (default: the faster on the shapes retnet runs, see
# README "BLAS") or blis (Debian's libblis-openmp-dev; its own build dir).
BLAS   ?= openblas
ifeq ($(BLAS),blis)
override CFLAGS += -DRETNET_BLIS
BLAS_LIB = -lblis
BUILD   = build/blis
else ifeq ($(BLAS),openblas)
BLAS_LIB = -lopenblas
BUILD   = build
else
$(error BLAS must be openblas or blis, not '$(BLAS)')
endif
LDLIBS  = $(BLAS_LIB) -lcjson -lpcre2-8 -lutf8proc -lpthread -lm

SRC     = $(wildcard src/*.c src/presets/*.c)
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
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libretnet64.a: $(OBJ64)
	rm -f $@ && ar rcs $@ $^

# The shared library exports the public API only (-fvisibility=hidden and
# RN_API); its soname follows the API's major version.
SOMAJOR = $(shell sed -n 's/^\#define RETNET_VERSION_MAJOR //p' include/retnet.h)
VERSION = $(shell sed -n 's/^\#define RETNET_VERSION_STRING "\(.*\)"/\1/p' include/retnet.h)

$(BUILD)/libretnet.so: $(OBJ)
	$(CC) -shared -fopenmp $(SAN) -Wl,-soname,libretnet.so.$(SOMAJOR) -o $@ $^ $(LDLIBS)

# The float64 shared library, for the Python binding's float64 tensors
# (python/retnet/torch.py: gradcheck).
$(BUILD)/libretnet64.so: $(OBJ64)
	$(CC) -shared -fopenmp $(SAN) -o $@ $^ $(LDLIBS)

# What the Python binding (python/) loads.
python: $(BUILD)/libretnet.so $(BUILD)/libretnet64.so

# `retnet serve` (cli/serve*.c) runs on libmicrohttpd and threads.
SERVE_LIBS = -lmicrohttpd -lpthread
$(BUILD)/retnet: private LDLIBS += $(SERVE_LIBS)
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

tests: $(TESTS32) $(TESTS64) $(BUILD)/retnet $(BUILD)/libretnet.so $(BUILD)/libretnet64.so

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

# ---------------------------------------------------------------- install
# make install [PREFIX=/usr/local] [DESTDIR=/staging]: the headers, both
# libraries, the CLI and a pkg-config file (pkg-config --cflags --libs retnet).
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
BINDIR  ?= $(PREFIX)/bin

$(BUILD)/retnet.pc: mk/retnet.pc.in include/retnet.h
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCDIR@|$(INCDIR)|; s|@VERSION@|$(VERSION)|' $< > $@

install: all $(BUILD)/retnet.pc
	install -d $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR)
	install -m 644 include/retnet.h include/retnet_data.h $(DESTDIR)$(INCDIR)/
	install -m 644 $(BUILD)/libretnet.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libretnet.so $(DESTDIR)$(LIBDIR)/libretnet.so.$(VERSION)
	ln -sf libretnet.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libretnet.so.$(SOMAJOR)
	ln -sf libretnet.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libretnet.so
	install -m 644 $(BUILD)/retnet.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 755 $(BUILD)/retnet $(DESTDIR)$(BINDIR)/

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/retnet.h $(DESTDIR)$(INCDIR)/retnet_data.h $(DESTDIR)$(LIBDIR)/libretnet.a \
	      $(DESTDIR)$(LIBDIR)/libretnet.so* $(DESTDIR)$(LIBDIR)/pkgconfig/retnet.pc $(DESTDIR)$(BINDIR)/retnet

# Optional parts (fuzzing, benchmarks, ...) each add their own rules here.
-include $(wildcard mk/*.mk)

.PHONY: all tests test demo bench clean asan install uninstall python
