#include "net/wire.h"

#include <string.h>

#include "hps/error.h"
#include "runtime/common/config.h"

uint64_t hpsi_settings_hash(const char *name)
{
	const char *v = hpsi_setting(name);
	uint64_t h = 1469598103934665603ull;
	for (const char *p = v ? v : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return v ? h : 0;
}

int hpsi_batch_open(struct hpsi_batch_reader *r, const void *buf, size_t len, const char **why)
{
	memset(r, 0, sizeof *r);
	struct hpsi_batch_hdr h;
	if (len < sizeof h) {
		*why = "batch frame shorter than its header";
		return -1;
	}
	memcpy(&h, buf, sizeof h);
	if (h.magic != HPSI_BATCH_MAGIC) {
		*why = "batch frame with a bad magic";
		return -1;
	}
	if (h.version != HPSI_WIRE_VERSION) {
		*why = "batch frame of another version";
		return -1;
	}
	if (h.flags & ~(uint16_t)HPSI_REC_VALS_FRAME) {
		*why = "batch frame with unknown flags";
		return -1;
	}
	/* every record takes at least its header: a count that cannot fit is a lie */
	if (h.count == 0 || h.count > (len - sizeof h) / sizeof(struct hpsi_rec_hdr)) {
		*why = "batch count does not fit the frame";
		return -1;
	}
	if ((h.flags & HPSI_REC_VALS_FRAME) && h.count != 1) {
		*why = "a record with a value frame must be alone in its batch";
		return -1;
	}
	r->buf = buf;
	r->len = len;
	r->at = sizeof h;
	r->left = h.count;
	r->from = h.from;
	r->vals_frame = (h.flags & HPSI_REC_VALS_FRAME) != 0;
	return 0;
}

int hpsi_batch_next(struct hpsi_batch_reader *r, struct hpsi_rec_hdr *rec, const void **msg, const char **why)
{
	if (r->left == 0) {
		if (r->at != r->len) {
			*why = "bytes after the last record";
			return -1;
		}
		return 0;
	}
	if (r->len - r->at < sizeof *rec) {
		*why = "record header cut short";
		return -1;
	}
	memcpy(rec, r->buf + r->at, sizeof *rec);
	uint32_t known = HPSI_REC_VALS_FRAME | HPSI_REC_FORWARD | HPSI_REC_FENCE | HPSI_REC_SYNC | HPSI_REC_HANDBACK |
			 HPSI_REC_RESET;
	if (rec->flags & ~known || ((rec->flags & HPSI_REC_VALS_FRAME) != 0) != (r->vals_frame != 0) ||
	    (rec->flags & HPSI_REC_SYNC && !(rec->flags & HPSI_REC_FORWARD)) ||
	    (rec->flags & (HPSI_REC_FORWARD | HPSI_REC_FENCE | HPSI_REC_HANDBACK) && r->vals_frame) ||
	    (rec->flags & HPSI_REC_FORWARD && rec->flags & HPSI_REC_FENCE) ||
	    (rec->flags & HPSI_REC_HANDBACK && rec->flags != HPSI_REC_HANDBACK) ||
	    (rec->flags & HPSI_REC_RESET && (rec->flags != HPSI_REC_RESET || r->vals_frame))) {
		*why = "record flags disagree with the batch";
		return -1;
	}
	size_t room = r->len - r->at - sizeof *rec;
	if (rec->len > room || hpsi_batch_rec_bytes(rec->len) - sizeof *rec > room) {
		*why = "record longer than the rest of the frame";
		return -1;
	}
	*msg = r->buf + r->at + sizeof *rec;
	r->at += hpsi_batch_rec_bytes(rec->len);
	r->left--;
	return 1;
}

void hpsi_sched_init(struct hpsi_sched_hdr *h, int type, uint32_t host)
{
	h->magic = HPSI_SCHED_MAGIC;
	h->version = HPSI_WIRE_VERSION;
	h->type = (uint16_t)type;
	h->host = host;
	h->gen = 0;
}

static int terminated(const char *s, size_t cap)
{
	return memchr(s, 0, cap) != NULL;
}

/* A host name goes into log lines and file names: printable, no '/'. */
static int name_ok(const char *s, size_t cap)
{
	if (!terminated(s, cap) || !s[0])
		return 0;
	for (const char *p = s; *p; p++)
		if (*p <= ' ' || *p > '~' || *p == '/')
			return 0;
	return 1;
}

/* tcp://ADDRESS:PORT, as a bridge binds it: every bridge connects there,
 * and ZeroMQ refusing an endpoint would stop the bridge. */
static int endpoint_ok(const char *s, size_t cap)
{
	if (!terminated(s, cap) || strncmp(s, "tcp://", 6) != 0)
		return 0;
	const char *colon = strrchr(s, ':'), *p;
	if (colon <= s + 6 || !colon[1] || strlen(colon + 1) > 5)
		return 0;
	unsigned long port = 0;
	for (p = colon + 1; *p >= '0' && *p <= '9'; p++)
		port = port * 10 + (unsigned long)(*p - '0');
	if (*p || port == 0 || port > 65535)
		return 0;
	for (p = s + 6; p < colon; p++)
		if (*p <= ' ' || *p > '~')
			return 0;
	return 1;
}

/* A checkpoint message: a step its type may carry, a known code where one
 * may be, strings terminated, and a directory named from the root where
 * the servers are to open it. */
static int ckpt_ok(const struct hpsi_sched_ckpt *m)
{
	int asks = m->h.type == HPSI_SCH_CKPT || m->h.type == HPSI_SCH_CKPT_END;
	int op_ok = asks ? m->op == HPSI_CKPT_SAVE || m->op == HPSI_CKPT_LOAD
			 : m->op == HPSI_CKPT_SAVE || (m->op >= HPSI_CKPT_PREPARE && m->op <= HPSI_CKPT_ABORT) ||
				   (m->h.type == HPSI_SCH_CKPT_RUN && m->op == HPSI_CKPT_UNLOCK);
	int answers = m->h.type == HPSI_SCH_CKPT_DONE || m->h.type == HPSI_SCH_CKPT_END;
	int status_ok = answers ? m->status <= 0 && m->status >= HPS_EUNTRACKED : m->status == 0;
	int needs_dir = m->h.type == HPSI_SCH_CKPT || m->h.type == HPSI_SCH_CKPT_RUN;
	return op_ok && status_ok && terminated(m->dir, sizeof m->dir) && terminated(m->why, sizeof m->why) &&
	       (!needs_dir || m->dir[0] == '/');
}

int hpsi_sched_check(const void *buf, size_t len, const char **why)
{
	struct hpsi_sched_hdr h;
	if (len < sizeof h) {
		*why = "scheduler message shorter than its header";
		return -1;
	}
	memcpy(&h, buf, sizeof h);
	if (h.magic != HPSI_SCHED_MAGIC || h.version != HPSI_WIRE_VERSION) {
		*why = "scheduler message with a bad magic or version";
		return -1;
	}
	size_t want;
	switch (h.type) {
	case HPSI_SCH_REGISTER: want = sizeof(struct hpsi_sched_register); break;
	case HPSI_SCH_ASSIGN: want = sizeof(struct hpsi_sched_assign); break;
	case HPSI_SCH_HEARTBEAT:
	case HPSI_SCH_STATES: want = sizeof(struct hpsi_sched_states); break;
	case HPSI_SCH_BARRIER:
	case HPSI_SCH_RELEASE:
	case HPSI_SCH_EXPIRED:
	case HPSI_SCH_BYE: want = sizeof(struct hpsi_sched_hdr); break;
	case HPSI_SCH_BROKEN: want = sizeof(struct hpsi_sched_broken); break;
	case HPSI_SCH_ABORT: want = sizeof(struct hpsi_sched_abort); break;
	case HPSI_SCH_CKPT:
	case HPSI_SCH_CKPT_RUN:
	case HPSI_SCH_CKPT_DONE:
	case HPSI_SCH_CKPT_END: want = sizeof(struct hpsi_sched_ckpt); break;
	default: *why = "scheduler message of an unknown type"; return -1;
	}
	if (len != want) {
		*why = "scheduler message of the wrong size for its type";
		return -1;
	}
	if (h.type == HPSI_SCH_REGISTER) {
		const struct hpsi_sched_register *m = buf;
		if (!name_ok(m->name, sizeof m->name) || !endpoint_ok(m->endpoint, sizeof m->endpoint) ||
		    m->nservers > HPSI_MAX_NODES || m->nworkers > HPSI_MAX_NODES ||
		    m->total_servers > HPSI_MAX_NODES || m->total_workers > HPSI_MAX_NODES) {
			*why = "registration with a bad name, endpoint or count";
			return -1;
		}
	} else if (h.type == HPSI_SCH_ASSIGN) {
		const struct hpsi_sched_assign *m = buf;
		if (m->nhosts == 0 || m->nhosts > HPSI_MAX_HOSTS || h.host >= m->nhosts || m->nservers < 1 ||
		    m->nworkers < 1 || (uint64_t)m->nservers + m->nworkers > HPSI_MAX_NODES || m->launched > m->nworkers ||
		    m->launched_servers > m->nservers) {
			*why = "assignment with bad counts";
			return -1;
		}
		for (uint32_t i = 0; i < m->nhosts; i++) {
			const struct hpsi_host_entry *e = &m->hosts[i];
			/* servers host after host, all of them: the placement of
			 * replicas is laid out from that table (shm/place.h) */
			/* (no endpoint: a host that joins later, not yet there) */
			if (!name_ok(e->name, sizeof e->name) ||
			    (e->endpoint[0] ? !endpoint_ok(e->endpoint, sizeof e->endpoint) : i + 1 != m->nhosts) ||
			    e->srv_lo > e->srv_hi || e->srv_hi > m->nservers || e->wrk_lo > e->wrk_hi ||
			    e->wrk_hi > m->nworkers || e->srv_lo != (i ? m->hosts[i - 1].srv_hi : 0) ||
			    (i + 1 == m->nhosts && e->srv_hi != m->nservers)) {
				*why = "assignment with a bad host entry";
				return -1;
			}
		}
	} else if (h.type == HPSI_SCH_HEARTBEAT || h.type == HPSI_SCH_STATES) {
		const struct hpsi_sched_states *m = buf;
		if (m->nnodes > HPSI_MAX_NODES) {
			*why = "states of too many nodes";
			return -1;
		}
		for (uint32_t i = 0; i < m->nnodes; i++)
			if (m->state[i] > HPSI_NODE_DEAD && m->state[i] != HPSI_NODE_RESTARTING &&
			    m->state[i] != HPSI_NODE_JOINING) { /* a replacement server copying its ranges */
				*why = "unknown node state";
				return -1;
			}
	} else if (h.type == HPSI_SCH_BROKEN) {
		const struct hpsi_sched_broken *m = buf;
		if (m->code != HPS_EPEERDEAD && m->code != HPS_ETIMEDOUT && m->code != HPS_ECLOSED) {
			*why = "barrier failure with an unknown code";
			return -1;
		}
	} else if (h.type >= HPSI_SCH_CKPT && h.type <= HPSI_SCH_CKPT_END) {
		const struct hpsi_sched_ckpt *m = buf;
		if (!ckpt_ok(m)) {
			*why = "checkpoint message with a bad step, code or directory";
			return -1;
		}
	} else if (h.type == HPSI_SCH_ABORT) {
		const struct hpsi_sched_abort *m = buf;
		if (!terminated(m->reason, sizeof m->reason)) {
			*why = "abort reason not terminated";
			return -1;
		}
	}
	return 0;
}
