/* Every setting name hps reads, so that a misspelt HPS_* variable or
 * --hps-name=value flag is reported (with the closest real name) instead of
 * being silently ignored. tests/check_settings.sh fails when the tree reads
 * a setting that this table lacks. */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "runtime/common/config.h"
#include "runtime/common/log.h"

extern char **environ;

/* Names without the HPS_ prefix. The last line's are read by the test and
 * example scripts, not by hps itself, but are HPS_ variables all the same. */
static const char *const known[] = {
	"ROLE", "RANK", "NUM_SERVERS", "NUM_WORKERS", "JOB_ID", "HOST",
	"RING_KB", "HEAP_MB", "TIMEOUT_MS", "SPIN_US", "KEY_RANGES", "DTYPE",
	"COMPRESS", "DIRECT", "UPDATER", "INIT", "STALENESS", "DETERMINISTIC", "REPLICAS", "FAILPOINT", "RESTART", "RESTART_WORKERS", "MAX_WORKERS", "MAX_SERVERS", "JOIN",
	"LOG", "LOG_RATE", "SHM_DIR", "ROOT_URI", "ROOT_PORT", "HEARTBEAT_MS", "DEAD_MS",
	"REGISTER_MS", "PORTS", "NODE_ADDR", "INTERFACE", "LOCAL_SERVERS",
	"LOCAL_WORKERS", "RSH", "GATHER_MS", "CURVE", "JOB_TOKEN",
	"BIN", "EXAMPLES", "TEST", "PREPARE", "OUT", "BUILD", "SANITIZE",
};
#define NKNOWN (sizeof known / sizeof known[0])

int hpsi_setting_known(const char *name, size_t len)
{
	for (size_t i = 0; i < NKNOWN; i++)
		if (strlen(known[i]) == len && strncmp(known[i], name, len) == 0)
			return 1;
	return 0;
}

/* Edit distance, case-insensitive (flags are lower case, names upper). */
static size_t distance(const char *a, size_t la, const char *b)
{
	size_t lb = strlen(b), row[64];
	if (la >= 63 || lb >= 63)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			int x = a[i - 1] == '-' ? '_' : toupper((unsigned char)a[i - 1]);
			size_t sub = diag + (x != toupper((unsigned char)b[j - 1]));
			size_t best = row[j] + 1 < row[j - 1] + 1 ? row[j] + 1 : row[j - 1] + 1;
			diag = row[j];
			row[j] = sub < best ? sub : best;
		}
	}
	return row[lb];
}

const char *hpsi_setting_closest(const char *name, size_t len)
{
	const char *best = NULL;
	size_t bd = SIZE_MAX;
	for (size_t i = 0; i < NKNOWN; i++) {
		size_t d = distance(name, len, known[i]);
		if (d < bd)
			bd = d, best = known[i];
	}
	/* a suggestion further off than a third of the name is noise */
	return best && bd <= 1 + len / 3 ? best : NULL;
}

void hpsi_setting_warn_unknown(const char *prefix, const char *name, size_t len)
{
	const char *near = hpsi_setting_closest(name, len);
	char alt[64] = "";
	if (near && strcmp(prefix, "--hps-") == 0) {
		size_t n = strlen(near);
		for (size_t i = 0; i < n && i + 1 < sizeof alt; i++)
			alt[i] = near[i] == '_' ? '-' : (char)(near[i] | 0x20);
		alt[n < sizeof alt ? n : sizeof alt - 1] = 0;
	} else if (near) {
		snprintf(alt, sizeof alt, "%s", near);
	}
	if (near)
		hpsi_warn("%s%.*s is no hps setting and is ignored; did you mean %s%s?", prefix, (int)len, name, prefix,
			  alt);
	else
		hpsi_warn("%s%.*s is no hps setting and is ignored", prefix, (int)len, name);
}

void hpsi_config_check_names(void)
{
	/* once per process: hps_init may run several times (tests, tools) */
	static atomic_int done;
	if (atomic_exchange_explicit(&done, 1, memory_order_relaxed))
		return;
	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, "HPS_", 4) != 0)
			continue;
		const char *name = *e + 4, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		if (!hpsi_setting_known(name, len))
			hpsi_setting_warn_unknown("HPS_", name, len);
	}
}
