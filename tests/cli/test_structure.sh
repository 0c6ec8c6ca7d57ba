#!/usr/bin/env bash
# The library boundary (docs/ARCHITECTURE.md): no include cycles, the CLI on
# the public headers only, libretnet.so exporting exactly the rn_* names that
# include/ declares, and `make install` giving a library that a program
# finds with pkg-config.
cd "$(dirname "$0")/../.."
source tests/cli/lib.bash
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# Include graph of src/ and cli/.
out=$(python3 tests/check_includes.py 2>&1); rc=$?
check '[ $rc -eq 0 ]' "include graph: $(echo "$out" | grep FAIL | head -3)"

# Exports: every dynamic symbol is declared in include/, and every
# declaration is exported.
so=build/libretnet.so
check '[ -f $so ]' "$so not built"
nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort -u > "$tmp/exported"
grep -h '^RN_API' include/*.h | grep -oE '\b(rn|retnet)_[a-z0-9_]+\(' | tr -d '(' | sort -u > "$tmp/declared"
extra=$(comm -23 "$tmp/exported" "$tmp/declared" | tr '\n' ' ')
missing=$(comm -13 "$tmp/exported" "$tmp/declared" | tr '\n' ' ')
check '[ -z "$extra" ]' "libretnet.so exports names not in include/: $extra"
check '[ -z "$missing" ]' "declared in include/ but not exported: $missing"
check '[ "$(wc -l < "$tmp/exported")" -gt 50 ]' "too few exported names: $(wc -l < "$tmp/exported")"
check 'readelf -d "$so" | grep -q "SONAME.*libretnet.so.[0-9]"' "libretnet.so has no versioned soname"

# make install into a staging directory, then a program built with pkg-config.
make -s install DESTDIR="$tmp/stage" PREFIX=/usr >"$tmp/install.log" 2>&1; rc=$?
check '[ $rc -eq 0 ]' "make install failed: $(tail -3 "$tmp/install.log")"
for f in usr/include/retnet.h usr/include/retnet_data.h usr/lib/libretnet.a usr/lib/libretnet.so \
         usr/lib/pkgconfig/retnet.pc usr/bin/retnet; do
    check '[ -e "$tmp/stage/$f" ]' "make install did not install $f"
done
cat > "$tmp/hello.c" <<'C'
#include <retnet.h>
#include <stdio.h>
int main(void) {
    rn_config c = {0}; rn_model *m;
    if (rn_config_preset(&c, RN_PRESET_TORCHSCALE, "tiny") || rn_model_create(&c, &m)) return 1;
    printf("%s %s %zu\n", rn_version(), RETNET_VERSION_STRING, rn_model_num_params(m));
    rn_model_free(m);
    return 0;
}
C
export PKG_CONFIG_PATH="$tmp/stage/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$tmp/stage"
flags=$(pkg-config --cflags --libs retnet 2>&1); rc=$?
check '[ $rc -eq 0 ]' "pkg-config retnet: $flags"
cc -o "$tmp/hello" "$tmp/hello.c" $flags 2>"$tmp/cc.log"; rc=$?
check '[ $rc -eq 0 ]' "compiling against the installed library: $(head -3 "$tmp/cc.log")"
run=$(LD_LIBRARY_PATH="$tmp/stage/usr/lib" "$tmp/hello" 2>&1)
v=$(sed -n 's/^#define RETNET_VERSION_STRING "\(.*\)"/\1/p' include/retnet.h)
check '[[ "$run" =~ ^$v\ $v\ [0-9]+$ ]]' "installed program printed '$run'"
check 'ldd "$tmp/hello" | grep -q "libretnet.so.0 => $tmp/stage/usr/lib" || LD_LIBRARY_PATH="$tmp/stage/usr/lib" ldd "$tmp/hello" | grep -q "libretnet.so.0 => $tmp/stage"' "the program does not use the installed shared library"
# A deliberate cycle is caught (the checker can fail).
mkdir -p "$tmp/fake/src" "$tmp/fake/cli" "$tmp/fake/tests" "$tmp/fake/include"
printf '#include "b.h"\n' > "$tmp/fake/src/a.h"; printf '#include "a.h"\n' > "$tmp/fake/src/b.c"; : > "$tmp/fake/src/b.h"
printf '#include "a.h"\n' > "$tmp/fake/cli/x.c"
cp tests/check_includes.py "$tmp/fake/tests/"
fo=$(python3 "$tmp/fake/tests/check_includes.py" 2>&1); rc=$?
check '[ $rc -ne 0 ] && echo "$fo" | grep -q "include cycle: src/a -> src/b -> src/a\|include cycle: src/b -> src/a -> src/b"' "a planted cycle was not reported: $fo"
check 'echo "$fo" | grep -q "cli/x.c: includes src/a.h"' "a cli/ include of src/ was not reported: $fo"
finish
