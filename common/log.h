/* log.h: JSON logging to stderr, one object per line, level from NATTER_LOG_LEVEL. */
#ifndef NT_LOG_H
#define NT_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { NT_LOG_DEBUG, NT_LOG_INFO, NT_LOG_WARN, NT_LOG_ERROR } nt_log_level;

/* Sets the process name written in every line and reads NATTER_LOG_LEVEL
 * (debug|info|warn|error, default info). Returns 0, or -1 for a bad level. */
int nt_log_init(const char *process);
void nt_log_set_level(nt_log_level level);
int nt_log_enabled(nt_log_level level);

/* Writes {"ts":"…","level":"…","proc":"…","msg":"<formatted>"} plus optional
 * extra JSON members given as alternating key, value C strings ending in NULL
 * via nt_logkv. Thread-safe (one write(2) per line). */
void nt_log(nt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like nt_log with a plain message, then `key, value, …, NULL` C strings written
 * as extra string members: nt_logkv(NT_LOG_INFO, "closed", "conn", id, NULL). */
void nt_logkv(nt_log_level level, const char *msg, ...) __attribute__((sentinel));

/* A warning that may fire per event, logged at most once per interval with the
 * number of events since the last line. Zero-initialise; one owner thread. */
typedef struct nt_log_limit {
    uint64_t last_ms;     /* when the last line was allowed */
    uint64_t unlogged;    /* events since */
    bool logged;          /* a line was allowed before */
} nt_log_limit;

/* Counts one event at now_ms. True when a line is due (the first event, or
 * interval_ms since the last line): *events is then the count it covers and the
 * count starts again. */
bool nt_log_limit_due(nt_log_limit *l, uint64_t now_ms, uint64_t interval_ms, uint64_t *events);

/* The process name given to nt_log_init ("natter" before it). */
const char *nt_log_process(void);

#define nt_debug(...) do { if (nt_log_enabled(NT_LOG_DEBUG)) nt_log(NT_LOG_DEBUG, __VA_ARGS__); } while (0)
#define nt_info(...) nt_log(NT_LOG_INFO, __VA_ARGS__)
#define nt_warn(...) nt_log(NT_LOG_WARN, __VA_ARGS__)
#define nt_error(...) nt_log(NT_LOG_ERROR, __VA_ARGS__)

#endif
