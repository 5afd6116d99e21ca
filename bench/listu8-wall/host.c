/* host MODE GUEST.wat < INPUT
 *
 * Runs GUEST's wasi:cli/run once through wasmtime's C API and prints the
 * seconds that call took, then the seconds blocking-read spent in read(2),
 * in wasmtime_component_vallist_new_uninit and in writing cells (all 0 in
 * typed mode). The guest reads stdin in 64 KiB blocking reads until it is
 * closed, so every byte of INPUT crosses into the guest as a list<u8>.
 *
 * MODE typed:  wasi:io and wasi:cli come from wasmtime's own WASI
 *              (wasmtime_component_linker_add_wasip2): the typed Rust host
 *              path, where a list<u8> result is one copy into guest memory.
 * MODE values: the same functions are the C callbacks of value_callbacks.c,
 *              added with wasmtime_component_linker_instance_add_func, the
 *              only way a C (or Python, ...) embedder can define a host
 *              function: one 32-byte value cell per byte.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    if (argc != 3 || (strcmp(argv[1], "typed") != 0 && strcmp(argv[1], "values") != 0)) {
        fprintf(stderr, "usage: host typed|values GUEST.wat < INPUT\n");
        return 2;
    }
    bool typed = strcmp(argv[1], "typed") == 0;

    wasm_engine_t *engine = wasm_engine_new();
    wasm_byte_vec_t text = read_file(argv[2]);
    wasm_byte_vec_t binary;
    check("wat2wasm", wasmtime_wat2wasm(text.data, text.size, &binary));
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
    } else {
        define_value_callbacks(linker);
    }

    wasmtime_component_instance_t instance;
    check("instantiate", wasmtime_component_linker_instantiate(linker, context, component,
                                                               &instance));
    const char *interface = "wasi:cli/run@0.2.0";
    wasmtime_component_export_index_t *interface_index =
        wasmtime_component_instance_get_export_index(&instance, context, NULL, interface,
                                                     strlen(interface));
    wasmtime_component_export_index_t *run_index =
        wasmtime_component_instance_get_export_index(&instance, context, interface_index, "run",
                                                     strlen("run"));
    wasmtime_component_func_t run;
    if (interface_index == NULL || run_index == NULL ||
        !wasmtime_component_instance_get_func(&instance, context, run_index, &run))
        die("the guest exports no wasi:cli/run@0.2.0#run", NULL);

    wasmtime_component_val_t outcome;
    double start = now_seconds();
    check("run", wasmtime_component_func_call(&run, context, NULL, 0, &outcome, 1));
    check("post-return", wasmtime_component_func_post_return(&run, context));
    double run_seconds = now_seconds() - start;
    if (!outcome.of.result.is_ok)
        die("the guest's run returned err", NULL);
    printf("%.6f %.6f %.6f %.6f\n", run_seconds, value_read_ns / 1e9, value_allocate_ns / 1e9,
           value_cells_ns / 1e9);
    return 0;
}
