/* The learning examples on small fixed subsets of the real data sets
 * (tests/fixtures/, made by examples/fixtures.sh): every mode converges
 * below a stated training loss, HOGWILD direct mode reaches the accuracy
 * of the server mode, the in-process mini-batch baseline computes the
 * model of one worker with the servers, deterministic BSP repeats itself,
 * and the readers and the option parser refuse bad input with a clear
 * message. */
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "examples/lib/dataset.h"
#include "tests/harness.h"

#define FIX "tests/fixtures/"

/* Runs argv (NULL-terminated) with stdout and stderr captured into out;
 * returns the exit status, or -1 when it ran past 60 s (then killed). */
static int run_capture(char *const argv[], char *out, size_t cap)
{
	int fds[2];
	if (pipe(fds))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	size_t used = 0;
	for (;;) {
		struct pollfd pf = {.fd = fds[0], .events = POLLIN};
		if (poll(&pf, 1, 60000) <= 0)
			break;
		char sink[4096];
		size_t room = cap - 1 - used;
		ssize_t n = read(fds[0], room ? out + used : sink, room ? room : sizeof sink);
		if (n <= 0)
			break;
		if (room)
			used += (size_t)n;
	}
	out[used] = 0;
	close(fds[0]);
	return wait_exit(pid, 60000);
}

/* The value of `key=` in the last line starting with `prefix`. */
static double field(const char *out, const char *prefix, const char *key)
{
	const char *line = NULL;
	for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			line = p;
	if (!line)
		return NAN;
	char pat[64];
	snprintf(pat, sizeof pat, " %s=", key);
	const char *end = strchr(line, '\n'), *at = strstr(line, pat);
	if (!at || (end && at > end))
		return NAN;
	return atof(at + strlen(pat));
}

struct mode {
	const char *name;
	const char *launch[16]; /* hps launch options, NULL-terminated; local: none */
	const char *extra[8];   /* program options of the mode */
};

/* Runs one example in one mode; returns its output in out. */
static int run_mode(const char *example, const struct mode *m, const char *const *args, char *out, size_t cap)
{
	char prog[256];
	const char *argv[64];
	int n = 0;
	example_bin(example, prog, sizeof prog);
	if (m->launch[0]) {
		argv[n++] = hps_bin();
		argv[n++] = "launch";
		argv[n++] = "--no-prefix"; /* lines as the program prints them */
		for (int i = 0; m->launch[i]; i++)
			argv[n++] = m->launch[i];
	}
	argv[n++] = prog;
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	for (int i = 0; m->extra[i]; i++)
		argv[n++] = m->extra[i];
	argv[n] = NULL;
	int rc = run_capture((char *const *)argv, out, cap);
	if (rc != 0)
		fprintf(stderr, "%s %s exited %d:\n%s\n", example, m->name, rc, out);
	return rc;
}

#define SERVER_MODES(updater)                                                                               \
	{"bsp", {"-s", "2", "-w", "2", "--deterministic", "--staleness", "bsp", "--updater", updater, NULL}, {NULL}}, \
	{"ssp1", {"-s", "2", "-w", "2", "--staleness", "1", "--updater", updater, NULL}, {NULL}},             \
	{"asp", {"-s", "2", "-w", "2", "--staleness", "asp", "--updater", updater, NULL}, {NULL}}

static char out[1 << 16];

static void test_examples_sparse_lr_binary_in_every_mode(void)
{
	static const struct mode modes[] = {
		{"local", {NULL}, {"--local", "--lr", "1", NULL}},
		SERVER_MODES("adagrad:lr=0.5"),
		{"hogwild",
		 {"-s", "1", "-w", "2", "--key-ranges", "0-262144", "--direct", "1", "--updater", "sgd:lr=0.1", NULL},
		 {"--hogwild", "--lr", "1", NULL}},
		{"local-batch", {NULL}, {"--local-batch", "--updater", "adagrad:lr=0.5", NULL}},
		/* every key in place, no copies */
		{"hogwild-plain",
		 {"-s", "1", "-w", "2", "--key-ranges", "0-262144", "--direct", "1", "--updater", "sgd:lr=0.1", NULL},
		 {"--hogwild", "--lr", "1", "--merge", "0", NULL}},
	};
	const char *args[] = {"--train", FIX "spam_train.svm", "--test", FIX "spam_test.svm", "--log1p",
			      "--normalize", "--epochs", "10", NULL};
	double acc[7];
	for (int i = 0; i < 7; i++) {
		CU_ASSERT_EQUAL_FATAL(run_mode("sparse_lr", &modes[i], args, out, sizeof out), 0);
		double loss = field(out, "epoch 10/10", "train_loss");
		acc[i] = field(out, "result", "test_accuracy");
		/* from ln 2 = 0.69 at the start */
		if (!(loss < 0.25) || !(acc[i] >= 0.88))
			fprintf(stderr, "sparse_lr %s: train_loss %g, test_accuracy %g\n", modes[i].name, loss, acc[i]);
		CU_ASSERT(loss < 0.25);
		CU_ASSERT(acc[i] >= 0.88);
	}
	/* HOGWILD direct mode (with and without copies of the keys) against
	 * the BSP server mode */
	CU_ASSERT(fabs(acc[4] - acc[1]) <= 0.05);
	CU_ASSERT(fabs(acc[6] - acc[1]) <= 0.05);
}

static void test_examples_sparse_lr_multinomial_in_every_mode(void)
{
	static const struct mode modes[] = {
		{"local", {NULL}, {"--local", "--lr", "0.01", NULL}},
		SERVER_MODES("adagrad:lr=0.03"), /* larger steps overshoot now and then under ASP */
		{"hogwild",
		 {"-s", "1", "-w", "2", "--key-ranges", "0-784", "--direct", "10", "--updater", "sgd:lr=0.1", NULL},
		 {"--hogwild", "--lr", "0.01", NULL}},
		{"local-batch", {NULL}, {"--local-batch", "--updater", "adagrad:lr=0.03", NULL}},
		{"hogwild-plain",
		 {"-s", "1", "-w", "2", "--key-ranges", "0-784", "--direct", "10", "--updater", "sgd:lr=0.1", NULL},
		 {"--hogwild", "--lr", "0.01", "--merge", "0", NULL}},
	};
	const char *args[] = {"--train", FIX "fashion_train.svm", "--test", FIX "fashion_test.svm", "--epochs", "10",
			      NULL};
	double acc[7];
	for (int i = 0; i < 7; i++) {
		CU_ASSERT_EQUAL_FATAL(run_mode("sparse_lr", &modes[i], args, out, sizeof out), 0);
		double loss = field(out, "epoch 10/10", "train_loss");
		acc[i] = field(out, "result", "test_accuracy");
		/* from ln 10 = 2.30 at the start; SSP and ASP runs depend on timing
		 * (slow under the sanitizers), so the bound leaves room */
		if (!(loss < 1.0) || !(acc[i] >= 0.4))
			fprintf(stderr, "sparse_lr %s: train_loss %g, test_accuracy %g\n", modes[i].name, loss, acc[i]);
		CU_ASSERT(loss < 1.0);
		CU_ASSERT(acc[i] >= 0.4); /* 10 classes, 150 images: chance is 0.1 */
	}
	CU_ASSERT(fabs(acc[4] - acc[1]) <= 0.1);
	CU_ASSERT(fabs(acc[6] - acc[1]) <= 0.1);
}

static void test_examples_mf_in_every_mode(void)
{
	static const struct mode modes[] = {
		{"local", {NULL}, {"--local", NULL}},
		SERVER_MODES("sgd:lr=0.01"),
		{"hogwild",
		 {"-s", "1", "-w", "2", "--key-ranges", "0-400000", "--direct", "6", "--updater", "sgd:lr=0.01",
		  "--init", "normal:std=0.1,seed=1", NULL},
		 {"--hogwild", NULL}},
		{"local-batch", {NULL}, {"--local-batch", "--updater", "sgd:lr=0.01", "--init", "normal:std=0.1,seed=1", NULL}},
		{"hogwild-plain",
		 {"-s", "1", "-w", "2", "--key-ranges", "0-400000", "--direct", "6", "--updater", "sgd:lr=0.01",
		  "--init", "normal:std=0.1,seed=1", NULL},
		 {"--hogwild", "--merge", "0", NULL}},
	};
	const char *args[] = {"--train", FIX "movielens_train.csv", "--test", FIX "movielens_test.csv", "--epochs",
			      "20", "--factors", "5", "--batch", "16", NULL};
	double rmse[7];
	for (int i = 0; i < 7; i++) {
		CU_ASSERT_EQUAL_FATAL(run_mode("mf", &modes[i], args, out, sizeof out), 0);
		double train = field(out, "epoch 20/20", "train_loss"), test = field(out, "result", "test_rmse");
		/* the first epoch's training RMSE is about 1.05 */
		if (!(train < 0.9) || !(test < 1.1))
			fprintf(stderr, "mf %s: train rmse %g, test rmse %g\n", modes[i].name, train, test);
		CU_ASSERT(train < 0.9);
		CU_ASSERT(test < 1.1);
		rmse[i] = test;
	}
	/* HOGWILD, with and without copies, against BSP */
	CU_ASSERT(fabs(rmse[4] - rmse[1]) <= 0.05);
	CU_ASSERT(fabs(rmse[6] - rmse[1]) <= 0.05);
}

/* Deterministic BSP: two runs print the same losses and accuracies. */
static void test_examples_bsp_runs_repeat(void)
{
	static const struct mode bsp = {
		"bsp", {"-s", "2", "-w", "2", "--deterministic", "--staleness", "bsp", "--updater", "adagrad:lr=0.5", NULL},
		{NULL}};
	const char *args[] = {"--train", FIX "spam_train.svm", "--test", FIX "spam_test.svm", "--log1p",
			      "--normalize", "--epochs", "4", "--batch", "8", NULL};
	char first[4][160];
	for (int round = 0; round < 2; round++) {
		CU_ASSERT_EQUAL_FATAL(run_mode("sparse_lr", &bsp, args, out, sizeof out), 0);
		for (int e = 0; e < 4; e++) {
			char prefix[32], now[160];
			snprintf(prefix, sizeof prefix, "epoch %d/4", e + 1);
			CU_ASSERT(isfinite(field(out, prefix, "test_loss")));
			snprintf(now, sizeof now, "%.6f %.6f %.6f", field(out, prefix, "train_loss"),
				 field(out, prefix, "test_loss"), field(out, prefix, "test_accuracy"));
			if (round == 0)
				memcpy(first[e], now, sizeof now);
			else
				CU_ASSERT_STRING_EQUAL(now, first[e]);
		}
	}
}

/* Every epoch's figures of a run, as printed (the losses with 4 digits). */
static void epoch_lines(const char *out, int epochs, const char *metric, char lines[][160])
{
	for (int e = 0; e < epochs; e++) {
		char prefix[32];
		snprintf(prefix, sizeof prefix, "epoch %d/%d", e + 1, epochs);
		snprintf(lines[e], 160, "%.4f %.4f %.4f", field(out, prefix, "train_loss"), field(out, prefix, "test_loss"),
			 field(out, prefix, metric));
	}
}

/* The baseline of the server modes (--local-batch) runs their algorithm
 * without the server: it must print the very figures of one worker with
 * the servers (any staleness: one worker's pull follows its push), for
 * each example and optimizer, from the same starting values, with one
 * server (the worker's buffers are read and written in place) and two. */
static void test_examples_local_batch_is_one_worker_without_servers(void)
{
	static const struct {
		const char *example, *servers, *updater, *init, *metric, *args[12];
	} cases[] = {
		{"sparse_lr", "1", "adagrad:lr=0.5", NULL, "test_accuracy",
		 {"--train", FIX "spam_train.svm", "--test", FIX "spam_test.svm", "--log1p", "--normalize", "--batch", "8", NULL}},
		{"sparse_lr", "2", "ftrl:alpha=1,l1=0.0001", NULL, "test_accuracy",
		 {"--train", FIX "fashion_train.svm", "--test", FIX "fashion_test.svm", NULL}},
		{"mf", "1", "adam:lr=0.01", "normal:std=0.1,seed=1", "test_rmse",
		 {"--train", FIX "movielens_train.csv", "--test", FIX "movielens_test.csv", "--factors", "5", "--batch",
		  "16", NULL}},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct mode job = {"asp",
				   {"-s", cases[c].servers, "-w", "1", "--staleness", "asp", "--updater", cases[c].updater, NULL},
				   {"--epochs", "3", NULL}};
		struct mode local = {"local-batch", {NULL}, {"--local-batch", "--updater", cases[c].updater, "--epochs", "3", NULL}};
		if (cases[c].init) {
			job.launch[8] = "--init", job.launch[9] = cases[c].init, job.launch[10] = NULL;
			local.extra[5] = "--init", local.extra[6] = cases[c].init, local.extra[7] = NULL;
		}
		char want[3][160], got[3][160];
		CU_ASSERT_EQUAL_FATAL(run_mode(cases[c].example, &job, cases[c].args, out, sizeof out), 0);
		epoch_lines(out, 3, cases[c].metric, want);
		CU_ASSERT_EQUAL_FATAL(run_mode(cases[c].example, &local, cases[c].args, out, sizeof out), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "mode=local-batch"));
		epoch_lines(out, 3, cases[c].metric, got);
		for (int e = 0; e < 3; e++) {
			CU_ASSERT_STRING_EQUAL(got[e], want[e]);
			CU_ASSERT_PTR_NULL(strstr(got[e], "nan"));
		}
	}
}

/* Options that do not go together, and specs that do not parse, are
 * refused with a message (exit status 2) before any data is read. */
static void test_examples_refuse_bad_mode_options(void)
{
	static const struct {
		const char *example;
		const char *args[6];
		int status;
		const char *words;
	} cases[] = {
		{"sparse_lr", {"--local-batch", NULL}, 2, "--updater"},
		{"sparse_lr", {"--local-batch", "--updater", "sum", NULL}, 2, "optimizer"},
		{"mf", {"--local-batch", "--updater", "ftrl", NULL}, 2, "optimizer"},
		{"sparse_lr", {"--local-batch", "--updater", "adagrad:lr=x", NULL}, 2, "lr=x must be a number"},
		{"mf", {"--local-batch", "--updater", "sgd", "--init", "normal:sd=1", NULL}, 2, "no parameter 'sd'"},
		{"sparse_lr", {"--local", "--updater", "sgd", NULL}, 2, "belong to --local-batch"},
		{"mf", {"--local", "--local-batch", "--updater", "sgd", NULL}, 2, "choose one"},
		/* --merge takes a whole number 0 .. 2^30 */
		{"sparse_lr", {"--local", "--merge", "-1", NULL}, 2, "--merge N"},
		{"sparse_lr", {"--local", "--merge", "x", NULL}, 2, "--merge N"},
		{"sparse_lr", {"--local", "--merge", "12x", NULL}, 2, "--merge N"},
		{"sparse_lr", {"--local", "--merge", "", NULL}, 2, "--merge N"},
		{"mf", {"--local", "--merge", "2000000000", NULL}, 2, "--merge N"},
	};
	char prog[256];
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		const char *argv[16];
		int n = 0;
		argv[n++] = example_bin(cases[c].example, prog, sizeof prog);
		int svm = strcmp(cases[c].example, "sparse_lr") == 0;
		argv[n++] = "--train", argv[n++] = svm ? FIX "spam_train.svm" : FIX "movielens_train.csv";
		argv[n++] = "--test", argv[n++] = svm ? FIX "spam_test.svm" : FIX "movielens_test.csv";
		for (int i = 0; cases[c].args[i]; i++)
			argv[n++] = cases[c].args[i];
		argv[n] = NULL;
		int rc = run_capture((char *const *)argv, out, sizeof out);
		if (rc != cases[c].status || !strstr(out, cases[c].words))
			fprintf(stderr, "case %zu: exit %d (want %d), output: %s\n", c, rc, cases[c].status, out);
		CU_ASSERT_EQUAL(rc, cases[c].status);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, cases[c].words));
		CU_ASSERT_PTR_NULL(strstr(out, "result "));
	}
}

/* ---- readers --------------------------------------------------------- */

static char path[256];

static void write_file(const char *text, size_t len)
{
	snprintf(path, sizeof path, "/tmp/hps-reader-%d.txt", (int)getpid());
	FILE *f = fopen(path, "w");
	fwrite(text, 1, len, f);
	fclose(f);
}

/* The reader refuses `text`, naming the file and line. */
static void svm_refused(const char *text, size_t len, int line, const char *words)
{
	write_file(text, len);
	struct sparse_set s;
	char err[512], where[300];
	CU_ASSERT_EQUAL(sparse_read(path, 0, 1, &s, err, sizeof err), -1);
	snprintf(where, sizeof where, "%s:%d:", path, line);
	if (!strstr(err, where) || !strstr(err, words))
		fprintf(stderr, "unexpected reader error: %s (wanted %s ... %s)\n", err, where, words);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, where));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, words));
}

static void csv_refused(const char *text, int line, const char *words)
{
	write_file(text, strlen(text));
	struct rating *r;
	size_t n;
	char err[512], where[300];
	CU_ASSERT_EQUAL(ratings_read(path, 0, 1, &r, &n, err, sizeof err), -1);
	snprintf(where, sizeof where, "%s:%d:", path, line);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, where));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, words));
	CU_ASSERT_PTR_NULL(r);
}

#define SVM(t, line, words) svm_refused(t, sizeof(t) - 1, line, words)

static void test_examples_readers_refuse_malformed_input(void)
{
	SVM("1 1:1\n0 3:1 2:1\n", 2, "ascend");
	SVM("1 2:1 2:1\n", 1, "ascend");
	SVM("1 0:1\n", 1, "id from 1");
	SVM("1 1:1\n1 -4:1\n", 2, "id from 1");
	SVM("1 3:\n", 1, "no finite value");
	SVM("1 3:nan\n", 1, "no finite value");
	SVM("1 3:1e99\n", 1, "no finite value");
	SVM("1 3:1x\n", 1, "no finite value");
	SVM("1 3\n", 1, "id:value");
	SVM("x 1:1\n", 1, "label");
	SVM("-1 1:1\n", 1, "label");
	SVM("1.5 1:1\n", 1, "label");
	SVM("1 1:1\n\n0 2:1\n", 2, "empty line");
	SVM("1 1:1\n0 2:\0\n", 2, "NUL");
	write_file("", 0);
	struct sparse_set s;
	char err[512];
	CU_ASSERT_EQUAL(sparse_read(path, 0, 1, &s, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no rows"));
	CU_ASSERT_EQUAL(sparse_read("/nonexistent/x.svm", 0, 1, &s, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "make data"));

	csv_refused("user,item,rating\n1,2,3\n1,2\n", 3, "user,item,rating");
	csv_refused("1,2,x\n", 1, "finite");
	csv_refused("1,2,inf\n", 1, "finite");
	csv_refused("-1,2,3\n", 1, "integer ids");
	csv_refused("1,b,3\n", 1, "integer ids");

	/* a good file: shards take every other row; the feature and label
	 * ranges cover the whole file, so all workers agree on them */
	const char good[] = "1 1:0.5 7:2\n0 2:1\n2 3:1 9:4\n0 4:1\n1 5:1\n";
	write_file(good, sizeof good - 1);
	CU_ASSERT_EQUAL_FATAL(sparse_read(path, 1, 2, &s, err, sizeof err), 0);
	CU_ASSERT_EQUAL(s.rows, 2);
	CU_ASSERT_EQUAL(s.file_rows, 5);
	CU_ASSERT_EQUAL(s.max_feature, 9);
	CU_ASSERT_EQUAL(s.max_label, 2);
	CU_ASSERT_EQUAL(s.label[0], 0);
	CU_ASSERT_EQUAL(s.idx[s.start[1]], 4);
	sparse_free(&s);

	/* the program says where, and fails */
	SVM("1 1:1\n0 3:1 2:1\n", 2, "ascend");
	char prog[256];
	example_bin("sparse_lr", prog, sizeof prog);
	char *const argv[] = {prog, "--local", "--train", path, "--test", path, NULL};
	CU_ASSERT_EQUAL(run_capture(argv, out, sizeof out), 1);
	char where[300];
	snprintf(where, sizeof where, "%s:2:", path);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, where));
	unlink(path);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_examples_readers_refuse_malformed_input", test_examples_readers_refuse_malformed_input},
		{"test_examples_sparse_lr_binary_in_every_mode", test_examples_sparse_lr_binary_in_every_mode},
		{"test_examples_sparse_lr_multinomial_in_every_mode", test_examples_sparse_lr_multinomial_in_every_mode},
		{"test_examples_mf_in_every_mode", test_examples_mf_in_every_mode},
		{"test_examples_bsp_runs_repeat", test_examples_bsp_runs_repeat},
		{"test_examples_local_batch_is_one_worker_without_servers",
		 test_examples_local_batch_is_one_worker_without_servers},
		{"test_examples_refuse_bad_mode_options", test_examples_refuse_bad_mode_options},
		{NULL, NULL},
	};
	return run_suite("examples", cases);
}
