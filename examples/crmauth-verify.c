/*
 * crmauth-verify: check crmauth tokens in-process with libcrmauth.
 *
 *	crmauth-verify [-c FILE] TOKEN	one token: print the claims, exit 0
 *					if usable, else say why and exit 1
 *	crmauth-verify [-c FILE] -	one token per line of standard input,
 *					one answer line each: a long-lived
 *					process, as a real backend would be
 *
 * Build it on its own with:
 *	cc -o crmauth-verify crmauth-verify.c $(pkg-config --cflags --libs crmauth)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <crmauth.h>

static int
answer(struct crmauth *ca, const char *token, size_t len)
{
	struct crmauth_claims	 c;
	enum crmauth_status	 s;

	s = crmauth_verify(ca, token, len, &c);
	if (s == CRMAUTH_OK)
		printf("ok usr=%s org=%s oun=%s jti=%s exp=%lld\n", c.usr, c.org,
		    c.oun, c.jti, (long long)c.exp);
	else
		printf("refused %s\n", crmauth_strerror(s));
	fflush(stdout);
	return s == CRMAUTH_OK ? 0 : 1;
}

int
main(int argc, char *argv[])
{
	struct crmauth	*ca;
	const char	*conf = NULL;
	char		 err[1400], line[8192];
	int		 ch, rc = 0;

	while ((ch = getopt(argc, argv, "c:")) != -1) {
		if (ch != 'c') {
			fprintf(stderr, "usage: crmauth-verify [-c FILE] TOKEN|-\n");
			return 2;
		}
		conf = optarg;
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: crmauth-verify [-c FILE] TOKEN|-\n");
		return 2;
	}
	if ((ca = crmauth_open(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "crmauth-verify: %s\n", err);
		return 1;
	}
	if (strcmp(argv[optind], "-") != 0)
		rc = answer(ca, argv[optind], strlen(argv[optind]));
	else
		while (fgets(line, sizeof(line), stdin) != NULL) {
			line[strcspn(line, "\r\n")] = '\0';
			answer(ca, line, strlen(line));
		}
	crmauth_close(ca);
	return rc;
}
