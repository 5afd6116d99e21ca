/* The part of wasmtime 49's C API that a component host with its own
 * functions needs, declared here because the wasmtime-py wheel ships the
 * shared library without headers. Layouts and signatures follow
 * wasmtime-py 49.0.0's `wasmtime/_bindings.py` (generated from the
 * official headers); the static asserts catch a layout that moved. */
#ifndef WASMTIME_COMPONENT_CAPI_H
#define WASMTIME_COMPONENT_CAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wasm_byte_vec_t {
    size_t size;
    char *data;
} wasm_byte_vec_t;
typedef wasm_byte_vec_t wasm_name_t;

typedef struct wasm_engine_t wasm_engine_t;
typedef struct wasi_config_t wasi_config_t;
typedef struct wasmtime_error_t wasmtime_error_t;
typedef struct wasmtime_store_t wasmtime_store_t;
typedef struct wasmtime_context_t wasmtime_context_t;
typedef struct wasmtime_component_t wasmtime_component_t;
typedef struct wasmtime_component_linker_t wasmtime_component_linker_t;
typedef struct wasmtime_component_linker_instance_t wasmtime_component_linker_instance_t;
typedef struct wasmtime_component_resource_type_t wasmtime_component_resource_type_t;
typedef struct wasmtime_component_resource_any_t wasmtime_component_resource_any_t;
typedef struct wasmtime_component_resource_host_t wasmtime_component_resource_host_t;
typedef struct wasmtime_component_export_index_t wasmtime_component_export_index_t;
typedef struct wasmtime_component_func_type_t wasmtime_component_func_type_t;

typedef struct wasmtime_component_instance_t {
    uint64_t store_id;
    uint32_t private_index;
} wasmtime_component_instance_t;

typedef struct wasmtime_component_func_t {
    struct {
        uint64_t store_id;
        uint32_t private_1;
    } instance;
    uint32_t private_2;
    void *private_3;
} wasmtime_component_func_t;

/* Value kinds (wasmtime_component_valkind_t). */
enum {
    WASMTIME_COMPONENT_U8 = 2,
    WASMTIME_COMPONENT_U64 = 8,
    WASMTIME_COMPONENT_STRING = 12,
    WASMTIME_COMPONENT_LIST = 13,
    WASMTIME_COMPONENT_VARIANT = 16,
    WASMTIME_COMPONENT_OPTION = 18,
    WASMTIME_COMPONENT_RESULT = 19,
    WASMTIME_COMPONENT_RESOURCE = 21,
};

typedef struct wasmtime_component_val wasmtime_component_val_t;

typedef struct wasmtime_component_vallist_t {
    size_t size;
    wasmtime_component_val_t *data;
} wasmtime_component_vallist_t;

/* One value cell: every component value, a single byte of a list<u8>
 * included, is one of these 32-byte cells. */
struct wasmtime_component_val {
    uint8_t kind;
    union {
        uint8_t u8;
        uint64_t u64;
        wasm_name_t string;
        wasmtime_component_vallist_t list;
        struct {
            wasm_name_t discriminant;
            wasmtime_component_val_t *val;
        } variant;
        struct {
            bool is_ok;
            wasmtime_component_val_t *val;
        } result;
        wasmtime_component_val_t *option;
        wasmtime_component_resource_any_t *resource;
    } of;
};

_Static_assert(sizeof(wasmtime_component_val_t) == 32, "wasmtime_component_val_t moved");
_Static_assert(offsetof(wasmtime_component_val_t, of) == 8, "wasmtime_component_val_t moved");
_Static_assert(sizeof(wasmtime_component_func_t) == 32, "wasmtime_component_func_t moved");

typedef wasmtime_error_t *(*wasmtime_component_func_callback_t)(
    void *data, wasmtime_context_t *context, const wasmtime_component_func_type_t *type,
    wasmtime_component_val_t *args, size_t nargs, wasmtime_component_val_t *results,
    size_t nresults);
typedef wasmtime_error_t *(*wasmtime_component_resource_destructor_t)(
    void *data, wasmtime_context_t *context, uint32_t rep);

void wasm_byte_vec_new(wasm_byte_vec_t *out, size_t size, const char *data);
void wasm_byte_vec_delete(wasm_byte_vec_t *vec);
wasm_engine_t *wasm_engine_new(void);
void wasm_engine_delete(wasm_engine_t *engine);

wasmtime_error_t *wasmtime_wat2wasm(const char *wat, size_t wat_len, wasm_byte_vec_t *out);
void wasmtime_error_message(const wasmtime_error_t *error, wasm_name_t *message);
void wasmtime_error_delete(wasmtime_error_t *error);

wasmtime_store_t *wasmtime_store_new(wasm_engine_t *engine, void *data, void (*finalizer)(void *));
wasmtime_context_t *wasmtime_store_context(wasmtime_store_t *store);
void wasmtime_store_delete(wasmtime_store_t *store);

wasi_config_t *wasi_config_new(void);
void wasi_config_inherit_stdin(wasi_config_t *config);
wasmtime_error_t *wasmtime_context_set_wasi(wasmtime_context_t *context, wasi_config_t *config);

wasmtime_error_t *wasmtime_component_new(const wasm_engine_t *engine, const uint8_t *buf,
                                         size_t len, wasmtime_component_t **component_out);
void wasmtime_component_delete(wasmtime_component_t *component);

wasmtime_component_linker_t *wasmtime_component_linker_new(const wasm_engine_t *engine);
wasmtime_component_linker_instance_t *wasmtime_component_linker_root(
    wasmtime_component_linker_t *linker);
wasmtime_error_t *wasmtime_component_linker_add_wasip2(wasmtime_component_linker_t *linker);
wasmtime_error_t *wasmtime_component_linker_instance_add_instance(
    wasmtime_component_linker_instance_t *instance, const char *name, size_t name_len,
    wasmtime_component_linker_instance_t **instance_out);
wasmtime_error_t *wasmtime_component_linker_instance_add_func(
    wasmtime_component_linker_instance_t *instance, const char *name, size_t name_len,
    wasmtime_component_func_callback_t callback, void *data, void (*finalizer)(void *));
wasmtime_error_t *wasmtime_component_linker_instance_add_resource(
    wasmtime_component_linker_instance_t *instance, const char *name, size_t name_len,
    const wasmtime_component_resource_type_t *type,
    wasmtime_component_resource_destructor_t destructor, void *data, void (*finalizer)(void *));
void wasmtime_component_linker_instance_delete(wasmtime_component_linker_instance_t *instance);
wasmtime_error_t *wasmtime_component_linker_instantiate(
    const wasmtime_component_linker_t *linker, wasmtime_context_t *context,
    const wasmtime_component_t *component, wasmtime_component_instance_t *instance_out);
void wasmtime_component_linker_delete(wasmtime_component_linker_t *linker);

wasmtime_component_export_index_t *wasmtime_component_instance_get_export_index(
    const wasmtime_component_instance_t *instance, wasmtime_context_t *context,
    const wasmtime_component_export_index_t *parent, const char *name, size_t name_len);
bool wasmtime_component_instance_get_func(const wasmtime_component_instance_t *instance,
                                          wasmtime_context_t *context,
                                          const wasmtime_component_export_index_t *index,
                                          wasmtime_component_func_t *func_out);
wasmtime_error_t *wasmtime_component_func_call(const wasmtime_component_func_t *func,
                                               wasmtime_context_t *context,
                                               const wasmtime_component_val_t *args,
                                               size_t nargs, wasmtime_component_val_t *results,
                                               size_t nresults);
wasmtime_error_t *wasmtime_component_func_post_return(const wasmtime_component_func_t *func,
                                                      wasmtime_context_t *context);

wasmtime_component_resource_type_t *wasmtime_component_resource_type_new_host(uint32_t type);
wasmtime_component_resource_host_t *wasmtime_component_resource_host_new(bool owned, uint32_t rep,
                                                                         uint32_t type);
void wasmtime_component_resource_host_delete(wasmtime_component_resource_host_t *resource);
wasmtime_error_t *wasmtime_component_resource_any_to_host(
    wasmtime_context_t *context, const wasmtime_component_resource_any_t *resource,
    wasmtime_component_resource_host_t **host_out);
wasmtime_error_t *wasmtime_component_resource_host_to_any(
    wasmtime_context_t *context, const wasmtime_component_resource_host_t *resource,
    wasmtime_component_resource_any_t **any_out);

void wasmtime_component_vallist_new_uninit(wasmtime_component_vallist_t *out, size_t size);
wasmtime_component_val_t *wasmtime_component_val_new(wasmtime_component_val_t *val);

#endif
