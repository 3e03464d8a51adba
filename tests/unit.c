#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <sodium.h>

#include "unit.h"

int
unit_run(const char *name, CU_TestInfo *tests)
{
	CU_SuiteInfo	 suites[] = { { name, NULL, NULL, NULL, NULL, tests },
			    CU_SUITE_INFO_NULL };
	unsigned	 run, failed;

	if (sec_init() == -1 || CU_initialize_registry() != CUE_SUCCESS ||
	    CU_register_suites(suites) != CUE_SUCCESS)
		return 99;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	/* CU_basic_run_tests() reports success even when tests fail. */
	run = CU_get_number_of_tests_run();
	failed = CU_get_number_of_tests_failed();
	printf("RESULT %s: %u passed, %u failed\n", name, run - failed,
	    failed);
	CU_cleanup_registry();
	return failed != 0 || run == 0;
}

char *
unit_tmpdir(void)
{
	const char	*base = getenv("TMPDIR");
	char		*d;

	if (asprintf(&d, "%s/crmauth-unit.XXXXXX", base ? base : "/tmp") ==
	    -1 || mkdtemp(d) == NULL)
		abort();
	return d;
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	return remove(path);
}

void
unit_rmtree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *
unit_write(const char *dir, const char *name, const char *text)
{
	char	*p;
	FILE	*f;

	if (asprintf(&p, "%s/%s", dir, name) == -1 ||
	    (f = fopen(p, "w")) == NULL)
		abort();
	fputs(text, f);
	fclose(f);
	return p;
}

void
unit_config(struct config *cfg, const char *dir)
{
	config_defaults(cfg);
	snprintf(cfg->db_path, sizeof(cfg->db_path), "%s/db", dir);
	cfg->db_map_size_mb = 8;
	cfg->argon2_memory_kib = 8192;
	cfg->argon2_iterations = 1;
}

static char *
b64u(const unsigned char *in, size_t n)
{
	size_t	 len = sodium_base64_ENCODED_LEN(n,
		    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char	*out = malloc(len);

	sodium_bin2base64(out, len, in, n,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return out;
}

char *
unit_sign(const char *header, const char *payload, const unsigned char *key,
    size_t keylen, int sha512)
{
	char		*h = b64u((const unsigned char *)header, strlen(header));
	char		*p = b64u((const unsigned char *)payload,
			    strlen(payload));
	char		*input, *sig, *out;
	unsigned char	 mac[64];
	size_t		 maclen = 32;

	if (asprintf(&input, "%s.%s", h, p) == -1)
		abort();
	if (sha512) {
		crypto_auth_hmacsha512_state st;

		crypto_auth_hmacsha512_init(&st, key, keylen);
		crypto_auth_hmacsha512_update(&st,
		    (unsigned char *)input, strlen(input));
		crypto_auth_hmacsha512_final(&st, mac);
		maclen = 64;
	} else
		sec_hmac256(mac, key, keylen, input, strlen(input));
	sig = b64u(mac, maclen);
	if (asprintf(&out, "%s.%s", input, sig) == -1)
		abort();
	free(h);
	free(p);
	free(input);
	free(sig);
	return out;
}
