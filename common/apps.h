/* apps.h: the tenants (apps) of NATTER_APPS, each with its own secrets and switches:
 * a JSON array, or "@<path>" of a file holding one, of
 * {"id","key","secret","jwt_secret"?,"api_key"?,"enabled"?,"client_events"?,
 *  "webhook_url"?,"max_connections"?} (README lists what each key does and which
 * dialect uses it). An app that is not listed, or gives no jwt_secret / api_key, uses
 * NATTER_JWT_SECRET / NATTER_API_KEY as before. */
#ifndef NT_APPS_H
#define NT_APPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nt_app {
    char *id;                     /* [A-Za-z0-9_-]{1,64}, unique */
    char *key, *secret;           /* Pusher app key and secret; NULL when absent */
    char *jwt_secret;             /* HS256 secret of this app's tokens; NULL: NATTER_JWT_SECRET */
    char *api_key;                /* server API key reaching only this app; NULL: NATTER_API_KEY */
    char *webhook_url;            /* NULL when absent */
    bool enabled;                 /* default true: false refuses its tokens and keys */
    bool client_events;           /* default false (Pusher client events) */
    int64_t max_connections;      /* 0: no limit */
} nt_app;

typedef struct nt_apps {
    nt_app *v;
    size_t n;
} nt_apps;

/* Parses a JSON array of apps into out (empty on failure); false with why naming
 * the app and key that is wrong. */
bool nt_apps_parse(const char *json, size_t len, nt_apps *out, char *why, size_t whylen);
/* Reads NATTER_APPS (unset: no apps); a bad one is fatal with one line, exit 2. */
void nt_apps_load(nt_apps *out);
const nt_app *nt_apps_find(const nt_apps *a, const char *id);
/* The app whose api_key equals key (compared in constant time), or NULL. */
const nt_app *nt_apps_by_api_key(const nt_apps *a, const char *key, size_t len);
void nt_apps_free(nt_apps *a);

#endif
