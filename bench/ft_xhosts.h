/* Failover across hosts for ft_bench (bench/ft_xhosts.c). */
#ifndef HPS_BENCH_FT_XHOSTS_H
#define HPS_BENCH_FT_XHOSTS_H

/* The worker program of the jobs (ft_bench --xworker FILE); its exit
 * status. */
int ft_xworker(const char *file);

/* Runs `repeats` jobs, one kill each (whole_host: every process of the
 * host, else its server alone), and prints one line
 *   failover 2H2S1WK1 kill|host - - - p50_us max_us
 * 0, or 1 when a job failed. */
int ft_xhosts(int repeats, int whole_host);

/* Runs `repeats` jobs with --restart-servers 1 on beta, whose server is
 * killed once the worker filled the table, and prints one line
 *   recover 2H2S1WK1 catchup MB/s keys/s - p50_us max_us
 * (the replacement's catch-up: bench/ft_xhosts.c). 0, or 1 on failure. */
int ft_xrecover(int repeats);

#endif
