/* host MODE GUEST.wat < INPUT
 *
 * Runs the guest once through wasmtime's C API and prints the seconds that
 * call took, then three splits of the host function's time, in seconds.
 * The guest reads stdin in 64 KiB reads until it ends, so every byte of
 * INPUT crosses into the guest in the form MODE gives it.
 *
 * With guest.wat (wasi:cli/run; blocking-read's list<u8>):
 * MODE typed:  wasi:io and wasi:cli come from wasmtime's own WASI
 *              (wasmtime_component_linker_add_wasip2): the typed Rust host
 *              path, where a list<u8> result is one copy into guest memory.
 *              The splits are 0.
 * MODE values: the same functions are the C callbacks of value_callbacks.c,
 *              added with wasmtime_component_linker_instance_add_func, the
 *              only way a C (or Python, ...) embedder can define a host
 *              function: one 32-byte value cell per byte. The splits:
 *              read(2), wasmtime_component_vallist_new_uninit, writing cells.
 *
 * With guest-text.wat (text_callbacks.c, through the same C API), the
 * splits are read(2), the callback's encoding, and making the result:
 * MODE string: the bytes as a string, as they are (valid UTF-8 input only);
 * MODE hex:    the bytes as a string of hex digits, twice as long;
 * MODE base64: the bytes as a base64 string, a third longer;
 * MODE words:  the bytes as a list<u64>, one cell per eight bytes.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text_callbacks.h"
#include "value_callbacks.h"

static void die(const char *what, wasmtime_error_t *error) {
    if (error == NULL) {
        fprintf(stderr, "host: %s\n", what);
    } else {
        wasm_name_t message;
        wasmtime_error_message(error, &message);
        fprintf(stderr, "host: %s: %.*s\n", what, (int)message.size, message.data);
    }
    exit(1);
}

static void check(const char *what, wasmtime_error_t *error) {
    if (error != NULL)
        die(what, error);
}

static double now_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static wasmtime_component_linker_instance_t *add_instance(
    wasmtime_component_linker_instance_t *root, const char *name) {
    wasmtime_component_linker_instance_t *instance;
    check(name, wasmtime_component_linker_instance_add_instance(root, name, strlen(name),
                                                                &instance));
    return instance;
}

static void add_resource(wasmtime_component_linker_instance_t *instance, const char *name,
                         uint32_t type_id) {
    wasmtime_component_resource_type_t *type = wasmtime_component_resource_type_new_host(type_id);
    check(name, wasmtime_component_linker_instance_add_resource(instance, name, strlen(name), type,
                                                                value_forget, NULL, NULL));
}

static void add_func(wasmtime_component_linker_instance_t *instance, const char *name,
                     wasmtime_component_func_callback_t callback) {
    check(name, wasmtime_component_linker_instance_add_func(instance, name, strlen(name), callback,
                                                            NULL, NULL));
}

static void define_value_callbacks(wasmtime_component_linker_t *linker) {
    wasmtime_component_linker_instance_t *root = wasmtime_component_linker_root(linker);

    wasmtime_component_linker_instance_t *error = add_instance(root, "wasi:io/error@0.2.0");
    add_resource(error, "error", VALUE_IO_ERROR_TYPE);
    wasmtime_component_linker_instance_delete(error);

    wasmtime_component_linker_instance_t *streams = add_instance(root, "wasi:io/streams@0.2.0");
    add_resource(streams, "error", VALUE_IO_ERROR_TYPE);
    add_resource(streams, "input-stream", VALUE_INPUT_STREAM_TYPE);
    add_func(streams, "[method]input-stream.blocking-read", value_blocking_read);
    wasmtime_component_linker_instance_delete(streams);

    wasmtime_component_linker_instance_t *cli_stdin = add_instance(root, "wasi:cli/stdin@0.2.0");
    add_resource(cli_stdin, "input-stream", VALUE_INPUT_STREAM_TYPE);
    add_func(cli_stdin, "get-stdin", value_get_stdin);
    wasmtime_component_linker_instance_delete(cli_stdin);

    wasmtime_component_linker_instance_delete(root);
}

static void define_text_callbacks(wasmtime_component_linker_t *linker) {
    wasmtime_component_linker_instance_t *root = wasmtime_component_linker_root(linker);
    wasmtime_component_linker_instance_t *bytes = add_instance(root, "wall:bench/bytes@0.1.0");
    add_func(bytes, "read-text", text_read_text);
    add_func(bytes, "read-words", text_read_words);
    wasmtime_component_linker_instance_delete(bytes);
    wasmtime_component_linker_instance_delete(root);
}

static const char *const TEXT_MODES[] = {"string", "hex", "base64"};

static wasm_byte_vec_t read_file(const char *path) {
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        die(path, NULL);
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    wasm_byte_vec_t text = {(size_t)size, malloc((size_t)size)};
    if (fread(text.data, 1, text.size, file) != text.size)
        die(path, NULL);
    fclose(file);
    return text;
}

int main(int argc, char **argv) {
    const char *mode = argc == 3 ? argv[1] : "";
    bool typed = strcmp(mode, "typed") == 0, values = strcmp(mode, "values") == 0;
    bool words = strcmp(mode, "words") == 0, text = false;
    for (size_t form = 0; form < sizeof TEXT_MODES / sizeof *TEXT_MODES; form++) {
        if (strcmp(mode, TEXT_MODES[form]) == 0) {
            text = true;
            text_form = (enum text_form)form;
        }
    }
    if (!typed && !values && !text && !words) {
        fprintf(stderr, "usage: host typed|values GUEST.wat < INPUT\n"
                        "       host string|hex|base64|words GUEST-TEXT.wat < INPUT\n");
        return 2;
    }

    wasm_engine_t *engine = wasm_engine_new();
    wasm_byte_vec_t source = read_file(argv[2]);
    wasm_byte_vec_t binary;
    check("wat2wasm", wasmtime_wat2wasm(source.data, source.size, &binary));
    wasmtime_component_t *component;
    check("compile", wasmtime_component_new(engine, (const uint8_t *)binary.data, binary.size,
                                            &component));

    wasmtime_component_linker_t *linker = wasmtime_component_linker_new(engine);
    wasmtime_store_t *store = wasmtime_store_new(engine, NULL, NULL);
    wasmtime_context_t *context = wasmtime_store_context(store);
    if (typed) {
        check("add_wasip2", wasmtime_component_linker_add_wasip2(linker));
        wasi_config_t *wasi = wasi_config_new();
        wasi_config_inherit_stdin(wasi);
        check("set_wasi", wasmtime_context_set_wasi(context, wasi));
    } else if (values) {
        define_value_callbacks(linker);
    } else {
        define_text_callbacks(linker);
    }

    wasmtime_component_instance_t instance;
    check("instantiate", wasmtime_component_linker_instantiate(linker, context, component,
                                                               &instance));
    wasmtime_component_export_index_t *run_index;
    if (typed || values) {
        const char *interface = "wasi:cli/run@0.2.0";
        wasmtime_component_export_index_t *interface_index =
            wasmtime_component_instance_get_export_index(&instance, context, NULL, interface,
                                                         strlen(interface));
        run_index = interface_index == NULL ? NULL
            : wasmtime_component_instance_get_export_index(&instance, context, interface_index,
                                                           "run", strlen("run"));
    } else {
        const char *name = words ? "read-words-to-end" : "read-text-to-end";
        run_index = wasmtime_component_instance_get_export_index(&instance, context, NULL, name,
                                                                 strlen(name));
    }
    wasmtime_component_func_t run;
    if (run_index == NULL || !wasmtime_component_instance_get_func(&instance, context, run_index,
                                                                   &run))
        die("the guest does not export the function this mode runs", NULL);

    wasmtime_component_val_t outcome;
    double start = now_seconds();
    check("run", wasmtime_component_func_call(&run, context, NULL, 0, &outcome, 1));
    check("post-return", wasmtime_component_func_post_return(&run, context));
    double run_seconds = now_seconds() - start;
    if (!outcome.of.result.is_ok)
        die("the guest returned err", NULL);
    if (typed || values)
        printf("%.6f %.6f %.6f %.6f\n", run_seconds, value_read_ns / 1e9,
               value_allocate_ns / 1e9, value_cells_ns / 1e9);
    else
        printf("%.6f %.6f %.6f %.6f\n", run_seconds, text_read_ns / 1e9, text_encode_ns / 1e9,
               text_result_ns / 1e9);
    return 0;
}
