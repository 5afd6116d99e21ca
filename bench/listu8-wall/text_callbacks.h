/* C callbacks that hand the guest the bytes they read in forms other than
 * list<u8>: a string (the bytes as they are, hex or base64) or a list<u64>
 * (text_callbacks.c). */
#ifndef TEXT_CALLBACKS_H
#define TEXT_CALLBACKS_H

#include "wasmtime_component_capi.h"

/* How read-text carries the bytes. */
enum text_form { TEXT_AS_IS, TEXT_HEX, TEXT_BASE64 };
extern enum text_form text_form;

/* Nanoseconds spent in read(2), in the callback's own encoding (none for
 * list<u64>), and in making the result (wasm_byte_vec_new copying the
 * string; or wasmtime_component_vallist_new_uninit and writing the cells);
 * the rest of a call is wasmtime's. */
extern uint64_t text_read_ns;
extern uint64_t text_encode_ns;
extern uint64_t text_result_ns;

/* read-text: func(len: u64) -> option<string>; none at the end of stdin. */
wasmtime_error_t *text_read_text(void *data, wasmtime_context_t *context,
                                 const wasmtime_component_func_type_t *type,
                                 wasmtime_component_val_t *args, size_t nargs,
                                 wasmtime_component_val_t *results, size_t nresults);
/* read-words: func(len: u64) -> option<list<u64>>: eight bytes a cell. */
wasmtime_error_t *text_read_words(void *data, wasmtime_context_t *context,
                                  const wasmtime_component_func_type_t *type,
                                  wasmtime_component_val_t *args, size_t nargs,
                                  wasmtime_component_val_t *results, size_t nresults);

#endif
