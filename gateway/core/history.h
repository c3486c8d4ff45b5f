/* history.h: the history command of a connection (natter.rpc.persist.history). */
#ifndef GW_HISTORY_H
#define GW_HISTORY_H

#include <jansson.h>
#include "command.h"
#include "conn.h"

/* Answers ref with a page of room's messages (the persister checks access). */
void gw_history_fetch(gw_conn *c, const json_t *ref, const char *room, const gw_history_req *h);

#endif
