#!/usr/bin/env bash
# The CLI's structure: cli/ includes only its own headers and the public
# ones (include/), never a library-internal header (src/); and no two cli
# files use each other, directly or through others: the graph "A uses B"
# (an undefined symbol of A.o is defined by B.o) has no cycle.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/lib.bash
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
CC=${CC:-gcc}
# With MPI where the build has it (mk/mpi.mk), so that dist.c's MPI path counts.
mpi=(); mpicc --showme:version > /dev/null 2>&1 && mpi=(-DRETNET_MPI $(mpicc --showme:compile))

for f in cli/*.c cli/*.h; do
  for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
    check "[ -f 'cli/$h' ] || [ -f 'include/$h' ]" "$f includes \"$h\", which is neither in cli/ nor in include/"
  done
done

built=1
for f in cli/*.c; do
  b=$(basename "$f" .c)
  if ! $CC -std=c11 -fopenmp -Iinclude -Icli "${mpi[@]}" -c "$f" -o "$tmp/$b.o" 2> "$tmp/$b.err"; then
    bad "cannot compile $f: $(head -3 "$tmp/$b.err")"; built=0
  fi
done
if [ $built -eq 1 ]; then
  for o in "$tmp"/*.o; do nm -g --defined-only "$o" | awk '{ print $3 }' > "${o%.o}.def"; nm -u "$o" | awk '{ print $2 }' > "${o%.o}.und"; done
  : > "$tmp/edges"
  for a in "$tmp"/*.und; do
    A=$(basename "$a" .und)
    uses=""
    for d in "$tmp"/*.def; do
      B=$(basename "$d" .def)
      [ "$A" = "$B" ] && continue
      if grep -qxFf "$d" "$a"; then uses="$uses $B"; echo "$A $B" >> "$tmp/edges"; fi
    done
    echo "  $A uses:${uses:- nothing}"
  done
  for o in "$tmp"/*.o; do b=$(basename "$o" .o); echo "$b $b" >> "$tmp/edges"; done
  tsort "$tmp/edges" > /dev/null 2> "$tmp/tsort"; rc=$?
  check "[ $rc -eq 0 ] && ! [ -s '$tmp/tsort' ]" "cli files use each other (a cycle): $(tr '\n' ' ' < "$tmp/tsort")"
fi
finish
