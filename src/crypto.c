/* Thin wrappers over libsodium: every secret operation goes through here. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "extern.h"

int
sec_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

void
sec_random(void *buf, size_t n)
{
	randombytes_buf(buf, n);
}

void
sec_hex(char *hex, const unsigned char *in, size_t n)
{
	static const char digits[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = digits[in[i] >> 4];
		hex[2 * i + 1] = digits[in[i] & 0xf];
	}
	hex[2 * n] = '\0';
}

void
sec_random_hex(char *hex, size_t n)
{
	unsigned char buf[64];

	if (n > sizeof(buf))
		n = sizeof(buf);
	randombytes_buf(buf, n);
	sec_hex(hex, buf, n);
	sodium_memzero(buf, sizeof(buf));
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void
sec_key_id(char id[CRM_KEY_ID_HEX + 1],
    const unsigned char digest[CRM_DIGEST_BYTES])
{
	char hex[2 * CRM_DIGEST_BYTES + 1];

	sec_hex(hex, digest, CRM_DIGEST_BYTES);
	memcpy(id, hex, CRM_KEY_ID_HEX);
	id[CRM_KEY_ID_HEX] = '\0';
}

int
sec_unhex(unsigned char *out, size_t n, const char *hex, size_t hexlen)
{
	if (hexlen != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

void
sec_sha256(unsigned char out[CRM_DIGEST_BYTES], const void *in,
    size_t len)
{
	crypto_hash_sha256(out, in, len);
}

void
sec_hmac_sha256(unsigned char out[CRM_DIGEST_BYTES],
    const unsigned char key[CRM_DIGEST_BYTES], const void *in, size_t len)
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, CRM_DIGEST_BYTES);
	crypto_auth_hmacsha256_update(&st, in, len);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

void
sec_tagged_hash(unsigned char out[CRM_DIGEST_BYTES], char tag, const char *a,
    const void *b, size_t blen)
{
	crypto_hash_sha256_state	 st;
	unsigned char			 t = (unsigned char)tag, nul = 0;
	size_t				 alen = strlen(a);

	if (alen > CRM_NAME_MAX)
		alen = CRM_NAME_MAX;
	if (blen > CRM_NAME_MAX)
		blen = CRM_NAME_MAX;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &t, 1);
	crypto_hash_sha256_update(&st, (const unsigned char *)a, alen);
	crypto_hash_sha256_update(&st, &nul, 1);
	if (blen > 0)
		crypto_hash_sha256_update(&st, b, blen);
	crypto_hash_sha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

int
sec_pwhash(char out[CRM_PWHASH_MAX], const char *pw, size_t len,
    const struct config *cfg)
{
	char buf[crypto_pwhash_STRBYTES];

	if (crypto_pwhash_str_alg(buf, pw, len, cfg->argon2_iterations,
	    (size_t)cfg->argon2_memory_kib * 1024,
	    crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -1;
	snprintf(out, CRM_PWHASH_MAX, "%s", buf);
	return 0;
}

int
sec_pwcost(const char *phc, uint32_t *m, uint32_t *t, uint32_t *p)
{
	static const char	 prefix[] = "$argon2id$v=19$m=";
	const char		*s = phc;
	long long		 v[3];
	const char		*why;
	char			 num[16];
	size_t			 i, n;

	if (strncmp(s, prefix, sizeof(prefix) - 1) != 0)
		return -1;
	s += sizeof(prefix) - 1;
	for (i = 0; i < 3; i++) {
		if (i > 0) {
			if (strncmp(s, i == 1 ? ",t=" : ",p=", 3) != 0)
				return -1;
			s += 3;
		}
		n = strspn(s, "0123456789");
		/* libsodium refuses leading zeros: so do we. */
		if (n == 0 || n >= sizeof(num) || (n > 1 && s[0] == '0'))
			return -1;
		memcpy(num, s, n);
		num[n] = '\0';
		if (parse_int(num, 0, 0xffffffffLL, &v[i], &why) == -1)
			return -1;
		s += n;
	}
	if (*s != '$')
		return -1;
	*m = (uint32_t)v[0];
	*t = (uint32_t)v[1];
	*p = (uint32_t)v[2];
	if (*m < CRM_ARGON2_MEM_MIN_KIB || *m > CRM_ARGON2_MEM_MAX_KIB ||
	    *t < 1 || *t > CRM_ARGON2_T_MAX || *p < 1 ||
	    *p > CRM_ARGON2_P_MAX ||
	    (uint64_t)*m * *t > CRM_ARGON2_WORK_MAX)
		return 1;
	return 0;
}

int
sec_pwverify(const char *phc, const char *pw, size_t len)
{
	uint32_t m, t, p;

	/* A cost past the bounds is no hash of ours: refused before it
	 * could hold a responder (a store written by other hands). */
	if (sec_pwcost(phc, &m, &t, &p) != 0)
		return -1;
	return crypto_pwhash_str_verify(phc, pw, len) == 0 ? 0 : -1;
}

int
sec_pwstale(const char *phc, const struct config *cfg)
{
	return crypto_pwhash_str_needs_rehash(phc, cfg->argon2_iterations,
	    (size_t)cfg->argon2_memory_kib * 1024) != 0;
}

int
sec_seal(unsigned char *out, const unsigned char *in, size_t len,
    const unsigned char key[CRM_SEAL_KEY], const char *ad)
{
	unsigned long long n;

	randombytes_buf(out, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	return crypto_aead_xchacha20poly1305_ietf_encrypt(
	    out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &n, in, len,
	    (const unsigned char *)ad, strlen(ad), NULL, out, key);
}

int
sec_unseal(unsigned char *out, const unsigned char *in, size_t len,
    const unsigned char key[CRM_SEAL_KEY], const char *ad)
{
	unsigned long long n;

	if (len < CRM_SEAL_OVERHEAD)
		return -1;
	return crypto_aead_xchacha20poly1305_ietf_decrypt(out, &n, NULL,
	    in + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	    len - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	    (const unsigned char *)ad, strlen(ad), in, key);
}

void
sec_dummy_hash(char out[CRM_PWHASH_MAX], const struct config *cfg)
{
	unsigned char	 salt[16], hash[32];
	char		 s[32], h[48];

	/* Random salt and "hash": a well-formed PHC string that verifying
	 * any password against costs a full argon2id run and never
	 * matches (2^-256). */
	randombytes_buf(salt, sizeof(salt));
	randombytes_buf(hash, sizeof(hash));
	sodium_bin2base64(s, sizeof(s), salt, sizeof(salt),
	    sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	sodium_bin2base64(h, sizeof(h), hash, sizeof(hash),
	    sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	snprintf(out, CRM_PWHASH_MAX, "$argon2id$v=19$m=%u,t=%u,p=%u$%s$%s",
	    cfg->argon2_memory_kib, cfg->argon2_iterations,
	    cfg->argon2_parallelism, s, h);
}

/*
 * HMAC-SHA-256.  A signing key is used for every token of its life, so
 * the state after absorbing the key (the inner and outer pads, two
 * SHA-256 blocks) is kept for the last few keys and copied per message:
 * a token's MAC then hashes the token and nothing else.  So are the keys
 * an authentication code is looked up with (wrap.c: two, each code).  The
 * cache holds what the process holds anyway (the store maps the keys); it
 * is found by a constant-time comparison of the whole key.  Per thread:
 * libcrmauth handles may live in several threads.
 */
#define HMAC_CACHE	8

static _Thread_local struct hmac_cached {
	unsigned char			 key[32];
	int				 used;
	crypto_auth_hmacsha256_state	 st;
} hmac_cache[HMAC_CACHE];
static _Thread_local size_t hmac_next;

void
sec_hmac256(unsigned char out[32], const unsigned char *key,
    size_t keylen, const void *in, size_t len)
{
	crypto_auth_hmacsha256_state	 st;
	struct hmac_cached		*hc = NULL;

	if (keylen == sizeof(hmac_cache[0].key)) {
		for (size_t i = 0; i < HMAC_CACHE && hc == NULL; i++)
			if (hmac_cache[i].used &&
			    sodium_memcmp(hmac_cache[i].key, key, keylen) == 0)
				hc = &hmac_cache[i];
		if (hc == NULL) {
			hc = &hmac_cache[hmac_next++ % HMAC_CACHE];
			memcpy(hc->key, key, keylen);
			crypto_auth_hmacsha256_init(&hc->st, key, keylen);
			hc->used = 1;
		}
		st = hc->st;
	} else
		crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, in, len);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

int
sec_equal(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}

size_t
b64url_len(size_t n)
{
	return sodium_base64_ENCODED_LEN(n,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void
b64url_encode(char *out, const unsigned char *in, size_t n)
{
	sodium_bin2base64(out, b64url_len(n), in, n,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static int
b64_decode_variant(unsigned char *out, size_t outmax, size_t *outlen,
    const char *in, size_t inlen, int variant)
{
	const char *end;

	/* libsodium rejects bad characters, non-zero padding bits and, with
	 * end checked, anything left over: the canonical form only. */
	if (sodium_base642bin(out, outmax, in, inlen, NULL, outlen, &end,
	    variant) != 0)
		return -1;
	return end == in + inlen ? 0 : -1;
}

int
b64url_decode(unsigned char *out, size_t outmax, size_t *outlen,
    const char *in, size_t inlen)
{
	return b64_decode_variant(out, outmax, outlen, in, inlen,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int
b64_decode(unsigned char *out, size_t outmax, size_t *outlen,
    const char *in, size_t inlen)
{
	return b64_decode_variant(out, outmax, outlen, in, inlen,
	    sodium_base64_VARIANT_ORIGINAL);
}

/*
 * Length of the well-formed UTF-8 sequence at p (RFC 3629 §4: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0.
 */
size_t
utf8_len(const unsigned char *p, size_t left)
{
	unsigned char	 lo = 0x80, hi = 0xbf;
	size_t		 n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;
		else if (p[0] == 0xed)
			hi = 0x9f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		if (p[0] == 0xf0)
			lo = 0x90;
		else if (p[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

int
utf8_valid(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 left = strlen(s), n;

	for (; left > 0; p += n, left -= n)
		if ((n = utf8_len(p, left)) == 0)
			return 0;
	return 1;
}

/*
 * base64url of public data (token parts) with tables: fast, and timing
 * that depends on the data, which is no secret.  The decoder takes what
 * b64url_decode() takes and nothing else (test_crypto compares them).
 */
static const char b64url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *
b64url_encode_public(char *out, const unsigned char *in, size_t n)
{
	size_t i;

	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];

		*out++ = b64url_chars[v >> 18];
		*out++ = b64url_chars[v >> 12 & 63];
		*out++ = b64url_chars[v >> 6 & 63];
		*out++ = b64url_chars[v & 63];
	}
	if (n - i == 1) {
		*out++ = b64url_chars[in[i] >> 2];
		*out++ = b64url_chars[(in[i] & 3) << 4];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];

		*out++ = b64url_chars[v >> 10];
		*out++ = b64url_chars[v >> 4 & 63];
		*out++ = b64url_chars[(v & 15) << 2];
	}
	return out;
}

/* base64url value of each byte, -1 for none (RFC 4648 §5). */
static const signed char b64url_values[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

int
b64url_decode_public(unsigned char *out, size_t outmax, size_t *outlen,
    const char *in, size_t inlen)
{
	const unsigned char	*p = (const unsigned char *)in;
	size_t			 i, n = 0, rest = inlen % 4;
	int32_t			 v;

	if (rest == 1 || inlen / 4 * 3 + (rest ? rest - 1 : 0) > outmax)
		return -1;
	/* Four characters to three bytes. */
	for (i = 0; i + 4 <= inlen; i += 4) {
		if ((b64url_values[p[i]] | b64url_values[p[i + 1]] |
		    b64url_values[p[i + 2]] | b64url_values[p[i + 3]]) < 0)
			return -1;
		v = (int32_t)b64url_values[p[i]] << 18 |
		    (int32_t)b64url_values[p[i + 1]] << 12 |
		    (int32_t)b64url_values[p[i + 2]] << 6 |
		    b64url_values[p[i + 3]];
		out[n++] = (unsigned char)(v >> 16);
		out[n++] = (unsigned char)(v >> 8);
		out[n++] = (unsigned char)v;
	}
	if (rest > 0) {
		v = 0;
		for (size_t j = 0; j < rest; j++) {
			if (b64url_values[p[i + j]] < 0)
				return -1;
			v = v << 6 | b64url_values[p[i + j]];
		}
		/* 2 characters: 12 bits, 1 byte; 3: 18 bits, 2 bytes.  The
		 * bits beyond must be zero. */
		if (rest == 2) {
			if (v & 0xf)
				return -1;
			out[n++] = (unsigned char)(v >> 4);
		} else {
			if (v & 0x3)
				return -1;
			out[n++] = (unsigned char)(v >> 10);
			out[n++] = (unsigned char)(v >> 2);
		}
	}
	*outlen = n;
	return 0;
}
