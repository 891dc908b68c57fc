/* Names of the HPS_E* codes (include/hps/error.h). */
#include "hps/error.h"

const char *hps_strerror(int err)
{
	switch (err) {
	case HPS_OK: return "success";
	case HPS_EINVAL: return "invalid argument";
	case HPS_EKEYORDER: return "keys not sorted ascending or duplicated";
	case HPS_ENOKEY: return "key outside every server's key range";
	case HPS_ETOOBIG: return "request too large for the shared heap (raise HPS_HEAP_MB)";
	case HPS_ENOMEM: return "out of memory";
	case HPS_EEXIST: return "already exists or already running (the log says what)";
	case HPS_ENOSPC: return "no room left in the shared-memory file system (HPS_SHM_DIR) for the job's segment or heap";
	case HPS_ENOJOB: return "no such job on this host";
	case HPS_EPEERDEAD: return "a peer process died";
	case HPS_ETIMEDOUT: return "timed out (HPS_TIMEOUT_MS)";
	case HPS_ECLOSED: return "closed";
	case HPS_ECONFIG: return "wrong configuration";
	case HPS_EPROTO: return "malformed message";
	case HPS_ESYS: return "system call failed";
	case HPS_EHANDLER: return "server handler failed";
	case HPS_EVALLEN: return "value length differs from the stored one";
	case HPS_EUNTRACKED: return "request too old: its status is no longer kept";
	default: return "unknown error";
	}
}
