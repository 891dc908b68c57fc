#include "runtime/cluster/remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Positional parameters: $1 the directory, $2 the host's name, then the
 * command. The launcher's input moves to fd 3 because a command that a
 * non-interactive shell starts with & gets /dev/null as its input before
 * any redirection of its own; only the watcher reads fd 3, and it is ended
 * once the command is, so it kills nothing afterwards. */
const char hpsi_remote_script[] =
	"d=$1 h=$2; shift 2\n"
	"cd -- \"$d\" 2>/dev/null || { echo \"hps launch: host $h has no directory $d: remote commands start in the "
	"launch directory, which must exist on every host\" >&2; exit 2; }\n"
	"exec 3<&0 </dev/null\n"
	"\"$@\" 3<&- &\n"
	"p=$!\n"
	"{ read -r w <&3; [ \"$w\" = stop ] || echo \"hps launch: host $h: standard input ended, stopping (HPS_RSH must "
	"pass the launcher's standard input on, as ssh without -n does)\" >&2; kill -TERM $p; } &\n"
	"w=$!\n"
	"exec 3<&-\n"
	"wait $p; r=$?\n"
	"kill $w 2>/dev/null\n"
	"exit $r\n";

static void reserve(struct hpsi_cmdline *c, size_t more)
{
	if (c->failed || c->len + more + 1 <= c->cap)
		return;
	size_t cap = c->cap ? c->cap : 1024;
	while (cap < c->len + more + 1) {
		if (cap > ((size_t)-1) / 2) {
			c->failed = 1;
			return;
		}
		cap *= 2;
	}
	char *p = realloc(c->p, cap);
	if (!p) {
		c->failed = 1;
		return;
	}
	c->p = p, c->cap = cap;
}

static void put(struct hpsi_cmdline *c, const char *s, size_t n)
{
	reserve(c, n);
	if (c->failed)
		return;
	memcpy(c->p + c->len, s, n);
	c->len += n;
	c->p[c->len] = 0;
}

void hpsi_cmdline_word(struct hpsi_cmdline *c, const char *word)
{
	put(c, "'", 1);
	for (const char *s = word; *s; s++) {
		const char *q = strchr(s, '\'');
		size_t n = q ? (size_t)(q - s) : strlen(s);
		put(c, s, n);
		if (!q)
			break;
		put(c, "'\\''", 4); /* close the quote, an escaped quote, reopen */
		s = q;
	}
	put(c, "' ", 2);
}

void hpsi_cmdline_free(struct hpsi_cmdline *c)
{
	free(c->p);
	*c = (struct hpsi_cmdline){0};
}

/* word with every "{host}" and "{name}" replaced */
static char *substitute(const char *word, const char *name, const char *addr)
{
	struct hpsi_cmdline c = {0};
	put(&c, "", 0);
	while (*word) {
		if (strncmp(word, "{host}", 6) == 0) {
			put(&c, addr, strlen(addr));
			word += 6;
		} else if (strncmp(word, "{name}", 6) == 0) {
			put(&c, name, strlen(name));
			word += 6;
		} else {
			put(&c, word++, 1);
		}
	}
	if (c.failed) {
		free(c.p);
		return NULL;
	}
	return c.p;
}

void hpsi_rsh_free(char **argv)
{
	if (!argv)
		return;
	for (char **a = argv; *a; a++)
		free(*a);
	free(argv);
}

char **hpsi_rsh_argv(const char *rsh, const char *name, const char *addr, const char *cmd)
{
	size_t n = strlen(rsh);
	/* at most one word per two characters, plus the command and NULL */
	char **argv = calloc(n / 2 + 3, sizeof *argv);
	char *word = malloc(n + 1);
	int k = 0;
	if (!argv || !word)
		goto nomem;
	const char *s = rsh;
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		if (!*s)
			break;
		size_t w = 0;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n') {
			if (*s == '\'') { /* literal up to the next quote */
				const char *e = strchr(s + 1, '\'');
				if (!e)
					goto unterminated;
				memcpy(word + w, s + 1, (size_t)(e - s - 1));
				w += (size_t)(e - s - 1);
				s = e + 1;
			} else if (*s == '"') { /* backslash escapes only \ " $ ` */
				for (s++; *s != '"'; s++) {
					if (!*s)
						goto unterminated;
					if (*s == '\\' && s[1] && strchr("\\\"$`", s[1]))
						s++;
					word[w++] = *s;
				}
				s++;
			} else if (*s == '\\') {
				if (!s[1])
					goto unterminated;
				word[w++] = s[1];
				s += 2;
			} else {
				word[w++] = *s++;
			}
		}
		word[w] = 0;
		if (!(argv[k] = substitute(word, name, addr[0] ? addr : name)))
			goto nomem;
		k++;
	}
	if (k == 0) {
		fprintf(stderr, "hps launch: HPS_RSH='%s' names no command\n", rsh);
		goto fail;
	}
	if (!(argv[k] = strdup(cmd)))
		goto nomem;
	free(word);
	return argv;
unterminated:
	fprintf(stderr, "hps launch: HPS_RSH='%s': a quote or backslash is not closed\n", rsh);
	goto fail;
nomem:
	fprintf(stderr, "hps launch: out of memory for the command of host %s\n", name);
fail:
	free(word);
	hpsi_rsh_free(argv);
	return NULL;
}

int hpsi_remote_passes(const char *entry, char *const *extra, int nextra)
{
	/* where this host's bridge listens and what it runs: set per host */
	static const char *const per_host[] = {"HPS_HOST=", "HPS_NODE_ADDR=", "HPS_LOCAL_", "HPS_ROLE=",
					       "HPS_RANK=", "DMLC_NODE_HOST=", "DMLC_ROLE=", "DMLC_RANK="};
	static const char *const always[] = {"LD_LIBRARY_PATH=", "OMP_NUM_THREADS=", "KMP_AFFINITY="};
	for (size_t i = 0; i < sizeof per_host / sizeof per_host[0]; i++)
		if (strncmp(entry, per_host[i], strlen(per_host[i])) == 0)
			return 0;
	if (strncmp(entry, "HPS_", 4) == 0 || strncmp(entry, "DMLC_", 5) == 0)
		return 1;
	for (size_t i = 0; i < sizeof always / sizeof always[0]; i++)
		if (strncmp(entry, always[i], strlen(always[i])) == 0)
			return 1;
	size_t n = strcspn(entry, "=");
	for (int i = 0; i < nextra; i++)
		if (strcspn(extra[i], "=") == n && strncmp(entry, extra[i], n) == 0) /* NAME or NAME=VALUE */
			return 1;
	return 0;
}

int hpsi_launch_dir(char *out, size_t cap)
{
	const char *pwd = getenv("PWD");
	struct stat a, b;
	if (pwd && pwd[0] == '/' && strlen(pwd) < cap && stat(pwd, &a) == 0 && stat(".", &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
		memcpy(out, pwd, strlen(pwd) + 1);
		return 0;
	}
	return getcwd(out, cap) ? 0 : -1;
}
