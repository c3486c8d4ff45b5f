/* fuzz_envelope.c: libFuzzer harness for the msgpack envelope reader every process
 * decodes NATS messages with (common/envelope.c): nt_envr_parse, every getter on the keys
 * the processes read and on keys from the input, a walk of every value, the RPC error
 * reply a gateway turns into a client error, and a writer round trip. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "envelope.h"
#include "frame.h"
#include "fuzz_check.h"
#include "util.h"

/* Every key gateway/, router/ and persister/ read (grep nt_envr_ and their field helpers). */
static const char *const keys[] = {
    "access_code", "ack", "actor", "admin", "after_seq", "app", "apps", "before_seq", "body",
    "cmid", "code", "conn", "conns", "created", "device", "found", "gw", "ids", "is_typing",
    "json", "jsons", "last_read_seq", "last_seq", "lazy", "limit", "members", "message",
    "mtype", "name", "ok", "owner", "peer", "rack", "reply_to", "room", "rooms", "sender",
    "seq", "skip_user", "status", "status_text", "ts", "type", "unread", "user", "users",
    "visibility", "what", "",
};

static const char *lo, *hi;           /* the input: strings must point into it */
static volatile unsigned sink;        /* makes the walk read every byte */

static bool has_nul(const char *p, uint32_t n)
{
    return n > 0 && memchr(p, '\0', n) != NULL;
}

static void touch(const char *p, uint32_t n, const char *what)
{
    if (n == 0)
        return;
    FZ_CHECK(p >= lo && p + n <= hi, "%s of %u bytes outside the input", what, n);
    for (uint32_t i = 0; i < n; i++)
        sink += (unsigned char)p[i];
}

/* Every value below o, as a reader of nested values would go through it. */
static void walk(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_STR: touch(o->via.str.ptr, o->via.str.size, "a string"); break;
    case MSGPACK_OBJECT_BIN: touch(o->via.bin.ptr, o->via.bin.size, "a bin"); break;
    case MSGPACK_OBJECT_EXT: touch(o->via.ext.ptr, o->via.ext.size, "an ext"); break;
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++)
            walk(&o->via.array.ptr[i]);
        break;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            walk(&o->via.map.ptr[i].key);
            walk(&o->via.map.ptr[i].val);
        }
        break;
    default: break;
    }
}

/* What the processes do with an array of strings (users, apps, rooms, ids, members):
 * type checks, then the id and UTF-8 validators on each element. */
static void string_array(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_ARRAY)
        return;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_STR)
            continue;
        sink += nt_valid_id(e->via.str.ptr, e->via.str.size);
        sink += nt_valid_utf8(e->via.str.ptr, e->via.str.size);
    }
}

/* Every getter on key agrees with nt_envr_get. */
static void getters(const nt_envr *r, const char *key)
{
    const msgpack_object *o = nt_envr_get(r, key);
    size_t len = 0;
    const char *s = nt_envr_str(r, key, &len);
    FZ_CHECK((s != NULL) == (o && o->type == MSGPACK_OBJECT_STR), "nt_envr_str(%s) vs type", key);
    if (s) {
        touch(s, (uint32_t)len, "nt_envr_str");
        char *d = nt_envr_strdup(r, key);
        FZ_CHECK(d && memcmp(d, s, len) == 0 && d[len] == '\0', "nt_envr_strdup(%s)", key);
        if (!has_nul(s, (uint32_t)len))
            FZ_CHECK(nt_envr_str_eq(r, key, d), "nt_envr_str_eq(%s) with its own value", key);
        nt_free(d);
    } else {
        FZ_CHECK(nt_envr_strdup(r, key) == NULL && !nt_envr_str_eq(r, key, ""),
                 "string getters on a non-string %s", key);
    }
    int64_t i = 0;
    bool b = false;
    if (nt_envr_int(r, key, &i)) {
        bool pos = o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && i >= 0 && (uint64_t)i == o->via.u64;
        bool neg = o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && i == o->via.i64;
        FZ_CHECK(pos || neg, "nt_envr_int(%s)", key);
    }
    if (nt_envr_bool(r, key, &b))
        FZ_CHECK(o->type == MSGPACK_OBJECT_BOOLEAN && b == o->via.boolean, "nt_envr_bool(%s)", key);
}

/* A refused RPC reply becomes the client's error as gw_rpc_ok (actions.c) writes it, and a
 * send_error as gw_actions_user_envelope does: both must encode to valid JSON. */
static void reply_error(const nt_envr *r)
{
    bool ok = false;
    size_t clen = 0, mlen = 0, len = 0;
    if (nt_envr_bool(r, "ok", &ok) && ok)
        return;
    const char *code = nt_envr_str(r, "code", &clen);
    const char *message = nt_envr_str(r, "message", &mlen);
    gw_error err;
    gw_fail(&err, gw_errcode_parse(code, clen), "%.*s", (int)mlen,
            message ? message : "request refused");
    fz_check_gw_error(&err);
    char *s = gw_encode_error(NULL, err.code, err.message, &len);
    json_decref(fz_json(s, len, "gw_encode_error(rpc reply)"));
    nt_free(s);

    char text[200];
    snprintf(text, sizeof text, "%.*s", (int)mlen, message ? message : "message refused");
    s = gw_encode_error(NULL, gw_errcode_parse(code, clen), text, &len);
    json_decref(fz_json(s, len, "gw_encode_error(send_error)"));
    nt_free(s);
}

/* The key of entry e as a C string when it can be one (a string without NUL) and e is
 * the entry nt_envr_get finds for it; else NULL. Free with nt_free. */
static char *own_key(const nt_envr *r, const msgpack_object_kv *e)
{
    if (e->key.type != MSGPACK_OBJECT_STR || has_nul(e->key.via.str.ptr, e->key.via.str.size))
        return NULL;
    char *k = nt_strndup(e->key.via.str.size ? e->key.via.str.ptr : "", e->key.via.str.size);
    if (nt_envr_get(r, k) != &e->val) {
        nt_free(k);
        return NULL;
    }
    return k;
}

/* True for an array nt_envw_str_array can write: strings without NUL, or nil. */
static bool cstr_array(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return false;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_NIL &&
            (e->type != MSGPACK_OBJECT_STR || has_nul(e->via.str.ptr, e->via.str.size)))
            return false;
    }
    return true;
}

/* Writes value v under key with nt_envw when it has an nt_envw_* writer. */
static bool rewrite(nt_envw *w, const char *key, const msgpack_object *v)
{
    switch (v->type) {
    case MSGPACK_OBJECT_STR: nt_envw_str(w, key, v->via.str.ptr, v->via.str.size); return true;
    case MSGPACK_OBJECT_NIL: nt_envw_cstr(w, key, NULL); return true;
    case MSGPACK_OBJECT_BOOLEAN: nt_envw_bool(w, key, v->via.boolean); return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: nt_envw_int(w, key, v->via.i64); return true;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (v->via.u64 > INT64_MAX)
            return false;
        nt_envw_int(w, key, (int64_t)v->via.u64);
        return true;
    case MSGPACK_OBJECT_ARRAY: {
        if (!cstr_array(v))
            return false;
        uint32_t n = v->via.array.size;
        char **vals = nt_calloc(n ? n : 1, sizeof *vals);
        for (uint32_t i = 0; i < n; i++) {
            const msgpack_object *e = &v->via.array.ptr[i];
            if (e->type == MSGPACK_OBJECT_STR)
                vals[i] = nt_strndup(e->via.str.size ? e->via.str.ptr : "", e->via.str.size);
        }
        nt_envw_str_array(w, key, (const char *const *)vals, n);
        for (uint32_t i = 0; i < n; i++)
            nt_free(vals[i]);
        nt_free(vals);
        return true;
    }
    default: return false;
    }
}

/* The fields of r that have a writer, written again with nt_envw, read back the same. */
static void round_trip(const nt_envr *r)
{
    nt_envw w;
    nt_envr back;
    size_t len;
    uint32_t written = 0;
    nt_envw_init(&w);
    for (uint32_t i = 0; i < r->map->size; i++) {
        char *k = own_key(r, &r->map->ptr[i]);
        if (k && rewrite(&w, k, &r->map->ptr[i].val))
            written++;
        nt_free(k);
    }
    const char *out = nt_envw_finish(&w, &len);
    FZ_CHECK(nt_envr_parse(&back, out, len) == NT_OK, "an envelope nt_envw wrote does not parse");
    FZ_CHECK(back.map->size == written, "wrote %u fields, read %u", written, back.map->size);
    for (uint32_t i = 0; i < r->map->size; i++) {
        const msgpack_object *v = &r->map->ptr[i].val;
        char *k = own_key(r, &r->map->ptr[i]);
        const msgpack_object *got = k ? nt_envr_get(&back, k) : NULL;
        if (got)
            FZ_CHECK(msgpack_object_equal(*got, *v), "field %s changed in the round trip", k);
        nt_free(k);
    }
    nt_envr_free(&back);
    nt_envw_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nt_envr r;
    lo = (const char *)data;
    hi = lo + size;
    if (nt_envr_parse(&r, lo, size) != NT_OK) {
        FZ_CHECK(r.map == NULL && nt_envr_get(&r, "type") == NULL, "a refused envelope has fields");
        nt_envr_free(&r);
        return 0;
    }
    walk(&r.up.data);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        getters(&r, keys[i]);
        string_array(nt_envr_get(&r, keys[i]));
    }
    for (uint32_t i = 0; i < r.map->size; i++) {     /* the input's own keys */
        char *k = own_key(&r, &r.map->ptr[i]);
        if (k)
            getters(&r, k);
        nt_free(k);
    }
    char *tail = nt_strndup(lo + size / 2, size - size / 2);   /* a key from the input bytes */
    getters(&r, tail);
    nt_free(tail);
    reply_error(&r);
    round_trip(&r);
    nt_envr_free(&r);
    return 0;
}
