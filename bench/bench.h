/* bench.h: shared types of natter-bench (connections, threads, dialects, options). */
#ifndef NB_BENCH_H
#define NB_BENCH_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"

#define NB_MAX_URLS 64
#define NB_OUT_LIMIT (1u << 20)     /* a connection with more unsent bytes skips its sends */

typedef enum nb_state {
    NB_IDLE,          /* not opened yet */
    NB_CONNECTING,    /* TCP connect in progress */
    NB_UPGRADING,     /* HTTP upgrade sent, waiting for 101 */
    NB_OPEN,          /* WebSocket open, dialect handshake running */
    NB_READY,         /* authenticated and subscribed */
    NB_CLOSED
} nb_state;

struct nb_thread;

typedef struct nb_conn {
    int fd;
    uint32_t id;                  /* global index 0..conns-1 */
    uint8_t state;                /* nb_state */
    uint8_t epollout;             /* EPOLLOUT currently requested */
    uint8_t frag_op;              /* opcode of a fragmented message in progress */
    uint8_t closing;              /* close frame sent */
    uint8_t dead;                 /* write failed: close at the next safe point */
    uint32_t pending;             /* dialect: subscriptions or handshake steps awaited */
    uint32_t url;                 /* index into opts.urls */
    struct nb_thread *th;
    char *in; size_t in_len, in_cap;        /* unparsed input (partial frame) */
    char *frag; size_t frag_len;            /* fragmented message payload */
    char *out; size_t out_off, out_len, out_cap;  /* unsent output */
    char *stream; size_t stream_len;        /* natsws: unparsed NATS protocol bytes */
    uint64_t sent;                /* messages this connection sent */
} nb_conn;

typedef struct nb_dialect {
    const char *name;
    /* Writes the HTTP request path (with query) for connection c. */
    void (*path)(nb_conn *c, char *buf, size_t cap);
    /* The WebSocket is open. */
    void (*on_open)(nb_conn *c);
    /* One complete WebSocket data message (text or binary). */
    void (*on_message)(nb_conn *c, const char *p, size_t n);
    /* Queues one chat message stamped with send time ts (CLOCK_MONOTONIC ns). */
    void (*send_msg)(nb_conn *c, int64_t ts);
} nb_dialect;

extern const nb_dialect nb_dialect_natter, nb_dialect_socketio, nb_dialect_natsws;

typedef struct nb_url {
    char host[64];
    int port;
    struct sockaddr_in addr;
} nb_url;

typedef struct nb_opts {
    const nb_dialect *dialect;
    nb_url urls[NB_MAX_URLS];
    int nurls;
    int conns, rooms, senders, threads;
    int shared_room;              /* also subscribe every connection to room "shared" */
    double rate;                  /* messages per second, all senders together */
    double duration, warmup, drain, ready_timeout;
    int msg_size;
    const char *secret, *app, *room_prefix, *shared_name, *ready_file, *json_file;
    uint32_t source_base;         /* host order; 0 = do not bind */
    int source_count;             /* distinct source addresses */
    int connect_concurrency;      /* handshakes in flight per process */
    double connect_rate;          /* new connections per second, 0 = unlimited */
    char *pid_names[64];
    int pids[64];
    int npids;
    int no_syscalls;              /* --no-syscalls: do not count the --pid processes' system calls */
} nb_opts;

/* Phases, set by the main thread, read by the workers. */
enum { NB_PH_CONNECT, NB_PH_WARMUP, NB_PH_MEASURE, NB_PH_DRAIN, NB_PH_STOP };

typedef struct nb_counters {
    uint64_t sent_window, sent_total, send_skipped, send_behind;
    uint64_t deliveries_window, deliveries_total, acks_window, errors;
    uint64_t connect_failures, disconnects, bytes_in, bytes_out;
    uint64_t pings, protocol_errors;
    uint64_t acks_total;          /* natter: send acks in every phase (exactly-once checks) */
    uint64_t send_errors;         /* natter: error events answering a send (numeric ref) */
} nb_counters;

typedef struct nb_thread {
    int index;
    int ep;                       /* epoll fd */
    nb_conn *conns;               /* this thread's connections */
    int nconns;
    int next_open;                /* next connection to open */
    int handshaking;              /* opened, not yet ready */
    int *senders; int nsenders;   /* indices into conns */
    int next_sender;
    char *scratch;                /* read buffer */
    uint64_t rng;
    nb_hist lat;                  /* send -> delivery, measure window */
    nb_hist ack;                  /* send -> ack (natter), measure window */
    nb_hist *lat_sec;             /* send -> delivery per second of the window (nb_nsec) */
    nb_counters n;
    _Atomic int ready, closed, opened;
    _Atomic int64_t first_ready_ns, last_ready_ns;
    char *errbuf;                 /* first protocol error seen */
} nb_thread;

extern nb_opts nb_o;
extern _Atomic int nb_phase;
extern _Atomic int64_t nb_measure_ns; /* start of the measure window */
extern int nb_nsec;                   /* seconds in lat_sec */
extern char **nb_tokens;          /* natter: one JWT per connection */

/* ws.c */
int64_t nb_now(void);
void nb_thread_run(nb_thread *t);
void nb_send_text(nb_conn *c, const char *p, size_t n);
void nb_conn_ready(nb_conn *c);
void nb_record_delivery(nb_conn *c, int64_t ts);
void nb_record_ack(nb_conn *c, int64_t ts);
void nb_protocol_error(nb_conn *c, const char *what, const char *p, size_t n);
const char *nb_room_name(int room, char *buf, size_t cap);
int nb_room_of(const nb_conn *c);
size_t nb_fill_payload(char *buf, size_t cap, int64_t ts);
int64_t nb_parse_ts(const char *p, const char *end);

#endif
