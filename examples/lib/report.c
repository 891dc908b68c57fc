#include "examples/lib/report.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double ex_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int report_open(struct report *r, const char *csv)
{
	r->tty = isatty(STDERR_FILENO);
	r->time_to_target = -1;
	r->csv = NULL;
	if (!csv)
		return 0;
	if (!(r->csv = fopen(csv, "w"))) {
		fprintf(stderr, "cannot write %s\n", csv);
		return -1;
	}
	fprintf(r->csv, "dataset,mode,workers,epoch,seconds,train_loss,test_loss,%s,updates_per_s\n", r->metric);
	return 0;
}

void report_progress(struct report *r, int epoch, double fraction)
{
	if (!r->tty)
		return;
	int filled = (int)(fraction * 30);
	char bar[31];
	memset(bar, '=', (size_t)filled);
	memset(bar + filled, ' ', (size_t)(30 - filled));
	bar[30] = 0;
	fprintf(stderr, "\r[%s] epoch %d/%d %3.0f%%", bar, epoch, r->epochs, fraction * 100);
	fflush(stderr);
}

void report_epoch(struct report *r, int epoch, double seconds, double train_loss, double test_loss,
		  double metric, double updates_per_s)
{
	if (r->tty)
		fprintf(stderr, "\r%60s\r", "");
	if (r->target_loss > 0 && r->time_to_target < 0 && test_loss <= r->target_loss)
		r->time_to_target = seconds;
	printf("epoch %d/%d train_loss=%.4f test_loss=%.4f %s=%.4f seconds=%.3f updates_per_s=%.0f\n", epoch,
	       r->epochs, train_loss, test_loss, r->metric, metric, seconds, updates_per_s);
	fflush(stdout);
	if (r->csv)
		fprintf(r->csv, "%s,%s,%d,%d,%.4f,%.6f,%.6f,%.6f,%.0f\n", r->dataset, r->mode, r->workers, epoch,
			seconds, train_loss, test_loss, metric, updates_per_s);
}

void report_result(struct report *r, double metric, double seconds, double updates_per_s)
{
	printf("result dataset=%s mode=%s workers=%d %s=%.4f reference=%g seconds=%.3f updates_per_s=%.0f", r->dataset,
	       r->mode, r->workers, r->metric, metric, r->reference, seconds, updates_per_s);
	if (r->target_loss > 0) {
		if (r->time_to_target >= 0)
			printf(" target_loss=%g time_to_target=%.3f", r->target_loss, r->time_to_target);
		else
			printf(" target_loss=%g time_to_target=never", r->target_loss);
	}
	printf("\n");
	fflush(stdout);
}

void report_close(struct report *r)
{
	if (r->csv)
		fclose(r->csv);
	r->csv = NULL;
}

const char *ex_mode_name(int hogwild, int local, int local_batch)
{
	if (local)
		return "local";
	if (local_batch)
		return "local-batch";
	if (hogwild)
		return "hogwild";
	const char *s = getenv("HPS_STALENESS");
	if (!s || !*s || strcmp(s, "asp") == 0 || strcmp(s, "inf") == 0)
		return "asp";
	if (strcmp(s, "bsp") == 0 || strcmp(s, "0") == 0)
		return "bsp";
	static char name[32];
	snprintf(name, sizeof name, "ssp%s", s);
	return name;
}
