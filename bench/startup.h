/* hps_bench's startup case (bench/startup.c). */
#ifndef HPS_BENCH_STARTUP_H
#define HPS_BENCH_STARTUP_H

/* Launches jobs of 16 x 16 and 64 x 64 processes and prints, per shape,
 *   startup CONFIG start - - - p50_us max_us shm_MiB
 *   startup CONFIG total - - - p50_us max_us -
 * (start: from `hps launch` until every worker pushed, pulled and passed a
 * barrier; total: until hps launch exited; shm_MiB: the pages the job's
 * segment held then) and a "# startup CONFIG memory" line. 0, or 1 when a
 * job failed. */
int bench_startup(void);

#endif
