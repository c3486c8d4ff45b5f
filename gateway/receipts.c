/* receipts.c: read and delivered marks. Not implemented yet: each action is refused
 * with a clear error until the persister side exists. */
#include "receipts.h"

#include "actions.h"

void gw_receipts_read(gw_conn *c, const gw_frame *f)
{
    gw_conn_send_error(c, f->ref, GW_E_BAD_REQUEST, "read is not implemented yet");
}

void gw_receipts_delivered(gw_conn *c, const gw_frame *f)
{
    gw_conn_send_error(c, f->ref, GW_E_BAD_REQUEST, "delivered is not implemented yet");
}
