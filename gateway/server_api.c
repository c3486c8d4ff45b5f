/* server_api.c: the application backend's API. Not implemented yet: a disconnect
 * envelope is ignored until POST /api/server/users/{id}/disconnect exists. */
#include "server_api.h"

void gw_server_api_disconnect(gw_user *u, const nt_envr *r)
{
    (void)u;
    (void)r;
}
