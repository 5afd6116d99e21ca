/* wasi:cli/stdin's get-stdin and wasi:io/streams' blocking-read as C
 * callbacks through wasmtime's C API: the least a C embedder can do to hand
 * a guest the bytes it reads. The result is a wasmtime_component_val_t tree
 * with one 32-byte cell per byte, which wasmtime then lowers into the guest
 * element by element. (bench/ceiling.c uses these same callbacks for the
 * bench's value-path ceiling.) */
#define _POSIX_C_SOURCE 199309L
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "value_callbacks.h"

enum { STDIN_REP = 0, MAX_READ = 1 << 20 };

int value_input_fd = STDIN_FILENO;
uint64_t value_read_ns;
uint64_t value_allocate_ns;
uint64_t value_cells_ns;

static char read_buffer[MAX_READ];

uint64_t value_monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

wasmtime_error_t *value_own_handle(wasmtime_context_t *context, uint32_t rep, uint32_t type,
                                   wasmtime_component_val_t *result) {
    wasmtime_component_resource_host_t *host =
        wasmtime_component_resource_host_new(true, rep, type);
    wasmtime_error_t *error =
        wasmtime_component_resource_host_to_any(context, host, &result->of.resource);
    wasmtime_component_resource_host_delete(host);
    result->kind = WASMTIME_COMPONENT_RESOURCE;
    return error;
}

wasmtime_error_t *value_get_stdin(void *data, wasmtime_context_t *context,
                                  const wasmtime_component_func_type_t *type,
                                  wasmtime_component_val_t *args, size_t nargs,
                                  wasmtime_component_val_t *results, size_t nresults) {
    return value_own_handle(context, STDIN_REP, VALUE_INPUT_STREAM_TYPE, &results[0]);
}

wasmtime_error_t *value_blocking_read(void *data, wasmtime_context_t *context,
                                      const wasmtime_component_func_type_t *type,
                                      wasmtime_component_val_t *args, size_t nargs,
                                      wasmtime_component_val_t *results, size_t nresults) {
    uint64_t start = value_monotonic_ns();
    /* Resolving the borrowed handle is what ends the borrow. */
    wasmtime_component_resource_host_t *self;
    wasmtime_error_t *error =
        wasmtime_component_resource_any_to_host(context, args[0].of.resource, &self);
    if (error != NULL)
        return error;
    wasmtime_component_resource_host_delete(self);

    size_t wanted = args[1].of.u64 < MAX_READ ? (size_t)args[1].of.u64 : MAX_READ;
    ssize_t got = read(value_input_fd, read_buffer, wanted);
    uint64_t was_read = value_monotonic_ns(), allocated = was_read;
    wasmtime_component_val_t payload;
    if (got <= 0) {
        /* End of input; a read error is reported the same way, as these
         * callbacks exist to be timed, not to be used. */
        payload.kind = WASMTIME_COMPONENT_VARIANT;
        wasm_byte_vec_new(&payload.of.variant.discriminant, strlen("closed"), "closed");
        payload.of.variant.val = NULL;
    } else {
        payload.kind = WASMTIME_COMPONENT_LIST;
        wasmtime_component_vallist_new_uninit(&payload.of.list, (size_t)got);
        allocated = value_monotonic_ns();
        for (ssize_t i = 0; i < got; i++) {
            payload.of.list.data[i].kind = WASMTIME_COMPONENT_U8;
            payload.of.list.data[i].of.u8 = (uint8_t)read_buffer[i];
        }
    }
    results[0].kind = WASMTIME_COMPONENT_RESULT;
    results[0].of.result.is_ok = got > 0;
    results[0].of.result.val = wasmtime_component_val_new(&payload);
    value_read_ns += was_read - start;
    value_allocate_ns += allocated - was_read;
    value_cells_ns += value_monotonic_ns() - allocated;
    return NULL;
}

wasmtime_error_t *value_forget(void *data, wasmtime_context_t *context, uint32_t rep) {
    return NULL;
}
