/* util.c: ids, UTF-8 validation, UUIDs, time formatting, partitioning. */
#include "util.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"

bool nt_valid_id(const char *s, size_t len)
{
    if (len < 1 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Follows the well-formed byte sequences of Unicode 15, table 3-7: the narrowed
 * second-byte ranges exclude overlongs, surrogates and code points > U+10FFFF. */
size_t nt_utf8_seq(const char *str, size_t len, size_t i)
{
    const unsigned char *s = (const unsigned char *)str;
    if (i >= len)
        return 0;
    unsigned char c = s[i];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (need > len - i - 1)
        return 0;
    if (s[i + 1] < lo || s[i + 1] > hi)
        return 0;
    for (size_t k = 2; k <= need; k++)
        if ((s[i + k] & 0xc0) != 0x80)
            return 0;
    return need + 1;
}

bool nt_valid_utf8(const char *s, size_t len)
{
    for (size_t i = 0, n; i < len; i += n)
        if ((n = nt_utf8_seq(s, len, i)) == 0)
            return false;
    return true;
}

size_t nt_utf8_scrub(char *s, size_t len)
{
    size_t bad = 0;
    for (size_t i = 0, n; i < len; i += n)
        if ((n = nt_utf8_seq(s, len, i)) == 0) {
            s[i] = '?';
            n = 1;
            bad++;
        }
    return bad;
}

size_t nt_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;                                     /* s[max] continues a character */
    return max;
}

const char *nt_shorten(const char *s, char *buf, size_t buflen)
{
    size_t n = strlen(s);
    if (n < buflen)
        return s;
    size_t cut = nt_utf8_cut(s, n, buflen - 4);
    memcpy(buf, s, cut);
    memcpy(buf + cut, "...", 4);
    return buf;
}

size_t nt_utf8_len(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            n++;
    return n;
}

static void random_bytes(unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == len)
        return;
    if (RAND_bytes(buf, (int)len) != 1) {
        nt_log(NT_LOG_ERROR, "no source of randomness (getrandom and RAND_bytes failed)");
        abort();
    }
}

void nt_uuid(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    random_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 0x0f];
    }
    *p = '\0';
}

int64_t nt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void nt_rfc3339_ms(int64_t ms, char out[32])
{
    int64_t sec = ms / 1000, rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    /* the modulos only tell the compiler each field's width; RFC 3339 has 4-digit years */
    snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
             (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
             (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
             (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u, (unsigned)rem % 1000u);
}

unsigned nt_partition(const char *app, const char *room, unsigned nparts)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)app; *p; p++)
        h = (h ^ *p) * 16777619u;
    h = (h ^ (unsigned char)'/') * 16777619u;
    for (const unsigned char *p = (const unsigned char *)room; *p; p++)
        h = (h ^ *p) * 16777619u;
    return nparts <= 1 ? 0 : h % nparts;
}

/* Touches max(alen, blen) bytes whatever the content; only lengths may leak. */
bool nt_consttime_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen > blen ? alen : blen;
    volatile unsigned char diff = alen != blen;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < alen ? (unsigned char)a[i] : 0;
        unsigned char y = i < blen ? (unsigned char)b[i] : 0;
        diff |= x ^ y;
    }
    return diff == 0;
}
