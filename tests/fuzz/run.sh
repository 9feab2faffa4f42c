#!/usr/bin/env bash
# Builds one libFuzzer target per parser (clang, ASan + UBSan) into build-fuzz/ and
# runs each for $FUZZ_SECONDS seconds from a seed corpus (tests/fuzz/seeds plus
# tests/fixtures). Fails on any finding; reproducers are kept in build-fuzz/findings/.
#   FUZZ_SECONDS=60 bash tests/fuzz/run.sh [target...]
# Targets: safetensors, config, tokenizer_load, tokenizer_roundtrip, data, plugin_wire (the frames a
# plugin child sends the session: app/plugin_wire.c, compiled into its target).
set -u
cd "$(dirname "$0")/../.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
OUT=build-fuzz
CLANG=${FUZZ_CC:-$(command -v clang || command -v clang-14)}
if [ -z "$CLANG" ]; then
    echo "fuzz: clang is not installed (apt-get install clang)" >&2
    exit 2
fi
ALL_TARGETS="safetensors config tokenizer_load tokenizer_roundtrip data plugin_wire"
TARGETS=${*:-$ALL_TARGETS}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-std=c11 -g -O1 $SAN -pthread -D_GNU_SOURCE -Icore -Iapp -Iplugins $(pkg-config --cflags openblas libcjson)"
LIBS="$(pkg-config --libs openblas libcjson) -lm -ldl -pthread"

mkdir -p "$OUT/obj" "$OUT/findings"
# targets write their input to files; on tmpfs the config target's fsync costs nothing
FUZZ_TMP=$(mktemp -d /dev/shm/pk_fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$FUZZ_TMP"' EXIT
# every core source, instrumented for coverage, in one archive: each target pulls what it uses
objs=()
for src in core/*.c; do
    obj="$OUT/obj/$(basename "$src" .c).o"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find core -name '*.h' -newer "$obj")" ]; then
        "$CLANG" $CFLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$obj" || { echo "fuzz: cannot compile $src" >&2; exit 2; }
    fi
    objs+=("$obj")
done
rm -f "$OUT/libcore.a" && ar rcs "$OUT/libcore.a" "${objs[@]}"

status=0
for t in $TARGETS; do
    src=tests/fuzz/fuzz_$t.c
    [ -f "$src" ] || { echo "fuzz: no target $t" >&2; exit 2; }
    "$CLANG" $CFLAGS -fsanitize=fuzzer "$src" "$OUT/libcore.a" $LIBS -o "$OUT/fuzz_$t" || {
        echo "fuzz: cannot build $t" >&2
        exit 2
    }
    corpus="$OUT/corpus/$t"
    mkdir -p "$corpus"
    cp -f tests/fuzz/seeds/$t/* "$corpus"/ 2>/dev/null
    case $t in
        config) cp -f tests/fixtures/hf-gpt2-tiny/config.json "$corpus/fixture-config.json" ;;
        tokenizer_roundtrip) cp -f tests/fixtures/eval/selfinst-user-oriented.jsonl "$corpus/selfinst.jsonl" 2>/dev/null
                             head -c 4096 tests/fixtures/gpt2-tokenizer/encodings.jsonl >"$corpus/encodings-head" ;;
    esac
    case $t in
        safetensors) max_len=16384 ;;
        tokenizer_load) max_len=65536 ;;
        tokenizer_roundtrip) max_len=8192 ;;
        plugin_wire) max_len=16384 ;;
        *) max_len=4096 ;;
    esac
    echo "fuzz: $t for ${FUZZ_SECONDS}s"
    log="$OUT/fuzz_$t.log"
    TMPDIR=$FUZZ_TMP ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        "$OUT/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -max_len=$max_len -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$OUT/findings/$t-" "$corpus" >"$log" 2>&1
    rc=$?
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$log" | sed "s/^/    $t /"
    if [ $rc -ne 0 ]; then
        echo "FAIL fuzz $t (exit $rc): see $log and $OUT/findings/"
        grep -E 'ERROR|SUMMARY|==[0-9]+==|runtime error|round trip|failed' "$log" | head -n 20 | sed 's/^/    /'
        status=1
    else
        echo "PASS fuzz $t"
    fi
done
exit $status
