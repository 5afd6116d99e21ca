/* C callbacks for wasi:cli/stdin#get-stdin and
 * wasi:io/streams#[method]input-stream.blocking-read (value_callbacks.c). */
#ifndef VALUE_CALLBACKS_H
#define VALUE_CALLBACKS_H

#include "wasmtime_component_capi.h"

/* The host resource type ids the callbacks use; define the WIT resources
 * `input-stream` and `error` under these. */
enum { VALUE_INPUT_STREAM_TYPE = 3, VALUE_IO_ERROR_TYPE = 2 };

/* Where blocking-read reads from (default: the process's stdin). */
extern int value_input_fd;
/* Nanoseconds blocking-read has spent in read(2), in
 * wasmtime_component_vallist_new_uninit (wasmtime's) and in writing the
 * result cells (the callback's own); the rest of a call is wasmtime's. */
extern uint64_t value_read_ns;
extern uint64_t value_allocate_ns;
extern uint64_t value_cells_ns;

wasmtime_error_t *value_get_stdin(void *data, wasmtime_context_t *context,
                                  const wasmtime_component_func_type_t *type,
                                  wasmtime_component_val_t *args, size_t nargs,
                                  wasmtime_component_val_t *results, size_t nresults);
wasmtime_error_t *value_blocking_read(void *data, wasmtime_context_t *context,
                                      const wasmtime_component_func_type_t *type,
                                      wasmtime_component_val_t *args, size_t nargs,
                                      wasmtime_component_val_t *results, size_t nresults);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t value_monotonic_ns(void);
/* Store a new owned handle (rep, type) in *result. */
wasmtime_error_t *value_own_handle(wasmtime_context_t *context, uint32_t rep, uint32_t type,
                                   wasmtime_component_val_t *result);
/* The destructor of a resource that keeps no state per handle. */
wasmtime_error_t *value_forget(void *data, wasmtime_context_t *context, uint32_t rep);

#endif
