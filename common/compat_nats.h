/* compat_nats.h: natter's use of cnats beyond its public API — the message filter that
 * runs on the parsing thread. Checked against cnats 3.4.1 (Debian bookworm's
 * libnats3.4 3.4.1-1): the function says what it relies on. */
#ifndef NT_COMPAT_NATS_H
#define NT_COMPAT_NATS_H

#include <stdbool.h>
#include <nats/nats.h>

/* Called by cnats for every message it parsed, on the thread that parsed it, before
 * the subscription lookup; setting *msg to NULL takes the message (the filter then
 * owns it), leaving it lets cnats deliver it as usual. */
typedef void (*nt_nats_filter_fn)(natsConnection *nc, natsMsg **msg, void *closure);

/* Installs f on nc through natsConn_setFilterWithClosure, which cnats 3.4 exports but
 * does not declare in its public headers (its own streaming client uses it). Looked up
 * at run time (dlsym), so a libnats without it still links and runs: false then, and
 * nothing is installed. */
bool nt_nats_set_filter(natsConnection *nc, nt_nats_filter_fn f, void *closure);

#endif
