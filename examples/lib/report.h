/* What the examples print: a progress bar on a terminal, one plain line
 * per epoch, a CSV of the run, and a final `result key=value ...` line
 * that scripts compare runs by. */
#ifndef HPS_EX_REPORT_H
#define HPS_EX_REPORT_H

#include <stdio.h>

struct report {
	const char *dataset, *mode, *metric; /* metric: test_accuracy, test_rmse */
	double reference;                    /* the published figure to compare with */
	int workers, epochs;
	double target_loss;                  /* 0: none */
	double time_to_target;               /* seconds when test loss first <= target */
	FILE *csv;
	int tty;
};

/* csv: path or NULL. Returns -1 (with a message) if it cannot be written. */
int report_open(struct report *r, const char *csv);
/* Redraws the progress bar (terminals only). */
void report_progress(struct report *r, int epoch, double fraction);
void report_epoch(struct report *r, int epoch, double seconds, double train_loss, double test_loss,
		  double metric, double updates_per_s);
/* The last line of the run. */
void report_result(struct report *r, double metric, double seconds, double updates_per_s);
void report_close(struct report *r);

/* The mode a run reports: local, local-batch, hogwild, or for server
 * modes the job's HPS_STALENESS as bsp, sspN or asp. */
const char *ex_mode_name(int hogwild, int local, int local_batch);

/* Monotonic seconds. */
double ex_now(void);

#endif
