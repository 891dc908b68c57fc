#include "examples/lib/options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ex_start(const char *prog, int *argc, char **argv, void (*usage)(void), hps_ctx **ctx)
{
	int local = 0;
	*ctx = NULL;
	for (int i = 1; i < *argc; i++) {
		local |= strcmp(argv[i], "--local") == 0 || strcmp(argv[i], "--local-batch") == 0;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage();
			return 0;
		}
	}
	int rc = local ? 0 : hps_init(ctx, argc, argv);
	if (rc) {
		fprintf(stderr, "%s: hps_init: %s\n", prog, hps_strerror(rc));
		return 1;
	}
	return -1;
}

/* A whole number 0 .. 2^30, or -1 (refused by ex_common_check). */
static int whole(const char *arg)
{
	char *end;
	long v = strtol(arg, &end, 10);
	return end != arg && !*end && v >= 0 && v <= 1 << 30 ? (int)v : -1;
}

int ex_common_option(int c, const char *arg, struct ex_options *o)
{
	switch (c) {
	case 't': o->train = arg; return 1;
	case 'T': o->test = arg; return 1;
	case 'n': o->name = arg; return 1;
	case 'r': o->reference = atof(arg); return 1;
	case 'e': o->epochs = atoi(arg); return 1;
	case 'b': o->batch = atoi(arg); return 1;
	case 'l': o->lr = atof(arg); return 1;
	case 'd': o->decay = atof(arg); return 1;
	case 'H': o->hogwild = 1; return 1;
	case 'L': o->local = 1; return 1;
	case 'g': o->target_loss = atof(arg); return 1;
	case 'v': o->csv = arg; return 1;
	case 's': o->seed = strtoull(arg, NULL, 10); return 1;
	case 'M': o->local_batch = 1; return 1;
	case 'u': o->updater = arg; return 1;
	case 'i': o->init = arg; return 1;
	case 'm': o->merge = whole(arg); return 1;
	default: return 0;
	}
}

int ex_common_check(const struct ex_options *o)
{
	if (o->hogwild + o->local + o->local_batch > 1) {
		fprintf(stderr, "--hogwild, --local and --local-batch are modes: choose one\n");
		return -1;
	}
	if (o->local_batch && !o->updater) {
		fprintf(stderr, "--local-batch needs the servers' optimizer: --updater SPEC (as hps launch --updater)\n");
		return -1;
	}
	if (!o->local_batch && (o->updater || o->init)) {
		fprintf(stderr, "--updater and --init belong to --local-batch; a job takes them from hps launch\n");
		return -1;
	}
	return o->train && o->test && o->epochs >= 1 && o->batch >= 1 && o->lr > 0 && o->decay >= 0 && o->merge >= 0
		       ? 0
		       : -1;
}
