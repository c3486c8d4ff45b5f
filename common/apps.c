/* apps.c: NATTER_APPS (see apps.h). */
#include "apps.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "util.h"

#define APPS_MAX 10000
#define APPS_FILE_MAX (4 << 20)

static const char *const known[] = { "id", "key", "secret", "jwt_secret", "api_key", "enabled",
                                     "client_events", "webhook_url", "max_connections", NULL };

static bool fail(char *why, size_t whylen, const char *fmt, const char *a, const char *b)
{
    snprintf(why, whylen, fmt, a, b);
    return false;
}

/* An optional non-empty string member into *out (NULL when absent). */
static bool opt_str(json_t *o, const char *key, const char *id, char **out, char *why, size_t whylen)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return fail(why, whylen, "app '%s': '%s' must be a non-empty string", id, key);
    *out = nt_strdup(json_string_value(v));
    return true;
}

static bool opt_bool(json_t *o, const char *key, const char *id, bool def, bool *out, char *why,
                     size_t whylen)
{
    json_t *v = json_object_get(o, key);
    *out = def;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_boolean(v))
        return fail(why, whylen, "app '%s': '%s' must be true or false", id, key);
    *out = json_is_true(v);
    return true;
}

static bool parse_one(json_t *o, size_t index, nt_app *app, const nt_apps *done, char *why,
                      size_t whylen)
{
    char at[32];
    snprintf(at, sizeof at, "#%zu", index);
    if (!json_is_object(o))
        return fail(why, whylen, "app %s: must be an object%s", at, "");
    json_t *id = json_object_get(o, "id");
    if (!json_is_string(id) || !nt_valid_id(json_string_value(id), json_string_length(id)))
        return fail(why, whylen, "app %s: 'id' must be 1-64 characters of [A-Za-z0-9_-]%s", at, "");
    const char *ids = json_string_value(id);
    if (nt_apps_find(done, ids))
        return fail(why, whylen, "app '%s' is listed twice%s", ids, "");
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        size_t k = 0;
        while (known[k] && strcmp(known[k], key) != 0)
            k++;
        if (!known[k])
            return fail(why, whylen, "app '%s': unknown key '%s' (known: id, key, secret, jwt_secret, "
                        "api_key, enabled, client_events, webhook_url, max_connections)", ids, key);
    }
    memset(app, 0, sizeof *app);
    app->id = nt_strdup(ids);
    if (!opt_str(o, "key", ids, &app->key, why, whylen) ||
        !opt_str(o, "secret", ids, &app->secret, why, whylen) ||
        !opt_str(o, "jwt_secret", ids, &app->jwt_secret, why, whylen) ||
        !opt_str(o, "api_key", ids, &app->api_key, why, whylen) ||
        !opt_str(o, "webhook_url", ids, &app->webhook_url, why, whylen) ||
        !opt_bool(o, "enabled", ids, true, &app->enabled, why, whylen) ||
        !opt_bool(o, "client_events", ids, false, &app->client_events, why, whylen))
        return false;
    json_t *mc = json_object_get(o, "max_connections");
    if (mc && !json_is_null(mc)) {
        if (!json_is_integer(mc) || json_integer_value(mc) < 1)
            return fail(why, whylen, "app '%s': 'max_connections' must be a positive integer%s", ids, "");
        app->max_connections = json_integer_value(mc);
    }
    if (app->webhook_url && strncmp(app->webhook_url, "http://", 7) != 0 &&
        strncmp(app->webhook_url, "https://", 8) != 0)
        return fail(why, whylen, "app '%s': 'webhook_url' must be an http:// or https:// URL%s", ids, "");
    return true;
}

static void app_free(nt_app *a)
{
    nt_free(a->id);
    nt_free(a->key);
    nt_free(a->secret);
    nt_free(a->jwt_secret);
    nt_free(a->api_key);
    nt_free(a->webhook_url);
}

bool nt_apps_parse(const char *json, size_t len, nt_apps *out, char *why, size_t whylen)
{
    json_error_t je;
    memset(out, 0, sizeof *out);
    json_t *arr = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!arr) {
        snprintf(why, whylen, "not JSON: %s at line %d column %d", je.text, je.line, je.column);
        return false;
    }
    if (!json_is_array(arr) || json_array_size(arr) > APPS_MAX) {
        json_decref(arr);
        snprintf(why, whylen, "must be a JSON array of at most %d apps", APPS_MAX);
        return false;
    }
    out->v = nt_calloc(json_array_size(arr) + 1, sizeof *out->v);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        if (!parse_one(json_array_get(arr, i), i, &out->v[out->n], out, why, whylen)) {
            app_free(&out->v[out->n]);
            nt_apps_free(out);
            json_decref(arr);
            return false;
        }
        out->n++;
    }
    for (size_t i = 0; i < out->n; i++)
        for (size_t j = i + 1; j < out->n; j++)
            if (out->v[i].api_key && out->v[j].api_key && strcmp(out->v[i].api_key, out->v[j].api_key) == 0) {
                snprintf(why, whylen, "apps '%s' and '%s' have the same api_key", out->v[i].id, out->v[j].id);
                nt_apps_free(out);
                json_decref(arr);
                return false;
            }
    json_decref(arr);
    return true;
}

void nt_apps_load(nt_apps *out)
{
    char why[256];
    const char *v = nt_config_str("NATTER_APPS", "", "the apps (tenants) and their secrets");
    memset(out, 0, sizeof *out);
    if (!v[0])
        return;
    if (v[0] != '@') {
        if (!nt_apps_parse(v, strlen(v), out, why, sizeof why))
            nt_config_fatal("NATTER_APPS is invalid: %s", why);
        return;
    }
    FILE *f = fopen(v + 1, "rb");
    if (!f)
        nt_config_fatal("NATTER_APPS=%s: cannot read %s: %s", v, v + 1, strerror(errno));
    char *buf = nt_malloc(APPS_FILE_MAX + 1);
    size_t n = fread(buf, 1, APPS_FILE_MAX + 1, f);
    fclose(f);
    if (n > APPS_FILE_MAX)
        nt_config_fatal("NATTER_APPS=%s: the file is larger than %d bytes", v, APPS_FILE_MAX);
    bool ok = nt_apps_parse(buf, n, out, why, sizeof why);
    nt_free(buf);
    if (!ok)
        nt_config_fatal("NATTER_APPS=%s is invalid: %s", v, why);
}

const nt_app *nt_apps_find(const nt_apps *a, const char *id)
{
    for (size_t i = 0; a && i < a->n; i++)
        if (strcmp(a->v[i].id, id) == 0)
            return &a->v[i];
    return NULL;
}

const nt_app *nt_apps_by_api_key(const nt_apps *a, const char *key, size_t len)
{
    const nt_app *found = NULL;
    for (size_t i = 0; a && i < a->n; i++)      /* every one compared: no early exit */
        if (a->v[i].api_key && nt_consttime_eq(key, len, a->v[i].api_key, strlen(a->v[i].api_key)))
            found = &a->v[i];
    return found;
}

void nt_apps_free(nt_apps *a)
{
    for (size_t i = 0; i < a->n; i++)
        app_free(&a->v[i]);
    nt_free(a->v);
    memset(a, 0, sizeof *a);
}
