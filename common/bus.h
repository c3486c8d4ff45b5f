/* bus.h: the NATS bridge. cnats reads its socket through its libuv adapter; its
 * delivery threads only push onto one bounded MPSC queue and wake the loop
 * (uv_async_t), or, with loop_delivery, the loop takes messages as cnats parses
 * them; every callback below runs on the loop thread. */
#ifndef NT_BUS_H
#define NT_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <nats/nats.h>
#include "status.h"

typedef struct nt_bus nt_bus;
typedef struct nt_bus_sub nt_bus_sub;

typedef struct nt_bus_msg {
    const char *subject;
    const char *reply;      /* NULL when none */
    const char *data;       /* valid only during the callback */
    size_t len;
    natsMsg *raw;           /* headers, JetStream metadata; owned by the bus */
} nt_bus_msg;

/* Delivered on the loop thread, never after nt_bus_unsubscribe returned. */
typedef void (*nt_bus_msg_cb)(nt_bus *bus, const nt_bus_msg *msg, void *arg);
/* Reply to nt_bus_request: st is NT_OK with msg, NT_ETIMEDOUT, or NT_EUNAVAIL
 * ("no responders") with msg == NULL. Called exactly once unless cancelled. */
typedef void (*nt_bus_reply_cb)(nt_bus *bus, nt_status st, const nt_bus_msg *msg, void *arg);
/* Work posted to the loop thread with nt_bus_post. */
typedef void (*nt_bus_post_fn)(void *arg);

typedef struct nt_bus_opts {
    const char *url;              /* NATTER_NATS_URL */
    const char *name;             /* connection name shown by the server */
    size_t queue_capacity;        /* MPSC bound (NATTER_BUS_QUEUE, default 65536) */
    int sub_pending_msgs;         /* cnats pending limit per subscription (default 65536) */
    size_t max_requests;          /* bound of the in-flight request table (default 65536) */
    bool loop_delivery;           /* run callbacks of exact-subject subscriptions and of
                                     requests where cnats parses, on the loop thread, not
                                     through its delivery thread (bus.c); then at most one
                                     subscription per exact subject */
} nt_bus_opts;

/* Connects (blocking: call before uv_run, on the loop thread). On failure returns
 * NT_ECONN and writes the reason into err. */
nt_status nt_bus_create(uv_loop_t *loop, const nt_bus_opts *opts, nt_bus **out,
                        char *err, size_t errlen);
/* Credentials and TLS, for nt_bus_create and nt_bus_connect_plain alike, come from
 * the environment (README's table): NATTER_NATS_USER + NATTER_NATS_PASSWORD, or
 * NATTER_NATS_TOKEN, NATTER_NATS_NKEY_SEED_FILE, NATTER_NATS_CREDS_FILE, or user
 * info in the URL — one of them; NATTER_NATS_TLS_CA, NATTER_NATS_TLS_CERT +
 * NATTER_NATS_TLS_KEY. A bad combination or an unreadable file ends the process
 * (exit 2, config.h); a refused login is NT_ECONN with "authorization violation"
 * and the settings to check in err. err never holds the URL or a secret. Later, a
 * connection that cnats closes for good (the credentials refused twice on a
 * reconnect) ends the process the same way: one line, exit 2, to be started again. */

/* A plain blocking connection with the bus's credentials and TLS but no event loop
 * and no reconnects, for short start-up work before the loop runs (the persister
 * sets up its JetStream stream with it). The caller destroys *out. On failure
 * returns NT_ECONN and writes the reason into err. */
nt_status nt_bus_connect_plain(const char *url, const char *name, natsConnection **out,
                               char *err, size_t errlen);
/* Closes the connection and frees everything; pending request callbacks are not
 * called. Process exit only: it waits for cnats's own threads (nats_CloseAndWait),
 * so every thread of ours using nt_bus_conn must have stopped. Run the loop
 * afterwards until its handles are closed. */
void nt_bus_destroy(nt_bus *bus);

bool nt_bus_connected(nt_bus *bus);
/* Times the connection came back after a loss (any thread). */
uint64_t nt_bus_reconnects(nt_bus *bus);
/* The underlying connection, for what cnats reports of it (the server's max payload). */
natsConnection *nt_bus_conn(nt_bus *bus);

/* Publishes (buffered, non-blocking). reply may be NULL. */
nt_status nt_bus_publish(nt_bus *bus, const char *subject, const char *reply,
                         const void *data, size_t len);

/* Subscribes `subject` (queue group may be NULL). Returns NULL on failure, and with
 * loop_delivery when the exact subject is already subscribed on this bus. */
nt_bus_sub *nt_bus_subscribe(nt_bus *bus, const char *subject, const char *queue,
                             nt_bus_msg_cb cb, void *arg);
/* Stops delivery at once (no callback after return); storage freed later. NULL is fine. */
void nt_bus_unsubscribe(nt_bus_sub *sub);

/* Request/reply through the bus's own inbox subscription (never blocks).
 * `msgid`, when not NULL, is sent as the Nats-Msg-Id header (JetStream publish;
 * the reply is then the PubAck JSON). NT_EFULL when the request table is full. */
nt_status nt_bus_request(nt_bus *bus, const char *subject, const char *msgid,
                         const void *data, size_t len, int timeout_ms,
                         nt_bus_reply_cb cb, void *arg, uint64_t *id_out);
/* A round trip to the server and back through the bus's inbox: cb gets NT_OK once
 * every subscription and publish made on this bus before the call is in effect at
 * the server (a non-blocking natsConnection_Flush); NT_ETIMEDOUT otherwise. The id
 * works with nt_bus_request_cancel. */
nt_status nt_bus_barrier(nt_bus *bus, int timeout_ms, nt_bus_reply_cb cb, void *arg,
                         uint64_t *id_out);
/* Forgets a request: its callback will not be called. Unknown ids are ignored. */
void nt_bus_request_cancel(nt_bus *bus, uint64_t id);

/* Runs fn(arg) on the loop thread soon. Callable from any thread. NT_EFULL when
 * the queue is full (fn will not run; the caller still owns arg). */
nt_status nt_bus_post(nt_bus *bus, nt_bus_post_fn fn, void *arg);
/* Destroys a cnats message the loop is done with, later and in a batch, on the bus's
 * reaper thread (see bus.c). Loop thread only; NULL is ignored. */
void nt_bus_free_msg(nt_bus *bus, natsMsg *msg);

/* Counters for /metrics. */
uint64_t nt_bus_dropped(nt_bus *bus);     /* messages dropped because the queue was full */
size_t nt_bus_queue_depth(nt_bus *bus);
uint64_t nt_bus_loop_delivered(nt_bus *bus); /* messages handled where cnats parsed them */
/* Registers them as <prefix>_nats_dropped_total, <prefix>_nats_queue_depth and, for a
 * bus with loop_delivery, <prefix>_nats_loop_delivered_total (0 while cnats's filter
 * is missing and the delivery thread is used). Loop thread, once per bus. */
void nt_bus_register_metrics(nt_bus *bus, const char *prefix);

#endif
