/* compat_lws.h: the gateway's use of libwebsockets beyond its documented contract — the
 * raw write path that sends frames the gateway framed itself, and the close frame
 * written without lws's close machinery. Checked against lws 4.1.6 (Debian bookworm's
 * libwebsockets 4.1.6-3): each function says what it relies on. */
#ifndef GW_COMPAT_LWS_H
#define GW_COMPAT_LWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lws;

/* The longest WebSocket frame header the gateway writes. */
#define GW_WS_HEADER_MAX 10

/* Writes the RFC 6455 header of an unmasked FIN text frame of `len` payload bytes into
 * h (at most GW_WS_HEADER_MAX bytes); returns its length. */
size_t gw_lws_text_header(unsigned char *h, size_t len);
/* Writes a ping frame with a one-byte payload into h (lws 4.1 does not report an
 * empty pong); returns its length (3). */
size_t gw_lws_ping_frame(unsigned char *h);
/* Sends buf[0..len) as it is on a WebSocket (frames already framed): lws_write with
 * LWS_WRITE_RAW skips lws's framing and buffers a partial send itself, writing the
 * rest before the next WRITEABLE. buf must have LWS_PRE bytes of headroom. Returns
 * false when lws failed or took less. */
bool gw_lws_write_raw(struct lws *wsi, unsigned char *buf, size_t len);
/* Writes the close frame (code, why: at most 64 bytes) with lws's private
 * LWS_WRITE_CLOSE (4): lws treats -1 from WRITEABLE (and a timeout) as a violent death
 * and skips the close frame lws_close_reason would queue. False when lws failed. */
bool gw_lws_write_close(struct lws *wsi, uint16_t code, const char *why);
/* True when lws still holds part of an earlier write for wsi. */
bool gw_lws_congested(struct lws *wsi);

#endif
