/* hps.Context: one process's membership of a job (hps_ctx). */
#include "hpsmod.h"

#include <structmember.h>

static int ctx_ready(hpspy_ctx *self, const char *what)
{
	if (self->closed) {
		hpspy_raise(HPS_ECLOSED, what);
		return -1;
	}
	return 0;
}

static void ctx_dealloc(hpspy_ctx *self)
{
	if (self->weaklist)
		PyObject_ClearWeakRefs((PyObject *)self);
	/* Nothing else can hold it now: workers and blocks keep it alive. */
	if (!self->closed && self->ctx) {
		hps_ctx *c = self->ctx;
		Py_BEGIN_ALLOW_THREADS
		hps_finalize(c);
		Py_END_ALLOW_THREADS
	}
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static int finalize_nogil(void *p) { return hps_finalize(p); }

static PyObject *ctx_close(hpspy_ctx *self, PyObject *unused)
{
	(void)unused;
	if (self->closed)
		Py_RETURN_NONE;
	if (self->views > 0) {
		PyObject *msg = PyUnicode_FromFormat(
			"close: %zd array(s) from Context.direct are still alive; delete them first", self->views);
		if (msg) {
			hpspy_raise(HPS_EINVAL, PyUnicode_AsUTF8(msg));
			Py_DECREF(msg);
		}
		return NULL;
	}
	while (self->worker) { /* a thread may open one while another closes */
		if (hpspy_worker_close(self->worker) < 0)
			return NULL;
	}
	self->closed = 1;
	hpspy_wait_users(&self->users);
	while (self->worker)
		if (hpspy_worker_close(self->worker) < 0)
			return NULL;
	int rc = hpspy_nogil(finalize_nogil, self->ctx);
	self->ctx = NULL;
	if (rc)
		return hpspy_raise(rc, "close");
	Py_RETURN_NONE;
}

static int barrier_nogil(void *p) { return hps_barrier(p); }

static PyObject *ctx_barrier(hpspy_ctx *self, PyObject *unused)
{
	(void)unused;
	if (ctx_ready(self, "barrier") < 0)
		return NULL;
	self->users++;
	int rc = hpspy_nogil(barrier_nogil, self->ctx);
	self->users--;
	if (rc)
		return hpspy_raise(rc, "barrier");
	Py_RETURN_NONE;
}

struct ckpt_call {
	hps_ctx *ctx;
	const char *dir;
	int load;
};

static int ckpt_nogil(void *p)
{
	struct ckpt_call *c = p;
	return c->load ? hps_load(c->ctx, c->dir) : hps_save(c->ctx, c->dir);
}

static PyObject *ckpt(hpspy_ctx *self, PyObject *arg, int load)
{
	const char *what = load ? "load" : "save";
	if (ctx_ready(self, what) < 0)
		return NULL;
	PyObject *path = NULL;
	if (!PyUnicode_FSConverter(arg, &path))
		return NULL;
	struct ckpt_call c = {self->ctx, PyBytes_AS_STRING(path), load};
	self->users++;
	int rc = hpspy_nogil(ckpt_nogil, &c);
	self->users--;
	Py_DECREF(path);
	if (rc < 0)
		return hpspy_raise(rc, what);
	if (load)
		return PyLong_FromLong(rc);
	Py_RETURN_NONE;
}

static PyObject *ctx_save(hpspy_ctx *self, PyObject *arg) { return ckpt(self, arg, 0); }
static PyObject *ctx_load(hpspy_ctx *self, PyObject *arg) { return ckpt(self, arg, 1); }

struct direct_call {
	hps_ctx *ctx;
	uint64_t key;
	hps_direct d;
};

static int direct_nogil(void *p)
{
	struct direct_call *c = p;
	return hps_direct_map(c->ctx, c->key, &c->d);
}

/* _direct(key) -> (block, first, count, width) */
static PyObject *ctx_direct(hpspy_ctx *self, PyObject *arg)
{
	if (ctx_ready(self, "direct") < 0)
		return NULL;
	if (!PyLong_Check(arg)) {
		PyErr_SetString(PyExc_TypeError, "key must be an int");
		return NULL;
	}
	struct direct_call c = {self->ctx, PyLong_AsUnsignedLongLong(arg), {0}};
	if (PyErr_Occurred()) {
		PyErr_SetString(PyExc_ValueError, "key must lie in 0 .. 2**64-1");
		return NULL;
	}
	self->users++;
	int rc = hpspy_nogil(direct_nogil, &c);
	self->users--;
	if (rc)
		return hpspy_raise(rc, "direct");
	if (!c.d.vals || c.d.count > (uint64_t)PY_SSIZE_T_MAX / sizeof(float) / (c.d.width ? c.d.width : 1))
		return hpspy_raise(HPS_EPROTO, "direct: range too large for this process");
	PyObject *b = hpspy_block_new(c.d.vals, (Py_ssize_t)(c.d.count * c.d.width * sizeof(float)), HPSPY_DIRECT,
				      (PyObject *)self);
	if (!b)
		return NULL;
	return Py_BuildValue("NKKI", b, (unsigned long long)c.d.first, (unsigned long long)c.d.count,
			     (unsigned)c.d.width);
}

static PyObject *ctx_enter(PyObject *self, PyObject *unused)
{
	(void)unused;
	Py_INCREF(self);
	return self;
}

static PyObject *ctx_exit(hpspy_ctx *self, PyObject *args)
{
	(void)args;
	return ctx_close(self, NULL);
}

#define CTX_INT(name, fn)                                                        \
	static PyObject *ctx_get_##name(hpspy_ctx *self, void *unused)          \
	{                                                                        \
		(void)unused;                                                    \
		if (ctx_ready(self, #name) < 0)                                  \
			return NULL;                                             \
		return PyLong_FromLong(fn(self->ctx));                           \
	}
CTX_INT(rank, hps_rank)
CTX_INT(role, hps_role)
CTX_INT(num_workers, hps_num_workers)
CTX_INT(num_servers, hps_num_servers)
CTX_INT(membership_epoch, hps_membership_epoch)

/* hps_resume_clock: the clock a restarted worker resumes from (0 otherwise). */
static PyObject *ctx_get_resume_clock(hpspy_ctx *self, void *unused)
{
	(void)unused;
	if (ctx_ready(self, "resume_clock") < 0)
		return NULL;
	uint32_t clock;
	int rc = hps_resume_clock(self->ctx, &clock);
	return rc ? hpspy_raise(rc, "resume_clock") : PyLong_FromUnsignedLong(clock);
}

static PyObject *ctx_get_closed(hpspy_ctx *self, void *unused)
{
	(void)unused;
	return PyBool_FromLong(self->closed);
}

static PyGetSetDef ctx_getset[] = {
	{"rank", (getter)ctx_get_rank, NULL, "This process's rank among the workers (or servers).", NULL},
	{"role", (getter)ctx_get_role, NULL, "ROLE_WORKER or ROLE_SERVER.", NULL},
	{"num_workers", (getter)ctx_get_num_workers, NULL,
	 "Worker ranks given out: launched plus joined (hps scale, HPS_JOIN), closed ones included.", NULL},
	{"membership_epoch", (getter)ctx_get_membership_epoch, NULL,
	 "Grows whenever a worker joins, closes or dies (hps_membership_epoch).", NULL},
	{"num_servers", (getter)ctx_get_num_servers, NULL, "Servers in the job.", NULL},
	{"resume_clock", (getter)ctx_get_resume_clock, NULL,
	 "Workers: the clock to resume from (hps launch --restart-workers) or a joiner's start clock; else 0.", NULL},
	{"closed", (getter)ctx_get_closed, NULL, "True once close() ran.", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef ctx_methods[] = {
	{"close", (PyCFunction)ctx_close, METH_NOARGS,
	 "Closes the worker, then leaves the job (hps_finalize). Refused while arrays from direct() live."},
	{"barrier", (PyCFunction)ctx_barrier, METH_NOARGS, "Waits until every worker called barrier()."},
	{"save", (PyCFunction)ctx_save, METH_O, "save(dir): checkpoints every server's table into dir."},
	{"load", (PyCFunction)ctx_load, METH_O, "load(dir) -> int: restores a checkpoint; returns the smallest clock."},
	{"_direct", (PyCFunction)ctx_direct, METH_O, "_direct(key) -> (block, first, count, width)."},
	{"_serve", (PyCFunction)hpspy_serve, METH_VARARGS, "_serve(call): runs the server loop."},
	{"__enter__", ctx_enter, METH_NOARGS, NULL},
	{"__exit__", (PyCFunction)ctx_exit, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static PyObject *ctx_new(PyTypeObject *t, PyObject *a, PyObject *k)
{
	(void)t, (void)a, (void)k;
	PyErr_SetString(PyExc_TypeError, "use hps.init() to make a Context");
	return NULL;
}

PyTypeObject hpspy_ctx_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "hps._hps.Context",
	.tp_basicsize = sizeof(hpspy_ctx),
	.tp_dealloc = (destructor)ctx_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = "A process's membership of an hps job; made by hps.init().",
	.tp_methods = ctx_methods,
	.tp_getset = ctx_getset,
	.tp_new = ctx_new,
	.tp_weaklistoffset = offsetof(hpspy_ctx, weaklist),
};
