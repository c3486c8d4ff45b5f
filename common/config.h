/* config.h: settings from NATTER_* environment variables; a bad or missing one is fatal (exit 2). */
#ifndef NT_CONFIG_H
#define NT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define NT_EXIT_CONFIG 2

/* Returns the value of env var `name`, or `def` when unset or empty.
 * With def == NULL the setting is required: prints one line
 * "natter-<proc>: missing required setting NAME (what it is)" to stderr and exits 2. */
const char *nt_config_str(const char *name, const char *def, const char *what);

/* Integer setting in [min, max]; unset -> def. A non-integer or out-of-range
 * value prints "natter-<proc>: NAME=<v> is invalid: expected an integer in [min, max]"
 * and exits 2. */
int64_t nt_config_int(const char *name, int64_t def, int64_t min, int64_t max);

/* Boolean: 1/true/yes/on or 0/false/no/off; anything else is fatal as above. */
int nt_config_bool(const char *name, int def);

/* Prints "natter-<proc>: <formatted message>" to stderr and exits 2. For a
 * dependency unreachable at start, e.g. nt_config_fatal("cannot reach NATS at %s (NATTER_NATS_URL): %s", …). */
void nt_config_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A URL (or comma-separated URLs) fit for logs and errors: the password of any user
 * info ("scheme://user:secret@host") becomes "***", and so does user info without
 * a colon (a token: "scheme://secret@host"). Writes into buf (truncated to len)
 * and returns it. */
const char *nt_config_redact_url(const char *url, char *buf, size_t len);

/* Splits "host:port" (host may be empty or "*" for all interfaces). Returns 0 or -1. */
int nt_config_split_hostport(const char *s, char *host, unsigned hostlen, int *port);

#endif
