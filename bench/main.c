/* main.c: natter-bench options, the run's phases, server /proc sampling and the JSON result. */
#include "bench.h"
#include "jwt.h"
#include "syscount.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

nb_opts nb_o;
_Atomic int nb_phase = NB_PH_CONNECT;
_Atomic int64_t nb_measure_ns;
int nb_nsec;
char **nb_tokens;

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static void usage(FILE *f)
{
    fputs("usage: natter-bench --dialect natter|socketio|natsws --url host:port[,host:port…] [options]\n"
          "  --conns N          connections (default 10)\n"
          "  --rooms R          connection i joins room i %% R (default 1)\n"
          "  --shared           every connection also joins one shared room\n"
          "  --senders S        the first S connections send to their room (default 1)\n"
          "  --rate R           messages/s, all senders together (default 0: idle)\n"
          "  --duration S       measured seconds (default 5; with --rate 0: hold time)\n"
          "  --warmup S         seconds of sending before measuring (default 1)\n"
          "  --drain S          seconds after the window before closing (default 1)\n"
          "  --msg-size B       message body bytes (default 64)\n"
          "  --secret K         natter: HS256 secret to mint one token per connection\n"
          "  --app A            natter: app claim (default \"default\")\n"
          "  --room-prefix P    room names P0, P1, … and P-shared (default \"b\")\n"
          "  --shared-name N    the shared room is N (implies --shared; one room across processes)\n"
          "  --source-base IP   bind sources to IP+0 … IP+count-1 (default 127.0.1.1; \"none\": no bind)\n"
          "  --source-count N   distinct source addresses (default 4096)\n"
          "  --threads T        epoll threads (default 1)\n"
          "  --connect-concurrency N  handshakes in flight (default 256)\n"
          "  --connect-rate N   new connections per second (default 0: unlimited)\n"
          "  --ready-timeout S  give up waiting for all connections after S seconds (default 60)\n"
          "  --ready-file F     touch F once every connection is ready\n"
          "  --pid NAME=PID     a server process to sample (CPU and system calls over the window, RSS); repeatable\n"
          "  --no-syscalls      do not count the --pid processes' system calls (counting slows each call a little)\n"
          "  --json F           also write the result object to F\n"
          "The result is one JSON object on stdout. SIGINT/SIGTERM end the run early (still reported).\n", f);
}

static int parse_urls(const char *s)
{
    char *dup = strdup(s), *save = NULL;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (nb_o.nurls == NB_MAX_URLS) break;
        nb_url *u = &nb_o.urls[nb_o.nurls];
        if (strncmp(tok, "ws://", 5) == 0) tok += 5;
        char *colon = strrchr(tok, ':');
        if (!colon) { free(dup); return -1; }
        *colon = 0;
        snprintf(u->host, sizeof u->host, "%s", strcmp(tok, "localhost") == 0 ? "127.0.0.1" : tok);
        char *slash = strchr(colon + 1, '/');
        if (slash) *slash = 0;
        u->port = atoi(colon + 1);
        u->addr.sin_family = AF_INET;
        u->addr.sin_port = htons((uint16_t)u->port);
        if (inet_pton(AF_INET, u->host, &u->addr.sin_addr) != 1 || u->port <= 0) { free(dup); return -1; }
        nb_o.nurls++;
    }
    free(dup);
    return nb_o.nurls ? 0 : -1;
}

/* ------------------------------------------------------------------ /proc sampling */

typedef struct proc_sample { double cpu_s; long rss_kb; int ok; } proc_sample;

static proc_sample sample_pid(int pid)
{
    proc_sample s = { 0, 0, 0 };
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return s;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return s;
    unsigned long long ut = 0, st = 0;
    /* fields after ") ": state(3) … utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return s;
    s.cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (f) {
        while (fgets(buf, sizeof buf, f)) if (sscanf(buf, "VmRSS: %ld", &s.rss_kb) == 1) break;
        fclose(f);
    }
    s.ok = 1;
    return s;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------------ run */

static nb_thread *threads;

static void *thread_main(void *arg) { nb_thread_run(arg); return NULL; }

static int sum_ready(void) { int n = 0; for (int i = 0; i < nb_o.threads; i++) n += atomic_load(&threads[i].ready); return n; }
static int sum_closed(void) { int n = 0; for (int i = 0; i < nb_o.threads; i++) n += atomic_load(&threads[i].closed); return n; }

static void sleep_s(double s)
{
    int64_t end = nb_now() + (int64_t)(s * 1e9);
    while (!stop_requested && nb_now() < end) {
        int64_t left = end - nb_now();
        struct timespec ts = { 0, left > 50000000 ? 50000000 : (left > 0 ? left : 0) };
        nanosleep(&ts, NULL);
    }
}

static json_t *hist_json(const nb_hist *h)
{
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
                     "count", (json_int_t)h->count,
                     "p50_us", nb_hist_quantile(h, 0.50) / 1e3, "p90_us", nb_hist_quantile(h, 0.90) / 1e3,
                     "p99_us", nb_hist_quantile(h, 0.99) / 1e3, "p999_us", nb_hist_quantile(h, 0.999) / 1e3,
                     "max_us", h->max / 1e3, "min_us", h->min / 1e3,
                     "mean_us", h->count ? (double)h->sum / (double)h->count / 1e3 : 0.0);
}

static void fail_json(const char *msg, struct rlimit *rl)
{
    json_t *o = json_pack("{s:s, s:I, s:I}", "error", msg, "open_files_limit", (json_int_t)rl->rlim_cur,
                          "conns", (json_int_t)nb_o.conns);
    char *s = json_dumps(o, JSON_COMPACT);
    puts(s);
    free(s);
    json_decref(o);
}

int main(int argc, char **argv)
{
    nb_o = (nb_opts){ .conns = 10, .rooms = 1, .senders = 1, .threads = 1, .duration = 5, .warmup = 1, .drain = 1,
                      .ready_timeout = 60, .msg_size = 64, .app = "default", .room_prefix = "b",
                      .source_count = 4096, .connect_concurrency = 256 };
    nb_o.source_base = ntohl(inet_addr("127.0.1.1"));
    enum { O_DIALECT = 256, O_URL, O_CONNS, O_ROOMS, O_SHARED, O_SENDERS, O_RATE, O_DURATION, O_WARMUP, O_DRAIN,
           O_SIZE, O_SECRET, O_APP, O_PREFIX, O_SHNAME, O_SRC, O_SRCN, O_THREADS, O_CC, O_CR, O_RT, O_RF, O_PID, O_NOSC, O_JSON, O_HELP };
    static const struct option lo[] = {
        { "dialect", 1, 0, O_DIALECT }, { "url", 1, 0, O_URL }, { "conns", 1, 0, O_CONNS }, { "rooms", 1, 0, O_ROOMS },
        { "shared", 0, 0, O_SHARED }, { "senders", 1, 0, O_SENDERS }, { "rate", 1, 0, O_RATE },
        { "duration", 1, 0, O_DURATION }, { "warmup", 1, 0, O_WARMUP }, { "drain", 1, 0, O_DRAIN },
        { "msg-size", 1, 0, O_SIZE }, { "secret", 1, 0, O_SECRET }, { "app", 1, 0, O_APP },
        { "room-prefix", 1, 0, O_PREFIX }, { "shared-name", 1, 0, O_SHNAME }, { "source-base", 1, 0, O_SRC }, { "source-count", 1, 0, O_SRCN },
        { "threads", 1, 0, O_THREADS }, { "connect-concurrency", 1, 0, O_CC }, { "connect-rate", 1, 0, O_CR },
        { "ready-timeout", 1, 0, O_RT }, { "ready-file", 1, 0, O_RF }, { "pid", 1, 0, O_PID }, { "no-syscalls", 0, 0, O_NOSC },
        { "json", 1, 0, O_JSON }, { "help", 0, 0, O_HELP }, { 0, 0, 0, 0 } };
    int opt;
    while ((opt = getopt_long(argc, argv, "t:h", lo, NULL)) != -1) {
        switch (opt) {
        case O_DIALECT:
            if (!strcmp(optarg, "natter")) nb_o.dialect = &nb_dialect_natter;
            else if (!strcmp(optarg, "socketio")) nb_o.dialect = &nb_dialect_socketio;
            else if (!strcmp(optarg, "natsws")) nb_o.dialect = &nb_dialect_natsws;
            else { fprintf(stderr, "natter-bench: unknown dialect %s\n", optarg); return 64; }
            break;
        case O_URL: if (parse_urls(optarg) < 0) { fprintf(stderr, "natter-bench: bad --url %s (host:port,… with an IPv4 host)\n", optarg); return 64; } break;
        case O_CONNS: nb_o.conns = atoi(optarg); break;
        case O_ROOMS: nb_o.rooms = atoi(optarg); break;
        case O_SHARED: nb_o.shared_room = 1; break;
        case O_SENDERS: nb_o.senders = atoi(optarg); break;
        case O_RATE: nb_o.rate = atof(optarg); break;
        case O_DURATION: nb_o.duration = atof(optarg); break;
        case O_WARMUP: nb_o.warmup = atof(optarg); break;
        case O_DRAIN: nb_o.drain = atof(optarg); break;
        case O_SIZE: nb_o.msg_size = atoi(optarg); break;
        case O_SECRET: nb_o.secret = optarg; break;
        case O_APP: nb_o.app = optarg; break;
        case O_PREFIX: nb_o.room_prefix = optarg; break;
        case O_SHNAME: nb_o.shared_name = optarg; nb_o.shared_room = 1; break;
        case O_SRC:
            if (!strcmp(optarg, "none")) nb_o.source_base = 0;
            else {
                struct in_addr a;
                if (inet_pton(AF_INET, optarg, &a) != 1) { fprintf(stderr, "natter-bench: bad --source-base\n"); return 64; }
                nb_o.source_base = ntohl(a.s_addr);
            }
            break;
        case O_SRCN: nb_o.source_count = atoi(optarg); break;
        case 't': case O_THREADS: nb_o.threads = atoi(optarg); break;
        case O_CC: nb_o.connect_concurrency = atoi(optarg); break;
        case O_CR: nb_o.connect_rate = atof(optarg); break;
        case O_RT: nb_o.ready_timeout = atof(optarg); break;
        case O_RF: nb_o.ready_file = optarg; break;
        case O_NOSC: nb_o.no_syscalls = 1; break;
        case O_PID: {
            char *eq = strchr(optarg, '=');
            if (!eq || nb_o.npids == 64) { fprintf(stderr, "natter-bench: --pid NAME=PID\n"); return 64; }
            nb_o.pid_names[nb_o.npids] = strndup(optarg, (size_t)(eq - optarg));
            nb_o.pids[nb_o.npids++] = atoi(eq + 1);
            break;
        }
        case O_JSON: nb_o.json_file = optarg; break;
        case 'h': case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 64;
        }
    }
    if (!nb_o.dialect || !nb_o.nurls) { usage(stderr); return 64; }
    if (nb_o.conns < 1 || nb_o.rooms < 1 || nb_o.threads < 1 || nb_o.threads > 64 || nb_o.source_count < 1) {
        fprintf(stderr, "natter-bench: --conns, --rooms, --threads (1..64), --source-count must be positive\n");
        return 64;
    }
    if (nb_o.senders > nb_o.conns) nb_o.senders = nb_o.conns;
    if (nb_o.senders < 0) nb_o.senders = 0;
    if (nb_o.msg_size < 20) nb_o.msg_size = 20;
    if (nb_o.msg_size > 60000) nb_o.msg_size = 60000;
    if (nb_o.dialect == &nb_dialect_natter && !nb_o.secret) { fprintf(stderr, "natter-bench: natter needs --secret\n"); return 64; }

    /* One process holds at most RLIMIT_NOFILE descriptors (20,000 here, not raisable): say so and stop. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); getrlimit(RLIMIT_NOFILE, &rl); }
    if ((rlim_t)nb_o.conns + 32 + (rlim_t)nb_o.threads > rl.rlim_cur) {
        char msg[300];
        snprintf(msg, sizeof msg, "%d connections need more open files than one process may hold here (%llu); "
                 "run several natter-bench processes (bench/run.sh does)", nb_o.conns, (unsigned long long)rl.rlim_cur);
        fprintf(stderr, "natter-bench: %s\n", msg);
        fail_json(msg, &rl);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int64_t t_mint = nb_now();
    if (nb_o.dialect == &nb_dialect_natter) {
        nb_tokens = calloc((size_t)nb_o.conns, sizeof *nb_tokens);
        long long exp = (long long)time(NULL) + 86400;
        for (int i = 0; i < nb_o.conns; i++) {
            char sub[64];
            snprintf(sub, sizeof sub, "%s-u%d", nb_o.room_prefix, i);
            nb_tokens[i] = nt_jwt_sign(nb_o.secret, sub, nb_o.app, sub, NULL, exp);
        }
    }
    double mint_s = (double)(nb_now() - t_mint) / 1e9;

    threads = calloc((size_t)nb_o.threads, sizeof *threads);
    nb_nsec = (int)nb_o.duration + 1;
    for (int t = 0; t < nb_o.threads; t++) {
        nb_thread *th = &threads[t];
        th->index = t;
        th->lat_sec = calloc((size_t)nb_nsec, sizeof *th->lat_sec);
        th->ep = epoll_create1(EPOLL_CLOEXEC);
        int cnt = nb_o.conns / nb_o.threads + (t < nb_o.conns % nb_o.threads);
        th->conns = calloc((size_t)cnt, sizeof *th->conns);
        th->senders = calloc((size_t)cnt + 1, sizeof *th->senders);
        th->nconns = cnt;
        for (int k = 0; k < cnt; k++) {
            nb_conn *c = &th->conns[k];
            c->fd = -1;
            c->id = (uint32_t)(k * nb_o.threads + t);
            c->url = c->id % (uint32_t)nb_o.nurls;
            c->th = th;
            if ((int)c->id < nb_o.senders) th->senders[th->nsenders++] = k;
        }
    }
    proc_sample before[64], ready_s[64], w0[64], w1[64];
    for (int i = 0; i < nb_o.npids; i++) before[i] = sample_pid(nb_o.pids[i]);

    int64_t t0 = nb_now();
    pthread_t tids[64];
    for (int t = 0; t < nb_o.threads; t++) pthread_create(&tids[t], NULL, thread_main, &threads[t]);
    /* Connect phase: until every connection is ready or has failed, or the timeout. */
    while (!stop_requested) {
        int r = sum_ready(), cl = sum_closed();
        if (r + cl >= nb_o.conns) break;
        if ((double)(nb_now() - t0) / 1e9 > nb_o.ready_timeout) break;
        struct timespec ts = { 0, 20000000 };
        nanosleep(&ts, NULL);
    }
    int64_t t_ready = nb_now();
    int ready = sum_ready();
    int64_t first_ready = 0, last_ready = 0;
    for (int t = 0; t < nb_o.threads; t++) {
        int64_t f = atomic_load(&threads[t].first_ready_ns), l = atomic_load(&threads[t].last_ready_ns);
        if (f && (!first_ready || f < first_ready)) first_ready = f;
        if (l > last_ready) last_ready = l;
    }
    if (nb_o.ready_file) { FILE *f = fopen(nb_o.ready_file, "w"); if (f) { fprintf(f, "%d\n", ready); fclose(f); } }
    for (int i = 0; i < nb_o.npids; i++) ready_s[i] = sample_pid(nb_o.pids[i]);

    if (!ready) stop_requested = 1;     /* nothing to measure: report at once */
    atomic_store(&nb_phase, NB_PH_WARMUP);
    if (nb_o.rate > 0) sleep_s(nb_o.warmup);
    nb_syscount *sysc[64];
    long long sc0[64], sc1[64];
    for (int i = 0; i < nb_o.npids; i++) sysc[i] = nb_o.no_syscalls ? NULL : nb_syscount_open(nb_o.pids[i]);
    for (int i = 0; i < nb_o.npids; i++) sc0[i] = nb_syscount_read(sysc[i]);
    for (int i = 0; i < nb_o.npids; i++) w0[i] = sample_pid(nb_o.pids[i]);
    double bench_cpu0 = self_cpu();
    int64_t m0 = nb_now();
    struct timespec wall0;
    clock_gettime(CLOCK_REALTIME, &wall0);   /* to line the window up with other records */
    atomic_store(&nb_measure_ns, m0);
    atomic_store(&nb_phase, NB_PH_MEASURE);
    sleep_s(nb_o.duration);
    atomic_store(&nb_phase, NB_PH_DRAIN);
    int64_t m1 = nb_now();
    double bench_cpu1 = self_cpu();
    for (int i = 0; i < nb_o.npids; i++) w1[i] = sample_pid(nb_o.pids[i]);
    for (int i = 0; i < nb_o.npids; i++) sc1[i] = nb_syscount_read(sysc[i]);
    for (int i = 0; i < nb_o.npids; i++) nb_syscount_close(sysc[i]);
    if (nb_o.rate > 0 && !stop_requested) sleep_s(nb_o.drain);
    atomic_store(&nb_phase, NB_PH_STOP);
    for (int t = 0; t < nb_o.threads; t++) pthread_join(tids[t], NULL);

    /* ---- result */
    double window = (double)(m1 - m0) / 1e9;
    nb_counters n = { 0 };
    nb_hist *lat = calloc(1, sizeof *lat), *ack = calloc(1, sizeof *ack);
    const char *first_error = NULL;
    for (int t = 0; t < nb_o.threads; t++) {
        nb_thread *th = &threads[t];
        uint64_t *a = (uint64_t *)&n, *b = (uint64_t *)&th->n;
        for (size_t k = 0; k < sizeof n / sizeof(uint64_t); k++) a[k] += b[k];
        nb_hist_merge(lat, &th->lat);
        nb_hist_merge(ack, &th->ack);
        if (!first_error && th->errbuf) first_error = th->errbuf;
    }
    /* Deliveries expected per message: the ready members of the sender's room. */
    json_t *urls = json_array();
    for (int i = 0; i < nb_o.nurls; i++) {
        char u[96];
        snprintf(u, sizeof u, "%s:%d", nb_o.urls[i].host, nb_o.urls[i].port);
        json_array_append_new(urls, json_string(u));
    }
    json_t *servers = json_array();
    double server_cpu = 0;
    json_t *groups = json_object(), *sgroups = json_object();
    /* System calls: every process counted, or the total is unknown (null). */
    long long server_sc = nb_o.npids ? 0 : -1;
    for (int i = 0; i < nb_o.npids; i++) {
        double cpu = w1[i].ok && w0[i].ok ? w1[i].cpu_s - w0[i].cpu_s : 0;
        long long sc = sc0[i] >= 0 && sc1[i] >= 0 ? sc1[i] - sc0[i] : -1;
        server_cpu += cpu;
        server_sc = server_sc >= 0 && sc >= 0 ? server_sc + sc : -1;
        json_array_append_new(servers, json_pack("{s:s, s:i, s:b, s:f, s:I, s:I, s:I, s:o}",
            "name", nb_o.pid_names[i], "pid", nb_o.pids[i], "alive", w1[i].ok, "cpu_s", cpu,
            "rss_kb_start", (json_int_t)before[i].rss_kb, "rss_kb_ready", (json_int_t)ready_s[i].rss_kb,
            "rss_kb_end", (json_int_t)w1[i].rss_kb, "syscalls", sc >= 0 ? json_integer(sc) : json_null()));
        json_t *g = json_object_get(groups, nb_o.pid_names[i]);
        double prev = g ? json_real_value(g) : 0;
        json_object_set_new(groups, nb_o.pid_names[i], json_real(prev + cpu));
        /* a group is null once any of its processes could not be counted */
        json_t *sg = json_object_get(sgroups, nb_o.pid_names[i]);
        bool sg_ok = sc >= 0 && (!sg || json_is_integer(sg));
        json_object_set_new(sgroups, nb_o.pid_names[i],
                            sg_ok ? json_integer((sg ? json_integer_value(sg) : 0) + sc) : json_null());
    }
    json_t *o = json_pack("{s:s, s:o, s:i, s:i, s:i, s:b, s:i, s:f, s:f, s:i, s:i}",
        "dialect", nb_o.dialect->name, "urls", urls, "conns", nb_o.conns, "rooms", nb_o.rooms,
        "senders", nb_o.senders, "shared_room", nb_o.shared_room, "threads", nb_o.threads,
        "rate_target", nb_o.rate, "window_s", window, "msg_size", nb_o.msg_size, "open_files_limit", (int)rl.rlim_cur);
    json_object_set_new(o, "conns_ready", json_integer(ready));
    json_object_set_new(o, "connect_failures", json_integer((json_int_t)n.connect_failures));
    json_object_set_new(o, "disconnects", json_integer((json_int_t)n.disconnects));
    json_object_set_new(o, "token_mint_s", json_real(mint_s));
    json_object_set_new(o, "connect_s", json_real((double)(t_ready - t0) / 1e9));
    json_object_set_new(o, "connects_per_s", json_real(ready && last_ready > t0 ? ready / ((double)(last_ready - t0) / 1e9) : 0));
    json_object_set_new(o, "sent", json_integer((json_int_t)n.sent_window));
    json_object_set_new(o, "sent_total", json_integer((json_int_t)n.sent_total));
    json_object_set_new(o, "send_rate", json_real(window > 0 ? n.sent_window / window : 0));
    json_object_set_new(o, "send_skipped", json_integer((json_int_t)n.send_skipped));
    json_object_set_new(o, "send_behind", json_integer((json_int_t)n.send_behind));
    json_object_set_new(o, "deliveries", json_integer((json_int_t)n.deliveries_window));
    json_object_set_new(o, "deliveries_total", json_integer((json_int_t)n.deliveries_total));
    json_object_set_new(o, "delivery_rate", json_real(window > 0 ? n.deliveries_window / window : 0));
    json_object_set_new(o, "acks", json_integer((json_int_t)n.acks_window));
    if (nb_o.dialect == &nb_dialect_natter) {
        json_object_set_new(o, "acks_total", json_integer((json_int_t)n.acks_total));
        json_object_set_new(o, "send_errors", json_integer((json_int_t)n.send_errors));
    }
    json_object_set_new(o, "error_events", json_integer((json_int_t)n.errors));
    json_object_set_new(o, "protocol_errors", json_integer((json_int_t)n.protocol_errors));
    json_object_set_new(o, "pings", json_integer((json_int_t)n.pings));
    json_object_set_new(o, "bytes_in", json_integer((json_int_t)n.bytes_in));
    json_object_set_new(o, "bytes_out", json_integer((json_int_t)n.bytes_out));
    json_object_set_new(o, "latency", hist_json(lat));
    if (nb_o.dialect == &nb_dialect_natter) json_object_set_new(o, "ack_latency", hist_json(ack));
    /* The tail over time: a steady p99 and one stall of the same p99 read alike above. */
    json_t *by_sec = json_array();
    for (int k = 0; k < nb_nsec; k++) {
        nb_hist *h = calloc(1, sizeof *h);
        for (int t = 0; t < nb_o.threads; t++) nb_hist_merge(h, &threads[t].lat_sec[k]);
        if (h->count) json_array_append_new(by_sec, json_pack("{s:i, s:I, s:f, s:f, s:f}", "s", k,
            "count", (json_int_t)h->count, "p50_us", nb_hist_quantile(h, 0.50) / 1e3,
            "p99_us", nb_hist_quantile(h, 0.99) / 1e3, "max_us", h->max / 1e3));
        free(h);
    }
    json_object_set_new(o, "latency_by_second", by_sec);
    json_object_set_new(o, "window_start_unix_ms",
                        json_integer((json_int_t)wall0.tv_sec * 1000 + wall0.tv_nsec / 1000000));
    json_object_set_new(o, "bench_cpu_s", json_real(bench_cpu1 - bench_cpu0));
    json_object_set_new(o, "servers", servers);
    json_object_set_new(o, "server_cpu_by_name", groups);
    json_object_set_new(o, "server_cpu_s", json_real(server_cpu));
    json_object_set_new(o, "deliveries_per_server_cpu_s",
                        json_real(server_cpu > 0 ? n.deliveries_window / server_cpu : 0));
    json_object_set_new(o, "server_syscalls_by_name", sgroups);
    json_object_set_new(o, "server_syscalls", server_sc >= 0 ? json_integer(server_sc) : json_null());
    json_object_set_new(o, "syscalls_per_delivery",
                        server_sc >= 0 && n.deliveries_window ? json_real((double)server_sc / (double)n.deliveries_window)
                                                              : json_null());
    if (nb_syscount_error()) json_object_set_new(o, "syscalls_error", json_string(nb_syscount_error()));
    json_object_set_new(o, "interrupted", json_boolean(stop_requested && ready));
    if (first_error) json_object_set_new(o, "first_error", json_string(first_error));
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    puts(s);
    fflush(stdout);
    if (nb_o.json_file) { FILE *f = fopen(nb_o.json_file, "w"); if (f) { fputs(s, f); fputc('\n', f); fclose(f); } }
    free(s);
    json_decref(o);
    _exit(ready ? 0 : 1);
}
