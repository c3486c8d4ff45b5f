/* status.h: one status enum for all of natter, generated from one X-macro list. */
#ifndef NT_STATUS_H
#define NT_STATUS_H

#define NT_STATUS_MAP(X)                                               \
    X(OK, "ok")                                                        \
    X(ENOMEM, "out of memory")                                         \
    X(EINVAL, "invalid argument")                                      \
    X(EFULL, "queue full")                                             \
    X(EEMPTY, "queue empty")                                           \
    X(ENOTFOUND, "not found")                                          \
    X(ETIMEDOUT, "timed out")                                          \
    X(ECONN, "connection failed")                                      \
    X(EPROTO, "protocol error")                                        \
    X(ETOOBIG, "too large")                                            \
    X(EAUTH, "unauthorized")                                           \
    X(EFORBIDDEN, "forbidden")                                         \
    X(EUNAVAIL, "unavailable")                                         \
    X(ECLOSED, "closed")                                               \
    X(EIO, "i/o error")

typedef enum {
#define NT_STATUS_ENUM(name, text) NT_##name,
    NT_STATUS_MAP(NT_STATUS_ENUM)
#undef NT_STATUS_ENUM
    NT_STATUS_COUNT
} nt_status;

/* Human text for a status; never NULL. */
const char *nt_status_text(nt_status st);
/* Short identifier, e.g. "ETIMEDOUT"; never NULL. */
const char *nt_status_name(nt_status st);

#endif
