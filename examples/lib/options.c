#include "examples/lib/options.h"

#include <stdlib.h>

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
	default: return 0;
	}
}

int ex_common_check(const struct ex_options *o)
{
	return o->train && o->test && o->epochs >= 1 && o->batch >= 1 && o->lr > 0 && o->decay >= 0 &&
			       !(o->hogwild && o->local)
		       ? 0
		       : -1;
}
