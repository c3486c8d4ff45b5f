/* compat_lws.c: the raw write path and the close frame (compat_lws.h: lws 4.1.6). */
#include "compat_lws.h"

#include <libwebsockets.h>
#include <string.h>

#define GW_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)

size_t gw_lws_text_header(unsigned char *h, size_t len)
{
    h[0] = 0x81;
    if (len < 126) {
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

size_t gw_lws_ping_frame(unsigned char *h)
{
    h[0] = 0x89;
    h[1] = 1;
    h[2] = 'k';
    return 3;
}

bool gw_lws_write_raw(struct lws *wsi, unsigned char *buf, size_t len)
{
    return lws_write(wsi, buf, len, LWS_WRITE_RAW) >= (int)len;
}

bool gw_lws_write_close(struct lws *wsi, uint16_t code, const char *why)
{
    unsigned char frame[LWS_PRE + 2 + 64];
    size_t wl = strnlen(why, 64);
    frame[LWS_PRE] = (unsigned char)(code >> 8);
    frame[LWS_PRE + 1] = (unsigned char)(code & 0xff);
    memcpy(frame + LWS_PRE + 2, why, wl);
    return lws_write(wsi, frame + LWS_PRE, 2 + wl, GW_LWS_WRITE_CLOSE) >= 0;
}

bool gw_lws_congested(struct lws *wsi)
{
    return lws_partial_buffered(wsi) != 0;
}
