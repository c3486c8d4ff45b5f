/* utf8.c: UTF-8 validation, scrubbing and cutting on character boundaries. */
#include "utf8.h"

#include <string.h>

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
