/* envelope.c: msgpack envelopes. The writer packs into its own nt_buf behind a reserved map32 header whose count is patched at finish. */
#include "envelope.h"

#include <string.h>

#include "alloc.h"

#define ENV_HDR_LEN 5 /* 0xdf + 32-bit big-endian field count */

/* msgpack_packer write callback: appends to w->buf, which has no bound, so only
 * out-of-memory can stop it (and aborts). */
static int envw_write(void *data, const char *bytes, size_t len)
{
    return nt_buf_append(data, bytes, len) == NT_OK ? 0 : -1;
}

void nt_envw_init(nt_envw *w)
{
    static const char hdr[ENV_HDR_LEN] = { (char)0xdf, 0, 0, 0, 0 };
    memset(w, 0, sizeof(*w));
    nt_buf_init(&w->buf, 0);
    msgpack_packer_init(&w->pk, &w->buf, envw_write);
    envw_write(&w->buf, hdr, sizeof(hdr));
}

void nt_envw_free(nt_envw *w)
{
    nt_buf_free(&w->buf);
    memset(w, 0, sizeof(*w));
}

static void envw_key(nt_envw *w, const char *key)
{
    size_t n = strlen(key);
    msgpack_pack_str(&w->pk, n);
    msgpack_pack_str_body(&w->pk, key, n);
    w->count++;
}

static void envw_strval(nt_envw *w, const char *val, size_t len)
{
    msgpack_pack_str(&w->pk, len);
    msgpack_pack_str_body(&w->pk, val, len);
}

void nt_envw_str(nt_envw *w, const char *key, const char *val, size_t len)
{
    envw_key(w, key);
    envw_strval(w, val, len);
}

void nt_envw_cstr(nt_envw *w, const char *key, const char *val)
{
    envw_key(w, key);
    if (val == NULL)
        msgpack_pack_nil(&w->pk);
    else
        envw_strval(w, val, strlen(val));
}

void nt_envw_int(nt_envw *w, const char *key, int64_t val)
{
    envw_key(w, key);
    msgpack_pack_int64(&w->pk, val);
}

void nt_envw_bool(nt_envw *w, const char *key, bool val)
{
    envw_key(w, key);
    if (val)
        msgpack_pack_true(&w->pk);
    else
        msgpack_pack_false(&w->pk);
}

void nt_envw_str_array(nt_envw *w, const char *key, const char *const *vals, size_t n)
{
    envw_key(w, key);
    msgpack_pack_array(&w->pk, n);
    for (size_t i = 0; i < n; i++) {
        if (vals[i] == NULL)
            msgpack_pack_nil(&w->pk);
        else
            envw_strval(w, vals[i], strlen(vals[i]));
    }
}

const char *nt_envw_finish(nt_envw *w, size_t *len)
{
    unsigned char *p = (unsigned char *)w->buf.data;
    p[1] = (unsigned char)(w->count >> 24);
    p[2] = (unsigned char)(w->count >> 16);
    p[3] = (unsigned char)(w->count >> 8);
    p[4] = (unsigned char)w->count;
    *len = w->buf.len;
    return w->buf.data;
}

static uint32_t be(const unsigned char *p, unsigned n)
{
    uint32_t v = 0;
    while (n--)
        v = v << 8 | *p++;
    return v;
}

/* msgpack-c 4.0 reserves room for every element a container header claims before it
 * has seen them: five bytes (dd 04 00 00 00, "an array of 67 million") made it ask
 * malloc for 2 GB, and a map32 header inside a real envelope for 256 GB (found by
 * tests/fuzz, fuzz_envelope). So one pass over the header bytes first, without
 * building anything: the items still owed may never outnumber the bytes left, since
 * each needs at least one. Only sizes are read here; msgpack-c does the decoding. */
static bool plausible(const unsigned char *p, size_t len)
{
    uint64_t owed = 1;                           /* items still to come */
    size_t i = 0;
    while (owed > 0) {
        if (i >= len || owed > len - i)
            return false;
        unsigned char t = p[i++];
        uint64_t skip = 0, items = 0;            /* payload bytes; child items */
        unsigned n = 0;                          /* bytes of a length field */
        if (t <= 0x7f || t >= 0xe0 || (t >= 0xc0 && t <= 0xc3)) {
            /* fixints, nil, false, true (0xc1 is rejected by msgpack-c) */
        } else if (t <= 0x8f) {
            items = 2u * (t & 0x0f);
        } else if (t <= 0x9f) {
            items = t & 0x0f;
        } else if (t <= 0xbf) {
            skip = t & 0x1f;
        } else if (t >= 0xc4 && t <= 0xc6) {     /* bin 8/16/32 */
            n = 1u << (t - 0xc4);
        } else if (t >= 0xc7 && t <= 0xc9) {     /* ext 8/16/32: length, then a type byte */
            n = 1u << (t - 0xc7);
            skip = 1;
        } else if (t >= 0xca && t <= 0xd3) {     /* float 32/64, uint and int 8..64 */
            static const unsigned char width[] = { 4, 8, 1, 2, 4, 8, 1, 2, 4, 8 };
            skip = width[t - 0xca];
        } else if (t >= 0xd4 && t <= 0xd8) {     /* fixext 1..16: type byte + data */
            skip = 1 + (1u << (t - 0xd4));
        } else if (t >= 0xd9 && t <= 0xdb) {     /* str 8/16/32 */
            n = 1u << (t - 0xd9);
        } else if (t == 0xdc || t == 0xdd) {     /* array 16/32 */
            if ((size_t)(t == 0xdc ? 2 : 4) > len - i)
                return false;
            items = be(p + i, t == 0xdc ? 2 : 4);
            i += t == 0xdc ? 2 : 4;
        } else {                                 /* map 16/32 */
            if ((size_t)(t == 0xde ? 2 : 4) > len - i)
                return false;
            items = 2ull * be(p + i, t == 0xde ? 2 : 4);
            i += t == 0xde ? 2 : 4;
        }
        if (n) {
            if (n > len - i)
                return false;
            skip += be(p + i, n);
            i += n;
        }
        if (skip > len - i)
            return false;
        i += (size_t)skip;
        owed = owed - 1 + items;
    }
    return true;
}

nt_status nt_envr_parse(nt_envr *r, const char *data, size_t len)
{
    size_t off = 0;
    msgpack_unpacked_init(&r->up);
    r->map = NULL;
    if (!plausible((const unsigned char *)data, len))
        return NT_EPROTO;
    msgpack_unpack_return ret = msgpack_unpack_next(&r->up, data, len, &off);
    if (ret != MSGPACK_UNPACK_SUCCESS || off != len || r->up.data.type != MSGPACK_OBJECT_MAP)
        goto err;
    /* The map header goes into the unpacked zone, never into *r itself, so a reader
     * may be handed on by value (gw_rpc_ok does): the copy owns the zone, the
     * original must then not be freed. */
    msgpack_object_map *map = msgpack_zone_malloc(r->up.zone, sizeof *map);
    if (map == NULL)
        goto err;
    *map = r->up.data.via.map;
    r->map = map;
    return NT_OK;
err:
    msgpack_unpacked_destroy(&r->up);
    msgpack_unpacked_init(&r->up);
    return NT_EPROTO;
}

void nt_envr_free(nt_envr *r)
{
    msgpack_unpacked_destroy(&r->up);
    msgpack_unpacked_init(&r->up);
    r->map = NULL;
}

const msgpack_object *nt_envr_get(const nt_envr *r, const char *key)
{
    if (r->map == NULL)
        return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < r->map->size; i++) {
        const msgpack_object *k = &r->map->ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            (n == 0 || memcmp(k->via.str.ptr, key, n) == 0))
            return &r->map->ptr[i].val;
    }
    return NULL;
}

const char *nt_envr_str(const nt_envr *r, const char *key, size_t *len)
{
    const msgpack_object *o = nt_envr_get(r, key);
    if (o == NULL || o->type != MSGPACK_OBJECT_STR)
        return NULL;
    if (len != NULL)
        *len = o->via.str.size;
    return o->via.str.ptr != NULL ? o->via.str.ptr : "";
}

char *nt_envr_strdup(const nt_envr *r, const char *key)
{
    size_t len;
    const char *s = nt_envr_str(r, key, &len);
    return s != NULL ? nt_strndup(s, len) : NULL;
}

bool nt_envr_str_eq(const nt_envr *r, const char *key, const char *val)
{
    size_t len;
    const char *s = nt_envr_str(r, key, &len);
    return s != NULL && len == strlen(val) && memcmp(s, val, len) == 0;
}

bool nt_envr_int(const nt_envr *r, const char *key, int64_t *out)
{
    const msgpack_object *o = nt_envr_get(r, key);
    if (o == NULL)
        return false;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *out = (int64_t)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return true;
    }
    return false;
}

bool nt_envr_bool(const nt_envr *r, const char *key, bool *out)
{
    const msgpack_object *o = nt_envr_get(r, key);
    if (o == NULL || o->type != MSGPACK_OBJECT_BOOLEAN)
        return false;
    *out = o->via.boolean;
    return true;
}
