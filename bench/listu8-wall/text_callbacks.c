/* The same bytes as value_callbacks.c's blocking-read, handed over through
 * the same C API in other forms. A string is one byte vector that wasmtime
 * copies into the guest as a block; a list<u64> is one 32-byte cell per
 * eight bytes instead of one per byte. The input must be valid UTF-8 for
 * TEXT_AS_IS (run.sh feeds zeros); hex and base64 are valid for any bytes. */
#define _POSIX_C_SOURCE 199309L
#include <string.h>
#include <unistd.h>

#include "text_callbacks.h"
#include "value_callbacks.h"

enum { MAX_READ = 1 << 20 };

enum text_form text_form = TEXT_AS_IS;
uint64_t text_read_ns;
uint64_t text_encode_ns;
uint64_t text_result_ns;

static char read_buffer[MAX_READ];
/* Room for the longest form: hex, two characters a byte. */
static char text_buffer[2 * MAX_READ];

static size_t hex(const char *bytes, size_t size, char *out) {
    static char pairs[256][2];
    if (pairs[255][0] == 0) {
        static const char digits[] = "0123456789abcdef";
        for (int byte = 0; byte < 256; byte++) {
            pairs[byte][0] = digits[byte >> 4];
            pairs[byte][1] = digits[byte & 15];
        }
    }
    for (size_t i = 0; i < size; i++)
        memcpy(out + 2 * i, pairs[(unsigned char)bytes[i]], 2);
    return 2 * size;
}

static size_t base64(const char *bytes, size_t size, char *out) {
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *in = (const unsigned char *)bytes;
    size_t length = 0, i = 0;
    for (; i + 2 < size; i += 3) {
        uint32_t group = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[length++] = digits[group >> 18];
        out[length++] = digits[(group >> 12) & 63];
        out[length++] = digits[(group >> 6) & 63];
        out[length++] = digits[group & 63];
    }
    if (i < size) {
        uint32_t group = (uint32_t)in[i] << 16 | (i + 1 < size ? (uint32_t)in[i + 1] << 8 : 0);
        out[length++] = digits[group >> 18];
        out[length++] = digits[(group >> 12) & 63];
        out[length++] = i + 1 < size ? digits[(group >> 6) & 63] : '=';
        out[length++] = '=';
    }
    return length;
}

/* read(2) up to the requested length; the end of input (or an error) is 0. */
static size_t read_input(const wasmtime_component_val_t *args) {
    uint64_t start = value_monotonic_ns();
    size_t wanted = args[0].of.u64 < MAX_READ ? (size_t)args[0].of.u64 : MAX_READ;
    ssize_t got = read(value_input_fd, read_buffer, wanted);
    text_read_ns += value_monotonic_ns() - start;
    return got > 0 ? (size_t)got : 0;
}

/* results[0] = some(payload), or none when `payload` is NULL. */
static void set_option(wasmtime_component_val_t *results, wasmtime_component_val_t *payload) {
    results[0].kind = WASMTIME_COMPONENT_OPTION;
    results[0].of.option = payload == NULL ? NULL : wasmtime_component_val_new(payload);
}

wasmtime_error_t *text_read_text(void *data, wasmtime_context_t *context,
                                 const wasmtime_component_func_type_t *type,
                                 wasmtime_component_val_t *args, size_t nargs,
                                 wasmtime_component_val_t *results, size_t nresults) {
    size_t got = read_input(args);
    if (got == 0) {
        set_option(results, NULL);
        return NULL;
    }
    uint64_t start = value_monotonic_ns();
    const char *text = read_buffer;
    size_t length = got;
    if (text_form == TEXT_HEX) {
        text = text_buffer;
        length = hex(read_buffer, got, text_buffer);
    } else if (text_form == TEXT_BASE64) {
        text = text_buffer;
        length = base64(read_buffer, got, text_buffer);
    }
    uint64_t encoded = value_monotonic_ns();
    wasmtime_component_val_t payload;
    payload.kind = WASMTIME_COMPONENT_STRING;
    wasm_byte_vec_new(&payload.of.string, length, text);
    set_option(results, &payload);
    text_encode_ns += encoded - start;
    text_result_ns += value_monotonic_ns() - encoded;
    return NULL;
}

wasmtime_error_t *text_read_words(void *data, wasmtime_context_t *context,
                                  const wasmtime_component_func_type_t *type,
                                  wasmtime_component_val_t *args, size_t nargs,
                                  wasmtime_component_val_t *results, size_t nresults) {
    size_t got = read_input(args);
    if (got == 0) {
        set_option(results, NULL);
        return NULL;
    }
    uint64_t start = value_monotonic_ns();
    size_t count = (got + 7) / 8;
    memset(read_buffer + got, 0, count * 8 - got);  /* a short tail is padded */
    wasmtime_component_val_t payload;
    payload.kind = WASMTIME_COMPONENT_LIST;
    wasmtime_component_vallist_new_uninit(&payload.of.list, count);
    for (size_t i = 0; i < count; i++) {
        payload.of.list.data[i].kind = WASMTIME_COMPONENT_U64;
        memcpy(&payload.of.list.data[i].of.u64, read_buffer + 8 * i, 8);
    }
    set_option(results, &payload);
    text_result_ns += value_monotonic_ns() - start;
    return NULL;
}
