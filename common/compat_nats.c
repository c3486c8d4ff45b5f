/* compat_nats.c: cnats's private filter symbol, looked up once per call site. */
#include "compat_nats.h"

#include <dlfcn.h>

typedef void (*set_filter_fn)(natsConnection *nc, nt_nats_filter_fn f, void *closure);

bool nt_nats_set_filter(natsConnection *nc, nt_nats_filter_fn f, void *closure)
{
    set_filter_fn set_filter;
    *(void **)&set_filter = dlsym(RTLD_DEFAULT, "natsConn_setFilterWithClosure");
    if (!set_filter)
        return false;
    set_filter(nc, f, closure);
    return true;
}
