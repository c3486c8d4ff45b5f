/* nkey.c: NATS NKeys: decode a user seed and derive its public key (OpenSSL Ed25519). */
#include "nkey.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PREFIX_SEED (18 << 3)  /* 'S' */
#define PREFIX_USER (20 << 3)  /* 'U' */
#define RAW_SEED_LEN 36        /* 2 prefix bytes, 32 key bytes, CRC-16 */
#define RAW_PUBLIC_LEN 35      /* 1 prefix byte, 32 key bytes, CRC-16 */

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* CRC-16/XMODEM (polynomial 0x1021, initial 0), as nkeys uses. */
static uint16_t crc16(const unsigned char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int k = 0; k < 8; k++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

/* Unpadded RFC 4648 base32 of exactly len characters into out; -1 on a foreign
 * character. Returns the number of bytes. */
static int b32_decode(const char *in, size_t len, unsigned char *out, size_t outcap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        const char *at = strchr(b32, in[i]);
        if (!in[i] || !at)
            return -1;
        acc = (acc << 5) | (uint32_t)(at - b32);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (n == outcap)
                return -1;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return (int)n;
}

static void b32_encode(const unsigned char *in, size_t len, char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            *out++ = b32[(acc >> bits) & 31];
        }
    }
    if (bits > 0)
        *out++ = b32[(acc << (5 - bits)) & 31];
    *out = '\0';
}

/* Decodes one candidate seed line into the 32 key bytes; false when it is none. */
static bool decode_user_seed(const char *s, size_t len, unsigned char key[32])
{
    unsigned char raw[RAW_SEED_LEN + 1];
    bool ok = len == NT_NKEY_SEED_LEN &&
              b32_decode(s, len, raw, sizeof(raw)) == RAW_SEED_LEN &&
              (raw[0] & 0xf8) == PREFIX_SEED &&
              (((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3)) == PREFIX_USER &&
              crc16(raw, RAW_SEED_LEN - 2) == (raw[RAW_SEED_LEN - 2] | raw[RAW_SEED_LEN - 1] << 8);
    if (ok)
        memcpy(key, raw + 2, 32);
    OPENSSL_cleanse(raw, sizeof(raw));
    return ok;
}

int nt_nkey_user_public(const char *text, size_t len, char pub[NT_NKEY_PUBLIC_LEN + 1],
                        char *why, size_t whylen)
{
    unsigned char key[32];
    bool found = false;
    for (size_t i = 0; i < len && !found;) {
        size_t end = i;
        while (end < len && text[end] != '\n')
            end++;
        size_t a = i, b = end;
        while (a < b && (text[a] == ' ' || text[a] == '\t'))
            a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r'))
            b--;
        found = decode_user_seed(text + a, b - a, key);
        i = end + 1;
    }
    if (!found) {
        snprintf(why, whylen, "no NKey user seed (a line \"SU...\" of %d characters with a valid "
                 "checksum) in it", NT_NKEY_SEED_LEN);
        return -1;
    }

    unsigned char raw[RAW_PUBLIC_LEN];
    size_t publen = 32;
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    int rc = pk && EVP_PKEY_get_raw_public_key(pk, raw + 1, &publen) == 1 && publen == 32 ? 0 : -1;
    EVP_PKEY_free(pk);
    if (rc != 0) {
        snprintf(why, whylen, "cannot derive the Ed25519 public key");
        return -1;
    }
    raw[0] = PREFIX_USER;
    uint16_t crc = crc16(raw, RAW_PUBLIC_LEN - 2);
    raw[RAW_PUBLIC_LEN - 2] = (unsigned char)(crc & 0xff);
    raw[RAW_PUBLIC_LEN - 1] = (unsigned char)(crc >> 8);
    b32_encode(raw, sizeof(raw), pub);
    return 0;
}
