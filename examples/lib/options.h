/* The command-line options every learning example takes. */
#ifndef HPS_EX_OPTIONS_H
#define HPS_EX_OPTIONS_H

#include <stdint.h>

#include "hps/hps.h"

struct ex_options {
	const char *train, *test, *csv, *name;
	const char *updater, *init; /* --local-batch: the optimizer and starting values */
	double reference, lr, decay, target_loss;
	int epochs, batch, hogwild, local, local_batch;
	int merge; /* hogwild: a key's own uses between merges of its copy; 0: no copies */
	uint64_t seed;
};

/* getopt_long entries of the common options (codes are their letters). */
#define EX_COMMON_LONGOPTS                                                                            \
	{"train", 1, 0, 't'}, {"test", 1, 0, 'T'}, {"name", 1, 0, 'n'}, {"reference", 1, 0, 'r'},       \
	{"epochs", 1, 0, 'e'}, {"batch", 1, 0, 'b'}, {"lr", 1, 0, 'l'}, {"decay", 1, 0, 'd'},           \
	{"hogwild", 0, 0, 'H'}, {"local", 0, 0, 'L'}, {"target-loss", 1, 0, 'g'}, {"csv", 1, 0, 'v'},   \
	{"seed", 1, 0, 's'}, {"local-batch", 0, 0, 'M'}, {"updater", 1, 0, 'u'}, {"init", 1, 0, 'i'}, \
	{"merge", 1, 0, 'm'}

#define EX_COMMON_USAGE                                                                               \
	"  --name NAME        data set name for the report\n"                                          \
	"  --reference X      the published figure to print beside ours\n"                             \
	"  --epochs E         passes over the data\n"                                                  \
	"  --batch B          mini-batch of the server modes\n"                                        \
	"  --lr LR            SGD step of hogwild and local\n"                                         \
	"  --decay D          step of epoch e is LR / (1 + D (e - 1)) (default 0)\n"                   \
	"  --hogwild          update the shared weights in place (needs hps launch --direct)\n"        \
	"  --merge N          hogwild: update own copies of the keys and add each one's change into\n"  \
	"                     the shared array after about N of this worker's uses of it\n"           \
	"                     (default 16; 0: update every key in place)\n"                          \
	"  --local            one process, no parameter server: per-example SGD\n"                      \
	"  --local-batch      one process, no parameter server: the server modes' mini-batches,\n"     \
	"                     order and optimizer (the baseline of the parameter server's overhead)\n" \
	"  --updater SPEC     --local-batch: the optimizer, as hps launch --updater takes it\n"         \
	"  --init SPEC        --local-batch: starting values, as hps launch --init (default zeros)\n"   \
	"  --target-loss L    report the time when the test loss first reaches L\n"                    \
	"  --csv FILE         per-epoch CSV (worker 0)\n"                                              \
	"  --seed S           shuffling seed (default 1)\n"

/* Joins the job, unless --local or --local-batch is among the arguments, before the options
 * are parsed (hps_init takes the --hps-name=value flags out of argv).
 * Returns -1 to go on, or the exit status: 0 after --help, 1 when joining
 * failed. */
int ex_start(const char *prog, int *argc, char **argv, void (*usage)(void), hps_ctx **ctx);

/* Takes option c (a getopt_long code) if it is a common one: 1, else 0. */
int ex_common_option(int c, const char *arg, struct ex_options *o);
/* 0 when the common options make sense together, else -1 (with a message
 * for each combination the usage does not make plain). */
int ex_common_check(const struct ex_options *o);

#endif
