/* The value-path ceiling: the tiny guest's imports as C callbacks through
 * wasmtime's C API, the fastest any embedder that is not written in Rust can
 * define a host function. bench/minimal_hosts.py loads this library (built
 * with listu8-wall/value_callbacks.c, whose get-stdin, blocking-read, clock
 * and handle helper it shares with the list<u8> reproducer) into the bench's
 * own process and adds the functions to a component linker exactly as it
 * adds the raw-ctypes floor's Python callbacks. */
#include "listu8-wall/value_callbacks.h"

enum { POLLABLE_TYPE = 1 };

static uint32_t next_pollable_rep = 1;

wasmtime_error_t *ceiling_now(void *data, wasmtime_context_t *context,
                              const wasmtime_component_func_type_t *type,
                              wasmtime_component_val_t *args, size_t nargs,
                              wasmtime_component_val_t *results, size_t nresults) {
    results[0].kind = WASMTIME_COMPONENT_U64;
    results[0].of.u64 = value_monotonic_ns();
    return NULL;
}

wasmtime_error_t *ceiling_subscribe_duration(void *data, wasmtime_context_t *context,
                                             const wasmtime_component_func_type_t *type,
                                             wasmtime_component_val_t *args, size_t nargs,
                                             wasmtime_component_val_t *results,
                                             size_t nresults) {
    return value_own_handle(context, next_pollable_rep++, POLLABLE_TYPE, &results[0]);
}
