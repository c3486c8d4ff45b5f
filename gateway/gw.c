/* gw.c: the gateway's context (configuration, shared handles) and its metrics. */
#include "gw.h"

#include "alloc.h"

gw_ctx *gw;

gw_ctx *gw_ctx_create(void)
{
    gw_ctx *ctx = nt_calloc(1, sizeof *ctx);
    gw = ctx;
    return ctx;
}

void gw_ctx_destroy(gw_ctx *ctx)
{
    if (!ctx)
        return;
    if (gw == ctx)
        gw = NULL;
    nt_apps_free(&ctx->cfg.apps);   /* NATTER_APPS, read into it by main.c */
    nt_free(ctx);
}

void gw_metrics_register(gw_ctx *ctx)
{
    gw_metrics *m = &ctx->m;
    m->connections = nt_metric_gauge("natter_gateway_connections", "Open WebSocket connections");
    m->frames_in = nt_metric_counter("natter_gateway_frames_in_total", "Client frames received");
    m->frames_out = nt_metric_counter("natter_gateway_frames_out_total", "Frames written to clients");
    m->writes = nt_metric_counter("natter_gateway_writes_total",
                                  "Writes (send calls) carrying frames to clients: frames_out / writes = frames per system call");
    m->messages_sent = nt_metric_counter("natter_gateway_messages_sent_total", "send_message published to the store");
    m->acks = nt_metric_counter("natter_gateway_acks_total", "send_message acks delivered");
    m->sends_inflight = nt_metric_gauge("natter_gateway_sends_inflight",
                                        "Sends awaiting their ack, all connections");
    m->sends_shed = nt_metric_counter("natter_gateway_sends_shed_total",
                                      "Sends refused over NATTER_MAX_INFLIGHT_SENDS (store behind)");
    m->ack_ms_sum = nt_metric_counter("natter_gateway_ack_latency_ms_total",
                                      "Sum over acked sends of frame received to ack queued, ms");
    m->slow_closed = nt_metric_counter("natter_gateway_slow_consumers_closed_total", "Connections closed for a full send queue");
    m->ping_closed = nt_metric_counter("natter_gateway_ping_timeouts_total", "Connections closed for answering no ping");
    m->refused = nt_metric_counter("natter_gateway_refused_total", "Upgrades refused (connection limit or stopping)");
    m->room_subjects = nt_metric_gauge("natter_gateway_room_subjects", "Room subjects subscribed on NATS");
    m->user_subjects = nt_metric_gauge("natter_gateway_user_subjects", "User subjects subscribed on NATS");
    m->bytes_queued = nt_metric_gauge("natter_gateway_bytes_queued", "Bytes waiting in all send queues");
    m->http_requests = nt_metric_counter("natter_gateway_http_requests_total", "HTTP requests");
}

