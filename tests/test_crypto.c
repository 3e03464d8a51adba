/* crypto.c: known-answer vectors and strict decoding. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "unit.h"

static void
t_hex(void)
{
	unsigned char	in[3] = { 0x00, 0xab, 0xff }, out[3];
	char		hex[7];

	sec_hex(hex, in, 3);
	CU_ASSERT_STRING_EQUAL(hex, "00ABFF");
	CU_ASSERT_EQUAL(sec_unhex(out, 3, "00abFF", 6), 0);
	CU_ASSERT_EQUAL(memcmp(in, out, 3), 0);
	CU_ASSERT_EQUAL(sec_unhex(out, 3, "00ABF", 5), -1);
	CU_ASSERT_EQUAL(sec_unhex(out, 3, "00ABFG", 6), -1);
	CU_ASSERT_EQUAL(sec_unhex(out, 3, "00ABFF00", 8), -1);
}

static void
t_random_hex(void)
{
	char a[33], b[33];

	sec_random_hex(a, 16);
	sec_random_hex(b, 16);
	CU_ASSERT_EQUAL(strlen(a), 32);
	CU_ASSERT_EQUAL(strspn(a, "0123456789ABCDEF"), 32);
	CU_ASSERT_STRING_NOT_EQUAL(a, b);
}

static void
t_sha256(void)
{
	unsigned char	d[32];
	char		hex[65];

	/* FIPS 180-2 appendix B.1 */
	sec_sha256(d, "abc", 3);
	sec_hex(hex, d, 32);
	CU_ASSERT_STRING_EQUAL(hex, "BA7816BF8F01CFEA414140DE5DAE2223"
	    "B00361A396177A9CB410FF61F20015AD");
}

static void
t_tagged_hash(void)
{
	unsigned char	d[32], e[32];
	char		hex[65];

	/* SHA-256("U" "ACME" NUL "alice"), from Python's hashlib. */
	sec_tagged_hash(d, 'U', "ACME", "alice", 5);
	sec_hex(hex, d, 32);
	CU_ASSERT_STRING_EQUAL(hex, "8582E1B59D790E05635C3BFCA3A251F532D505DFCFD10C61725E38BFC9F08C17");
	/* The NUL keeps "AC"+"MEalice" apart from "ACME"+"alice". */
	sec_tagged_hash(e, 'U', "AC", "MEalice", 7);
	CU_ASSERT_NOT_EQUAL(memcmp(d, e, 32), 0);
	sec_tagged_hash(e, 'K', "ACME", "alice", 5);
	CU_ASSERT_NOT_EQUAL(memcmp(d, e, 32), 0);
}

static void
t_hmac(void)
{
	unsigned char	mac[32];
	char		hex[65];

	/* RFC 4231 test case 2 */
	sec_hmac256(mac, (const unsigned char *)"Jefe", 4,
	    "what do ya want for nothing?", 28);
	sec_hex(hex, mac, 32);
	CU_ASSERT_STRING_EQUAL(hex, "5BDCC146BF60754E6A042426089575C7"
	    "5A003F089D2739839DEC58B964EC3843");
}

static void
t_equal(void)
{
	CU_ASSERT_TRUE(sec_equal("abcd", "abcd", 4));
	CU_ASSERT_FALSE(sec_equal("abcd", "abce", 4));
	CU_ASSERT_FALSE(sec_equal("xbcd", "abcd", 4));
}

static void
t_pwhash(void)
{
	struct config	c;
	char		h[CRM_PWHASH_MAX], h2[CRM_PWHASH_MAX];

	config_defaults(&c);
	c.argon2_memory_kib = 8192;
	c.argon2_iterations = 1;
	CU_ASSERT_EQUAL(sec_pwhash(h, "correct horse", 13, &c), 0);
	CU_ASSERT_EQUAL(strncmp(h, "$argon2id$v=19$m=8192,t=1,p=1$", 30), 0);
	CU_ASSERT_PTR_NULL(strstr(h, "correct"));
	CU_ASSERT_EQUAL(sec_pwverify(h, "correct horse", 13), 0);
	CU_ASSERT_EQUAL(sec_pwverify(h, "correct hors", 12), -1);
	CU_ASSERT_EQUAL(sec_pwverify(h, "Correct horse", 13), -1);
	CU_ASSERT_EQUAL(sec_pwverify(h, "", 0), -1);
	/* Salted: the same password hashes differently. */
	CU_ASSERT_EQUAL(sec_pwhash(h2, "correct horse", 13, &c), 0);
	CU_ASSERT_STRING_NOT_EQUAL(h, h2);
	CU_ASSERT_EQUAL(sec_pwverify("garbage", "x", 1), -1);
	/* Security: a stored hash whose cost is past the bounds is never
	 * computed (t = 4e9 would hold the process for days). */
	{
		char		 big[CRM_PWHASH_MAX];
		uint32_t	 m, t, p;

		CU_ASSERT_EQUAL(sec_pwcost(h, &m, &t, &p), 0);
		CU_ASSERT_EQUAL((m == 8192 && t == 1 && p == 1), 1);
		snprintf(big, sizeof(big), "$argon2id$v=19$m=8192,"
		    "t=4000000000,p=1%s", strchr(h + 29, '$'));
		CU_ASSERT_EQUAL(sec_pwcost(big, &m, &t, &p), 1);
		/* A real hash one pass past the bounds (cheap at 8 KiB):
		 * the right password is refused. */
		CU_ASSERT_EQUAL_FATAL(crypto_pwhash_str_alg(big,
		    "correct horse", 13, CRM_ARGON2_T_MAX + 1, 8 * 1024,
		    crypto_pwhash_ALG_ARGON2ID13), 0);
		CU_ASSERT_EQUAL(sec_pwcost(big, &m, &t, &p), 1);
		CU_ASSERT_EQUAL(sec_pwverify(big, "correct horse", 13), -1);
		CU_ASSERT_EQUAL_FATAL(crypto_pwhash_str_alg(big,
		    "correct horse", 13, CRM_ARGON2_T_MAX, 8 * 1024,
		    crypto_pwhash_ALG_ARGON2ID13), 0);
		CU_ASSERT_EQUAL(sec_pwverify(big, "correct horse", 13), 0);
		CU_ASSERT_EQUAL(sec_pwcost("$argon2id$v=19$m=08,t=1,p=1$a$b",
		    &m, &t, &p), -1);
		/* Memory past its bound; then memory and passes each within
		 * theirs, their work past CRM_ARGON2_WORK_MAX (a minute a
		 * verify), and at it. */
		static const struct {
			const char	*cost;
			int		 past;
		} costs[] = { { "m=1048577,t=1,p=1", 1 },
		    { "m=1048576,t=64,p=1", 1 }, { "m=1048576,t=4,p=1", 0 },
		    { "m=262144,t=17,p=4", 1 } };

		for (size_t i = 0; i < sizeof(costs) / sizeof(costs[0]); i++) {
			snprintf(big, sizeof(big), "$argon2id$v=19$%s%s",
			    costs[i].cost, strchr(h + 29, '$'));
			CU_ASSERT_EQUAL(sec_pwcost(big, &m, &t, &p),
			    costs[i].past);
		}
		CU_ASSERT_EQUAL(sec_pwcost("$argon2id$v=19$m=8,t=x,p=1$a$b",
		    &m, &t, &p), -1);
		CU_ASSERT_EQUAL(sec_pwcost("$argon2i$v=19$m=8,t=1,p=1$a$b",
		    &m, &t, &p), -1);
	}
	/* Stale: made at another cost than the configured one. */
	CU_ASSERT_FALSE(sec_pwstale(h, &c));
	c.argon2_iterations = 2;
	CU_ASSERT_TRUE(sec_pwstale(h, &c));
	c.argon2_iterations = 1;
	c.argon2_memory_kib = 16384;
	CU_ASSERT_TRUE(sec_pwstale(h, &c));
	CU_ASSERT_TRUE(sec_pwstale("garbage", &c));
}

static void
t_dummy_hash(void)
{
	struct config	c;
	char		h[CRM_PWHASH_MAX];

	config_defaults(&c);
	sec_dummy_hash(h, &c);
	/* The configured cost, well-formed, and matching nothing. */
	CU_ASSERT_EQUAL(strncmp(h, "$argon2id$v=19$m=19456,t=2,p=1$", 31), 0);
	CU_ASSERT_EQUAL(sec_pwverify(h, "", 0), -1);
	CU_ASSERT_EQUAL(sec_pwverify(h, "password", 8), -1);
	CU_ASSERT_FALSE(sec_pwstale(h, &c));
	c.argon2_memory_kib = 8192;
	c.argon2_iterations = 3;
	sec_dummy_hash(h, &c);
	CU_ASSERT_EQUAL(strncmp(h, "$argon2id$v=19$m=8192,t=3,p=1$", 30), 0);
}

static void
t_b64url(void)
{
	unsigned char	out[16];
	char		enc[32];
	size_t		n;

	b64url_encode(enc, (const unsigned char *)"\xfb\xff", 2);
	CU_ASSERT_STRING_EQUAL(enc, "-_8");
	CU_ASSERT_EQUAL(b64url_decode(out, sizeof(out), &n, "-_8", 3), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(memcmp(out, "\xfb\xff", 2), 0);
	/* Not url-safe, padded, non-canonical, junk, too long for out. */
	CU_ASSERT_EQUAL(b64url_decode(out, sizeof(out), &n, "+/8", 3), -1);
	CU_ASSERT_EQUAL(b64url_decode(out, sizeof(out), &n, "-_8=", 4), -1);
	CU_ASSERT_EQUAL(b64url_decode(out, sizeof(out), &n, "-_9", 3), -1);
	CU_ASSERT_EQUAL(b64url_decode(out, sizeof(out), &n, "ab.c", 4), -1);
	CU_ASSERT_EQUAL(b64url_decode(out, 2, &n, "YWJjZA", 6), -1);
}

static void
t_b64(void)
{
	unsigned char	out[16];
	size_t		n;

	CU_ASSERT_EQUAL(b64_decode(out, sizeof(out), &n, "YWI6", 4), 0);
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_EQUAL(memcmp(out, "ab:", 3), 0);
	CU_ASSERT_EQUAL(b64_decode(out, sizeof(out), &n, "YQ==", 4), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(b64_decode(out, sizeof(out), &n, "YQ", 2), -1);
	CU_ASSERT_EQUAL(b64_decode(out, sizeof(out), &n, "Y Q==", 5), -1);
}

/*
 * The table coder for public data against libsodium's: the same answer
 * (success, bytes, length) on 200,000 strings made of base64url, the
 * characters next to it and padding, of every length to 14, with every
 * outmax that matters; and encoding agrees byte for byte.
 */
static void
t_b64url_public(void)
{
	static const char	 alpha[] = "AQgw_-+/=.Z9azA";
	static const char	 url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char		 a[16], b[16], bin[16];
	char			 s[16], e1[32], e2[32], *end;
	size_t			 na, nb, len, outmax;
	int			 ra, rb, agree = 1, encodes = 1;
	uint32_t		 r;

	for (int i = 0; i < 200000; i++) {
		r = randombytes_random();
		len = r % 15;
		outmax = len * 3 / 4 - (r >> 4) % 2;
		if (outmax > 16)
			outmax = 16;
		for (size_t j = 0; j < len; j++)
			s[j] = alpha[randombytes_uniform(sizeof(alpha) - 1)];
		/* Mostly valid strings: an alphabet of 64 would rarely be. */
		if (i % 2)
			for (size_t j = 0; j < len; j++)
				s[j] = url[randombytes_uniform(64)];
		ra = b64url_decode(a, outmax, &na, s, len);
		rb = b64url_decode_public(b, outmax, &nb, s, len);
		if (ra != rb || (ra == 0 && (na != nb || memcmp(a, b, na) != 0)))
			agree = 0;
		randombytes_buf(bin, sizeof(bin));
		b64url_encode(e1, bin, len);
		end = b64url_encode_public(e2, bin, len);
		*end = '\0';
		if (strcmp(e1, e2) != 0)
			encodes = 0;
	}
	CU_ASSERT_TRUE(agree);
	CU_ASSERT_TRUE(encodes);
}

static CU_TestInfo tests[] = {
	{ "hex encoding is strict", t_hex },
	{ "random hex is 32 upper-case digits and random", t_random_hex },
	{ "SHA-256 known answer", t_sha256 },
	{ "tagged hash: known answer, parts kept apart", t_tagged_hash },
	{ "HMAC-SHA-256 known answer (RFC 4231)", t_hmac },
	{ "constant-time equality", t_equal },
	{ "argon2id hash and verify; stale costs", t_pwhash },
	{ "dummy hash has the configured cost and matches nothing",
	    t_dummy_hash },
	{ "base64url is strict (RFC 7515)", t_b64url },
	{ "base64url for public data agrees with libsodium's", t_b64url_public },
	{ "base64 for Basic is strict (RFC 4648)", t_b64 },
	CU_TEST_INFO_NULL,
};

int
main(void)
{
	return unit_run("crypto", tests);
}
