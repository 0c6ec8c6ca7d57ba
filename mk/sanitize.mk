# Sanitizer and valgrind builds used by tests/cli/test_sanitizers.sh
# (docs/RELIABILITY.md).
#   make asan-f32        the float32 test programs and the CLI under ASan + UBSan
#                        (LeakSanitizer included) in build/asan
#   make valgrind-build  the CLI at -O1 -g for the host's baseline ISA (valgrind
#                        does not know AVX-512, which -march=native may use) in
#                        build/valgrind

ASAN_TESTS32 = $(patsubst tests/%.c,build/asan/tests/%,$(wildcard tests/test_*.c))

asan-f32:
	$(MAKE) BUILD=build/asan SAN="$(SANFLAGS)" CFLAGS="-O1 -g" $(ASAN_TESTS32) build/asan/retnet

valgrind-build:
	$(MAKE) BUILD=build/valgrind CFLAGS="-O1 -g" build/valgrind/retnet

.PHONY: asan-f32 valgrind-build
