/* wire.c: wire.h's constants, the subject builders and parser, the shared settings. */
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "util.h"

#define NT_WIRE_DEFINE_SUBJ(name, text) const char NT_SUBJ_##name[] = text;
#define NT_WIRE_DEFINE_QUEUE(name, text) const char NT_QUEUE_##name[] = text;
#define NT_WIRE_DEFINE_KEY(name, text) const char NT_KEY_##name[] = text;
#define NT_WIRE_DEFINE_TYPE(name, text) const char NT_TYPE_##name[] = text;
NT_SUBJECT_MAP(NT_WIRE_DEFINE_SUBJ)
NT_WIRE_QUEUE_MAP(NT_WIRE_DEFINE_QUEUE)
NT_KEY_MAP(NT_WIRE_DEFINE_KEY)
NT_TYPE_MAP(NT_WIRE_DEFINE_TYPE)
#undef NT_WIRE_DEFINE_SUBJ
#undef NT_WIRE_DEFINE_QUEUE
#undef NT_WIRE_DEFINE_KEY
#undef NT_WIRE_DEFINE_TYPE

const char *const nt_wire_subjects[] = {
#define NT_WIRE_LIST_SUBJ(name, text) NT_SUBJ_##name,
    NT_SUBJECT_MAP(NT_WIRE_LIST_SUBJ)
#undef NT_WIRE_LIST_SUBJ
    NULL
};

#define KIND_MAX 8

static bool valid_kind(const char *kind)
{
    size_t n = strlen(kind);
    if (n == 0 || n > KIND_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (kind[i] < 'a' || kind[i] > 'z')
            return false;
    return true;
}

static bool valid_part(const char *s)
{
    return s != NULL && nt_valid_id(s, strlen(s));
}

/* The common tail of every builder: n is snprintf's answer. */
static int fitted(char *buf, size_t cap, int n)
{
    if (n >= 0 && (size_t)n < cap)
        return n;
    if (cap > 0)
        buf[0] = '\0';
    return -1;
}

static int refused(char *buf, size_t cap)
{
    return fitted(buf, cap, -1);
}

int nt_subj_target(char *buf, size_t cap, const char *kind, const char *app, const char *id)
{
    if (kind == NULL || !valid_kind(kind) || !valid_part(app) || !valid_part(id))
        return refused(buf, cap);
    return fitted(buf, cap, snprintf(buf, cap, "natter.%s.%s.%s", kind, app, id));
}

int nt_subj_room(char *buf, size_t cap, const char *app, const char *room)
{
    return nt_subj_target(buf, cap, NT_SUBJ_KIND_ROOM, app, room);
}

int nt_subj_user(char *buf, size_t cap, const char *app, const char *user)
{
    return nt_subj_target(buf, cap, NT_SUBJ_KIND_USER, app, user);
}

int nt_subj_in(char *buf, size_t cap, const char *app, unsigned partition)
{
    if (!valid_part(app))
        return refused(buf, cap);
    return fitted(buf, cap, snprintf(buf, cap, "natter.in.%s.%u", app, partition));
}

int nt_subj_in_filter(char *buf, size_t cap, unsigned partition)
{
    return fitted(buf, cap, snprintf(buf, cap, "natter.in.*.%u", partition));
}

bool nt_subj_parse(const char *subject, size_t len, const char *kind, nt_subj_parts *out)
{
    static const char natter[] = "natter.";
    size_t plen = sizeof natter - 1, klen = kind ? strlen(kind) : 0;

    memset(out, 0, sizeof *out);
    if (subject == NULL || klen == 0 || len < plen + klen + 1 ||
        memcmp(subject, natter, plen) != 0 || memcmp(subject + plen, kind, klen) != 0 ||
        subject[plen + klen] != '.')
        return false;
    const char *app = subject + plen + klen + 1, *end = subject + len;
    const char *dot = memchr(app, '.', (size_t)(end - app));
    if (dot == NULL)
        return false;
    size_t app_len = (size_t)(dot - app), id_len = (size_t)(end - dot - 1);
    if (!nt_valid_id(app, app_len) || !nt_valid_id(dot + 1, id_len))
        return false;
    *out = (nt_subj_parts){ .app = app, .app_len = app_len, .id = dot + 1, .id_len = id_len };
    return true;
}

bool nt_subj_parse_room(const char *subject, size_t len, nt_subj_parts *out)
{
    return nt_subj_parse(subject, len, NT_SUBJ_KIND_ROOM, out);
}

static const nt_wire_bounds settings[NT_SET_COUNT] = {
#define NT_WIRE_SETTING_ROW(name, env, def, min, max) [NT_SET_##name] = { env, def, min, max },
    NT_WIRE_SETTING_MAP(NT_WIRE_SETTING_ROW)
#undef NT_WIRE_SETTING_ROW
};

static const struct { const char *env, *def; } str_settings[NT_SET_STR_COUNT] = {
#define NT_WIRE_STR_SETTING_ROW(name, env, def) [NT_SET_##name] = { env, def },
    NT_WIRE_STR_SETTING_MAP(NT_WIRE_STR_SETTING_ROW)
#undef NT_WIRE_STR_SETTING_ROW
};

const nt_wire_bounds *nt_wire_setting_bounds(nt_wire_setting id)
{
    return (unsigned)id < NT_SET_COUNT ? &settings[id] : NULL;
}

int64_t nt_wire_int(nt_wire_setting id)
{
    const nt_wire_bounds *b = nt_wire_setting_bounds(id);
    if (b == NULL) {
        nt_error("nt_wire_int: unknown setting %d", (int)id);
        abort();
    }
    return nt_config_int(b->env, b->def, b->min, b->max);
}

const char *nt_wire_str(nt_wire_str_setting id)
{
    if ((unsigned)id >= NT_SET_STR_COUNT) {
        nt_error("nt_wire_str: unknown setting %d", (int)id);
        abort();
    }
    return nt_config_str(str_settings[id].env, str_settings[id].def, NULL);
}

const char *nt_wire_metrics_listen(nt_wire_proc proc)
{
    static const char *const defaults[] = {
        [NT_WIRE_GATEWAY] = "127.0.0.1:9101",
        [NT_WIRE_ROUTER] = "127.0.0.1:9102",
        [NT_WIRE_PERSISTER] = "127.0.0.1:9103",
    };
    if ((unsigned)proc >= sizeof defaults / sizeof defaults[0]) {
        nt_error("nt_wire_metrics_listen: unknown process %d", (int)proc);
        abort();
    }
    return nt_config_str("NATTER_METRICS_LISTEN", defaults[proc], NULL);
}

int64_t nt_msg_digest(const char *room, const char *text, size_t text_len)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)room; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    h = (h ^ 0u) * 1099511628211ull;
    for (size_t i = 0; i < text_len; i++)
        h = (h ^ (unsigned char)text[i]) * 1099511628211ull;
    return (int64_t)h;
}
