/* rpc.h: the reply envelope of natter's request subjects, written and read in one place. */
#ifndef NT_RPC_H
#define NT_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "envelope.h"
#include "status.h"

/* A reply is one envelope (docs/internals.md): {ok:true, ...fields of the subject},
 * often {ok:true, json:<pre-rendered JSON text>}, or a refusal {ok:false, code,
 * message, retry_after_ms?} with code an error code of docs/protocol.md and retry_after_ms
 * only when positive (a rate_limited refusal: when to retry). */

/* Writers: each nt_envw_init's w and writes the fields named; the caller may add the
 * subject's own fields, then nt_envw_finish, and always nt_envw_free (or nt_rpc_send). */
/* {ok:true} */
void nt_rpc_ok_init(nt_envw *w);
/* {ok:true, json}; json == NULL writes json:nil (a renderer that failed). */
void nt_rpc_ok_json_init(nt_envw *w, const char *json, size_t len);
/* {ok:false, code, message[, retry_after_ms when > 0]}; a NULL code or message is
 * written as nil, which nt_rpc_parse refuses for code: give one. */
void nt_rpc_error_init(nt_envw *w, const char *code, const char *message,
                       int64_t retry_after_ms);

/* Finishes w, publishes it to `reply` and frees w (always, also on failure). A NULL
 * reply (a request without a reply subject) publishes nothing and is NT_OK.
 * Otherwise nt_bus_publish's status. */
nt_status nt_rpc_send(nt_bus *bus, const char *reply, nt_envw *w);
/* nt_rpc_send of nt_rpc_ok_init, nt_rpc_ok_json_init, nt_rpc_error_init. */
nt_status nt_rpc_reply_ok(nt_bus *bus, const char *reply);
nt_status nt_rpc_reply_json(nt_bus *bus, const char *reply, const char *json, size_t len);
nt_status nt_rpc_reply_error(nt_bus *bus, const char *reply, const char *code,
                             const char *message, int64_t retry_after_ms);

/* A reply as read. Strings point into the parsed bytes (which must outlive it) and
 * are not NUL-terminated. */
typedef struct nt_rpc_result {
    bool ok;
    const char *code;             /* refusal code; NULL when ok */
    size_t code_len;
    const char *message;          /* refusal text; NULL when ok or when none was given */
    size_t message_len;
    const char *json;             /* NULL when absent or nil */
    size_t json_len;
    int64_t retry_after_ms;       /* 0 when absent */
    nt_envr env;                  /* the whole envelope, for the subject's own fields */
} nt_rpc_result;

/* Parses data[0..len) into out. NT_OK for a well-formed reply, a refusal included
 * (out->ok false). NT_EPROTO for a malformed one, with the reason in why: not an
 * envelope, no boolean "ok", a refusal without a string "code", or a "message",
 * "json" or "retry_after_ms" of the wrong type. Call nt_rpc_result_free afterwards
 * whatever the result. */
nt_status nt_rpc_parse(nt_rpc_result *out, const char *data, size_t len, char *why,
                       size_t whylen);
/* nt_rpc_parse of a reply callback's result (nt_bus_reply_cb): a status other than
 * NT_OK (NT_ETIMEDOUT, NT_EUNAVAIL: no responders) is returned as is, with why
 * "timed out" or "no responders"; then nt_rpc_parse of msg. Free as above. */
nt_status nt_rpc_parse_msg(nt_rpc_result *out, nt_status st, const nt_bus_msg *msg,
                           char *why, size_t whylen);
/* True when the parsed refusal's code (or message) is exactly `s`; false when ok. */
bool nt_rpc_code_is(const nt_rpc_result *r, const char *s);
bool nt_rpc_message_is(const nt_rpc_result *r, const char *s);
/* Frees what nt_rpc_parse kept; out is zeroed. Safe on a zeroed or failed reply. */
void nt_rpc_result_free(nt_rpc_result *r);

#endif
