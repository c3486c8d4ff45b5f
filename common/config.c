/* config.c: NATTER_* settings from the environment; a bad one ends the process with exit 2. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

void nt_config_fatal(const char *fmt, ...)
{
    const char *proc = nt_log_process();
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s%s: ",
                     strncmp(proc, "natter", 6) == 0 ? "" : "natter-", proc);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w;
    do
        w = write(STDERR_FILENO, line, len);
    while (w < 0 && errno == EINTR);
    exit(NT_EXIT_CONFIG);
}

const char *nt_config_str(const char *name, const char *def, const char *what)
{
    const char *v = getenv(name);
    if (v != NULL && v[0] != '\0')
        return v;
    if (def != NULL)
        return def;
    if (what != NULL)
        nt_config_fatal("missing required setting %s (%s)", name, what);
    nt_config_fatal("missing required setting %s", name);
}

int64_t nt_config_int(const char *name, int64_t def, int64_t min, int64_t max)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return def;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    bool ok = errno == 0 && end != v && *end == '\0' && v[0] != ' ' && v[0] != '\t' &&
              x >= min && x <= max;
    if (!ok)
        nt_config_fatal("%s=%s is invalid: expected an integer in [%lld, %lld]", name, v,
                        (long long)min, (long long)max);
    return x;
}

int nt_config_bool(const char *name, int def)
{
    static const char *const yes[] = { "1", "true", "yes", "on" };
    static const char *const no[] = { "0", "false", "no", "off" };
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return def;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    }
    nt_config_fatal("%s=%s is invalid: expected a boolean (1/true/yes/on or 0/false/no/off)",
                    name, v);
}

static size_t put(char *buf, size_t len, size_t at, const char *s, size_t n)
{
    while (n-- > 0 && at + 1 < len)
        buf[at++] = *s++;
    return at;
}

const char *nt_config_redact_url(const char *url, char *buf, size_t len)
{
    size_t at = 0;
    const char *p = url;

    if (len == 0)
        return buf;
    for (const char *sep; (sep = strstr(p, "://")) != NULL;) {
        at = put(buf, len, at, p, (size_t)(sep + 3 - p));
        p = sep + 3;
        size_t authority = strcspn(p, "/,?#");
        const char *userinfo_end = NULL;
        for (const char *q = p; q < p + authority; q++)
            if (*q == '@')
                userinfo_end = q;           /* the last '@': a password may hold one */
        if (userinfo_end) {
            const char *colon = memchr(p, ':', (size_t)(userinfo_end - p));
            if (colon)
                at = put(buf, len, at, p, (size_t)(colon + 1 - p));
            at = put(buf, len, at, "***", 3);
            p = userinfo_end;
        }
    }
    at = put(buf, len, at, p, strlen(p));
    buf[at] = '\0';
    return buf;
}

int nt_config_split_hostport(const char *s, char *host, unsigned hostlen, int *port)
{
    if (s == NULL || hostlen == 0)
        return -1;
    const char *colon = strrchr(s, ':');
    if (colon == NULL)
        return -1;
    const char *h = s;
    size_t hlen = (size_t)(colon - s);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    } else if (memchr(h, ':', hlen) != NULL) {
        return -1; /* a bare IPv6 address needs brackets */
    }
    if (hlen >= hostlen)
        return -1;
    const char *p = colon + 1;
    if (*p < '0' || *p > '9')
        return -1;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > 65535)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)v;
    return 0;
}
