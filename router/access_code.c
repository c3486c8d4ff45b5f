/* access_code.c: limits on access-code attempts per (app, room, user) and per room.
 *
 * natter:{<app>}:codefail:<room>:<user> (the user's attempts) and
 * natter:{<app>}:codefail:<room> (every user's) are hashes: `fails` (wrong codes),
 * `until` (ms: the lock's end), `busy` (attempts being checked) and `busy_until`
 * (ms: when those reservations lapse). One script admits (both keys at once, so the
 * limit holds for attempts sent in parallel through many gateways), one settles.
 * A failure sets the key's expiry to the window plus the lock, so a key vanishes a
 * window after its last failure and a lock always ends before its count does. */
#include "access_code.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "request.h"
#include "util.h"

#define KEY_MAX 256

/* KEYS[1] natter:{<app>}:codefail:<room>:<user>, KEYS[2] natter:{<app>}:codefail:<room>;
 * ARGV[1] now ms, ARGV[2] user limit, ARGV[3] room limit, ARGV[4] reservation ms.
 * Refused while a lock lasts, or while `busy` reservations (not lapsed) take what is
 * left before the limit (one attempt at a time past it; such a refusal says retry in
 * at most 1 s). Returns {0, 0} admitted (reserved on both keys), {1, ms} refused by
 * the user's limit, {2, ms} by the room's (the longer wait when both refuse). */
static const char ADMIT_LUA[] =
    "local now = tonumber(ARGV[1])\n"
    "local function wait(k, limit)\n"
    "  local v = redis.call('HMGET', k, 'fails', 'until', 'busy', 'busy_until')\n"
    "  local f, u = tonumber(v[1]) or 0, tonumber(v[2]) or 0\n"
    "  local b, bu = tonumber(v[3]) or 0, tonumber(v[4]) or 0\n"
    "  if u > now then return u - now end\n"
    "  if bu > now and b >= math.max(limit - f, 1) then return math.min(bu - now, 1000) end\n"
    "  return 0\n"
    "end\n"
    "local wu, wr = wait(KEYS[1], tonumber(ARGV[2])), wait(KEYS[2], tonumber(ARGV[3]))\n"
    "if wu > 0 and wu >= wr then return {1, wu} end\n"
    "if wr > 0 then return {2, wr} end\n"
    "local hold = tonumber(ARGV[4])\n"
    "for _, k in ipairs(KEYS) do\n"
    "  if (tonumber(redis.call('HGET', k, 'busy_until')) or 0) <= now then\n"
    "    redis.call('HSET', k, 'busy', 0)\n"
    "  end\n"
    "  redis.call('HINCRBY', k, 'busy', 1)\n"
    "  redis.call('HSET', k, 'busy_until', string.format('%.0f', now + hold))\n"
    "  if redis.call('PTTL', k) < hold then redis.call('PEXPIRE', k, hold) end\n"
    "end\n"
    "return {0, 0}\n";

/* Same keys; ARGV[1] right, wrong or undecided, ARGV[2] now ms, ARGV[3] user limit,
 * ARGV[4] room limit, ARGV[5] window ms, ARGV[6] backoff ms. Releases the
 * reservation; wrong counts a failure on both keys (a lock from the limit on, of
 * backoff × 2^(fails - limit), at most the window); right deletes the user's key.
 * Returns {user fails, room fails} counted now ({0, 0} unless wrong). */
static const char SETTLE_LUA[] =
    "local now, window, backoff = tonumber(ARGV[2]), tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local function fail(k, limit)\n"
    "  local f = redis.call('HINCRBY', k, 'fails', 1)\n"
    "  local lock = 0\n"
    "  if f >= limit then\n"
    "    lock = math.min(backoff * 2 ^ math.min(f - limit, 40), window)\n"
    "    redis.call('HSET', k, 'until', string.format('%.0f', now + lock))\n"
    "  end\n"
    "  if redis.call('PTTL', k) < window + lock then\n"
    "    redis.call('PEXPIRE', k, string.format('%.0f', window + lock))\n"
    "  end\n"
    "  return f\n"
    "end\n"
    "for _, k in ipairs(KEYS) do\n"
    "  if (tonumber(redis.call('HGET', k, 'busy')) or 0) > 0 then\n"
    "    redis.call('HINCRBY', k, 'busy', -1)\n"
    "  end\n"
    "end\n"
    "if ARGV[1] == 'wrong' then\n"
    "  return {fail(KEYS[1], tonumber(ARGV[3])), fail(KEYS[2], tonumber(ARGV[4]))}\n"
    "end\n"
    "if ARGV[1] == 'right' then redis.call('DEL', KEYS[1]) end\n"
    "return {0, 0}\n";

typedef struct admit_wait {
    rt_access_code_cb cb;
    void *arg;
} admit_wait;

typedef struct settle_wait {
    rt_router *rt;
    rt_id app, room, user;
} settle_wait;

static void keys_for(const char *app, const char *room, const char *user,
                     char ukey[KEY_MAX], char rkey[KEY_MAX])
{
    snprintf(ukey, KEY_MAX, "natter:{%s}:codefail:%s:%s", app, room, user);
    snprintf(rkey, KEY_MAX, "natter:{%s}:codefail:%s", app, room);
}

static bool reply_pair(const redisReply *reply, long long *a, long long *b)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER)
        return false;
    *a = reply->element[0]->integer;
    *b = reply->element[1]->integer;
    return true;
}

static void on_admitted(nt_status st, const redisReply *reply, void *arg)
{
    admit_wait *w = arg;
    long long limit = 0, retry = 0;

    if (st == NT_OK && !reply_pair(reply, &limit, &retry))
        st = NT_EIO;
    if (st != NT_OK) {
        w->cb(st, NULL, w->arg);
    } else {
        rt_access_code_verdict v = {
            .limit = limit == 1 ? RT_CODE_USER : limit == 2 ? RT_CODE_ROOM : RT_CODE_ADMITTED,
            .retry_ms = retry > 0 ? retry : 1,
        };
        w->cb(NT_OK, &v, w->arg);
    }
    nt_free(w);
}

nt_status rt_access_code_admit(rt_router *rt, const char *app, const char *room,
                               const char *user, rt_access_code_cb cb, void *arg)
{
    char ukey[KEY_MAX], rkey[KEY_MAX], now[24], ulimit[24], rlimit[24], hold[24];

    keys_for(app, room, user, ukey, rkey);
    snprintf(now, sizeof now, "%" PRId64, nt_now_ms());
    snprintf(ulimit, sizeof ulimit, "%" PRId64, rt->access_code_attempts);
    snprintf(rlimit, sizeof rlimit, "%" PRId64, rt->access_code_room_attempts);
    snprintf(hold, sizeof hold, "%d", 2 * rt->request_timeout_ms);
    const char *args[] = { ukey, rkey, now, ulimit, rlimit, hold, NULL };
    admit_wait *w = nt_malloc(sizeof *w);
    w->cb = cb;
    w->arg = arg;
    nt_status st = rt_eval(rt, ADMIT_LUA, 2, args, on_admitted, w);
    if (st != NT_OK)
        nt_free(w);
    return st;
}

static void on_settled(nt_status st, const redisReply *reply, void *arg)
{
    settle_wait *w = arg;
    rt_router *rt = w->rt;
    long long ufails = 0, rfails = 0;

    if (st != NT_OK || !reply_pair(reply, &ufails, &rfails))
        nt_warn("access code attempt on %s/%s by %s not recorded: %s", w->app, w->room, w->user,
                st != NT_OK ? nt_status_text(st) : "unexpected script reply");
    else if (ufails == rt->access_code_attempts)
        nt_info("access codes for %s/%s locked for %s: %lld wrong (NATTER_ACCESS_CODE_ATTEMPTS)",
                w->app, w->room, w->user, ufails);
    if (st == NT_OK && rfails == rt->access_code_room_attempts)
        nt_warn("access codes for %s/%s locked for every user: %lld wrong "
                "(NATTER_ACCESS_CODE_ROOM_ATTEMPTS)", w->app, w->room, rfails);
    nt_free(w);
}

void rt_access_code_settle(rt_router *rt, const char *app, const char *room, const char *user,
                           rt_access_code_outcome outcome)
{
    static const char *const names[] = {
        [RT_CODE_RIGHT] = "right", [RT_CODE_WRONG] = "wrong", [RT_CODE_UNDECIDED] = "undecided",
    };
    char ukey[KEY_MAX], rkey[KEY_MAX], now[24], ulimit[24], rlimit[24], window[24], backoff[24];

    keys_for(app, room, user, ukey, rkey);
    snprintf(now, sizeof now, "%" PRId64, nt_now_ms());
    snprintf(ulimit, sizeof ulimit, "%" PRId64, rt->access_code_attempts);
    snprintf(rlimit, sizeof rlimit, "%" PRId64, rt->access_code_room_attempts);
    snprintf(window, sizeof window, "%" PRId64, rt->access_code_window_s * 1000);
    snprintf(backoff, sizeof backoff, "%" PRId64, rt->access_code_backoff_s * 1000);
    const char *args[] = { ukey, rkey, names[outcome], now, ulimit, rlimit, window, backoff,
                           NULL };
    settle_wait *w = nt_malloc(sizeof *w);
    w->rt = rt;
    snprintf(w->app, sizeof w->app, "%s", app);
    snprintf(w->room, sizeof w->room, "%s", room);
    snprintf(w->user, sizeof w->user, "%s", user);
    nt_status st = rt_eval(rt, SETTLE_LUA, 2, args, on_settled, w);
    if (st != NT_OK) {
        nt_warn("access code attempt on %s/%s by %s not recorded: %s", app, room, user,
                nt_status_text(st));
        nt_free(w);
    }
}

void rt_access_code_message(const rt_router *rt, const rt_access_code_verdict *v,
                            const char *room, char *buf, size_t len)
{
    bool per_room = v->limit == RT_CODE_ROOM;
    long long secs = (long long)((v->retry_ms + 999) / 1000);

    snprintf(buf, len, "too many wrong access codes for room %s: at most %" PRId64 " %s in %"
             PRId64 " s (%s); retry in %lld s", room,
             per_room ? rt->access_code_room_attempts : rt->access_code_attempts,
             per_room ? "from all users" : "per user", rt->access_code_window_s,
             per_room ? "NATTER_ACCESS_CODE_ROOM_ATTEMPTS" : "NATTER_ACCESS_CODE_ATTEMPTS", secs);
}
