/* log.c: JSON lines on stderr, each written with one write(2) of at most PIPE_BUF
 * bytes so concurrent lines never interleave, even through a pipe. */
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clock.h"
#include "utf8.h"

#define LOG_LINE_MAX PIPE_BUF
#define LOG_TAIL 3 /* room always kept for the closing "}\n */

static _Atomic int log_level = NT_LOG_INFO;
static char log_process[64] = "natter";

static const char *const level_names[] = { "debug", "info", "warn", "error" };

typedef struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
    bool full;          /* something did not fit and was dropped */
} line;

int nt_log_init(const char *process)
{
    snprintf(log_process, sizeof(log_process), "%s", process);
    const char *env = getenv("NATTER_LOG_LEVEL");
    if (env == NULL || env[0] == '\0')
        return 0;
    for (int i = NT_LOG_DEBUG; i <= NT_LOG_ERROR; i++) {
        if (strcasecmp(env, level_names[i]) == 0) {
            nt_log_set_level((nt_log_level)i);
            return 0;
        }
    }
    return -1;
}

const char *nt_log_process(void)
{
    return log_process;
}

void nt_log_set_level(nt_log_level level)
{
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

int nt_log_enabled(nt_log_level level)
{
    return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

/* Appends n bytes only when they fit whole, keeping LOG_TAIL spare. */
static bool line_put(line *l, const char *s, size_t n)
{
    if (l->full || n > sizeof(l->buf) - LOG_TAIL - l->len) {
        l->full = true;
        return false;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return true;
}

/* Appends s as JSON string content, one escape or whole UTF-8 character at a
 * time, so a truncated line is still valid JSON; invalid bytes become U+FFFD. */
static void line_put_escaped(line *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n && !l->full;) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            line_put(l, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            switch (c) {
            case '\n': line_put(l, "\\n", 2); break;
            case '\r': line_put(l, "\\r", 2); break;
            case '\t': line_put(l, "\\t", 2); break;
            default:
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                line_put(l, esc, 6);
            }
            i++;
        } else if (c < 0x80) {
            line_put(l, (const char *)&s[i], 1);
            i++;
        } else {
            size_t want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if (want <= n - i && nt_valid_utf8(s + i, want)) {
                line_put(l, s + i, want);
                i += want;
            } else {
                line_put(l, "\\ufffd", 6);
                i++;
            }
        }
    }
}

static void line_put_member(line *l, const char *key, const char *val, size_t vlen)
{
    size_t mark = l->len;
    line_put(l, ",\"", 2);
    line_put_escaped(l, key, strlen(key));
    line_put(l, "\":\"", 3);
    line_put_escaped(l, val, vlen);
    line_put(l, "\"", 1);
    if (l->full)
        l->len = mark; /* drop a member that does not fit whole */
}

/* Writes the line; extras is a va_list of key, value, …, NULL or NULL. */
static void log_emit(nt_log_level level, const char *msg, size_t msglen, va_list *extras)
{
    line l = { .len = 0, .full = false };
    char ts[32];
    nt_rfc3339_ms(nt_now_ms(), ts);
    int lv = (int)level < NT_LOG_DEBUG || (int)level > NT_LOG_ERROR ? NT_LOG_ERROR : (int)level;

    line_put(&l, "{\"ts\":\"", 7);
    line_put(&l, ts, strlen(ts));
    line_put(&l, "\",\"level\":\"", 11);
    line_put(&l, level_names[lv], strlen(level_names[lv]));
    line_put(&l, "\",\"proc\":\"", 10);
    line_put_escaped(&l, log_process, strlen(log_process));
    line_put(&l, "\",\"msg\":\"", 9);
    line_put_escaped(&l, msg, msglen);
    l.full = false; /* the closing quote has its reserved room */
    l.buf[l.len++] = '"';
    while (extras != NULL) {
        const char *key = va_arg(*extras, const char *);
        if (key == NULL)
            break;
        const char *val = va_arg(*extras, const char *);
        if (val == NULL)
            val = "";
        line_put_member(&l, key, val, strlen(val));
    }
    l.buf[l.len++] = '}';
    l.buf[l.len++] = '\n';

    ssize_t n;
    do
        n = write(STDERR_FILENO, l.buf, l.len);
    while (n < 0 && errno == EINTR);
}

void nt_log(nt_log_level level, const char *fmt, ...)
{
    if (!nt_log_enabled(level))
        return;
    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    size_t len = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
    log_emit(level, msg, len, NULL);
}

void nt_logkv(nt_log_level level, const char *msg, ...)
{
    if (!nt_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, msg);
    log_emit(level, msg, strlen(msg), &ap);
    va_end(ap);
}

bool nt_log_limit_due(nt_log_limit *l, uint64_t now_ms, uint64_t interval_ms, uint64_t *events)
{
    l->unlogged++;
    if (l->logged && now_ms - l->last_ms < interval_ms)
        return false;
    *events = l->unlogged;
    l->logged = true;
    l->last_ms = now_ms;
    l->unlogged = 0;
    return true;
}
