/* util.c: ids, UUIDs, partitioning, constant-time comparison (UTF-8 is utf8.c, time clock.c). */
#include "util.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <sys/random.h>

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
