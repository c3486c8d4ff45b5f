/* test_nkey.c: the public key of an NKey user seed, bare or in a .creds block, and
 * refusals of what is not one. The vector was made with node's Ed25519 and the
 * nkeys encoding, and nats-server 2.9 accepted the pair (internal_auth.test.mjs
 * checks the same against a live server). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "nkey.h"

#define SEED "SUACIBRXUB6BNI2XTOITKDGFQSQBTGPKG3AFY42DCLZVZTOBUSIMIBFM4A"
#define PUB "UCRJKBO6PPXT2TAKZL2WBDZ2RWEVEKQF3JALRW4FDU7HIOBG3N2ZWK66"
#define ACCOUNT_SEED "SAAA3DJ2QI3SF7HTHHH3QM35UQKLAIWZRYVZAFBFFZBBMEPWWOGDU3FMX4"

static int derive(const char *text, char pub[NT_NKEY_PUBLIC_LEN + 1], char *why)
{
    return nt_nkey_user_public(text, strlen(text), pub, why, 160);
}

static void test_bare_seed(void **state)
{
    char pub[NT_NKEY_PUBLIC_LEN + 1], why[160];
    assert_int_equal(derive(SEED, pub, why), 0);
    assert_string_equal(pub, PUB);
    assert_int_equal(derive("  " SEED " \r\n", pub, why), 0);
    assert_string_equal(pub, PUB);
}

static void test_creds_block(void **state)
{
    char pub[NT_NKEY_PUBLIC_LEN + 1], why[160];
    const char *creds =
        "-----BEGIN NATS USER JWT-----\n"
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "-----BEGIN USER NKEY SEED-----\n" SEED "\n------END USER NKEY SEED------\n";
    assert_int_equal(derive(creds, pub, why), 0);
    assert_string_equal(pub, PUB);
}

static void test_refused(void **state)
{
    char pub[NT_NKEY_PUBLIC_LEN + 1], why[160];
    char bad_crc[] = SEED;
    bad_crc[30] = bad_crc[30] == 'A' ? 'B' : 'A';    /* a key byte: the CRC no longer fits */
    /* an account seed (valid checksum) is not a client's */
    const char *cases[] = { "", "garbage", PUB, bad_crc, ACCOUNT_SEED, SEED "X", "SU0" };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        why[0] = '\0';
        assert_int_equal(derive(cases[i], pub, why), -1);
        assert_non_null(strstr(why, "no NKey user seed"));
        assert_null(strstr(why, "SUAC"));   /* never the key material */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bare_seed),
        cmocka_unit_test(test_creds_block),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
