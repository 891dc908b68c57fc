/* The _hps module: errors as exceptions, hps_init, and the type table. */
#include "hpsmod.h"

#include <time.h>

static PyObject *error_base;   /* hps.Error */
static PyObject *error_by_code; /* {code: subclass} */

PyObject *hpspy_raise(int code, const char *what)
{
	PyObject *cls = NULL;
	if (error_by_code) {
		PyObject *key = PyLong_FromLong(code);
		if (!key)
			return NULL;
		cls = PyDict_GetItemWithError(error_by_code, key); /* borrowed */
		Py_DECREF(key);
		if (!cls && PyErr_Occurred())
			return NULL;
	}
	if (!cls)
		cls = error_base ? error_base : PyExc_RuntimeError;
	PyObject *exc = PyObject_CallFunction(cls, "iss", code, what, hps_strerror(code));
	if (exc) {
		PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
		Py_DECREF(exc);
	}
	return NULL;
}

int hpspy_nogil(int (*fn)(void *), void *arg)
{
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = fn(arg);
	Py_END_ALLOW_THREADS
	return rc;
}

void hpspy_wait_users(int *users)
{
	/* Other threads drop *users once they hold the GIL again; sleeping
	 * without it lets them. Such calls end (every hps call is bounded). */
	while (*users > 0) {
		Py_BEGIN_ALLOW_THREADS
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
		Py_END_ALLOW_THREADS
	}
}

static PyObject *set_errors(PyObject *mod, PyObject *args)
{
	(void)mod;
	PyObject *base, *map;
	if (!PyArg_ParseTuple(args, "OO!", &base, &PyDict_Type, &map))
		return NULL;
	if (!PyType_Check(base) || !PyType_IsSubtype((PyTypeObject *)base, (PyTypeObject *)PyExc_Exception)) {
		PyErr_SetString(PyExc_TypeError, "base must be an Exception subclass");
		return NULL;
	}
	Py_INCREF(base);
	Py_INCREF(map);
	Py_XSETREF(error_base, base);
	Py_XSETREF(error_by_code, map);
	Py_RETURN_NONE;
}

static PyObject *py_strerror(PyObject *mod, PyObject *arg)
{
	(void)mod;
	int overflow;
	long code = PyLong_AsLongAndOverflow(arg, &overflow);
	if (code == -1 && PyErr_Occurred())
		return NULL;
	if (overflow || code < INT32_MIN || code > INT32_MAX)
		code = INT32_MIN; /* names no code: hps_strerror says so */
	return PyUnicode_FromString(hps_strerror((int)code));
}

struct init_call {
	hps_ctx *ctx;
	int argc;
	char **argv;
};

static int init_nogil(void *p)
{
	struct init_call *c = p;
	return hps_init(&c->ctx, c->argv ? &c->argc : NULL, c->argv);
}

/* init(argv=None): argv, a list of str, loses the --hps-name=value
 * arguments hps_init consumes (in place). */
static PyObject *py_init(PyObject *mod, PyObject *args, PyObject *kw)
{
	(void)mod;
	static char *names[] = {"argv", "cls", NULL};
	PyObject *argv = Py_None;
	PyTypeObject *cls = &hpspy_ctx_type;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO!:init", names, &argv, &PyType_Type, &cls))
		return NULL;
	if (!PyType_IsSubtype(cls, &hpspy_ctx_type)) {
		PyErr_SetString(PyExc_TypeError, "cls must be a subclass of Context");
		return NULL;
	}
	if (argv != Py_None && !PyList_Check(argv)) {
		PyErr_SetString(PyExc_TypeError, "argv must be a list of str or None");
		return NULL;
	}
	struct init_call c = {0};
	PyObject *items = NULL; /* the encoded strings, kept while C reads them */
	if (argv != Py_None) {
		Py_ssize_t n = PyList_GET_SIZE(argv);
		if (n > INT32_MAX - 1 || !(items = PyList_New(n)) ||
		    !(c.argv = PyMem_Calloc((size_t)n + 1, sizeof *c.argv))) {
			Py_XDECREF(items);
			return PyErr_Occurred() ? NULL : PyErr_NoMemory();
		}
		for (Py_ssize_t i = 0; i < n; i++) {
			PyObject *s = PyList_GET_ITEM(argv, i);
			PyObject *b = PyUnicode_Check(s) ? PyUnicode_EncodeFSDefault(s) : NULL;
			if (!b) {
				if (!PyErr_Occurred())
					PyErr_Format(PyExc_TypeError, "argv[%zd] must be str", i);
				Py_DECREF(items);
				PyMem_Free(c.argv);
				return NULL;
			}
			PyList_SET_ITEM(items, i, b);
			c.argv[i] = PyBytes_AS_STRING(b);
		}
		c.argc = (int)n;
	}
	int rc = hpspy_nogil(init_nogil, &c);
	if (!rc && c.argv) {
		/* Keep the arguments hps_init left, in their order. */
		PyObject *left = PyList_New(0);
		for (int i = 0; left && i < c.argc; i++) {
			PyObject *s = PyUnicode_DecodeFSDefault(c.argv[i]);
			if (!s || PyList_Append(left, s) < 0)
				Py_CLEAR(left);
			Py_XDECREF(s);
		}
		if (!left || PyList_SetSlice(argv, 0, PyList_GET_SIZE(argv), left) < 0)
			rc = 1;
		Py_XDECREF(left);
	}
	Py_XDECREF(items);
	PyMem_Free(c.argv);
	if (rc) {
		if (c.ctx)
			hps_finalize(c.ctx);
		return rc < 0 ? hpspy_raise(rc, "init") : NULL;
	}
	hpspy_ctx *self = (hpspy_ctx *)cls->tp_alloc(cls, 0);
	if (!self) {
		hps_finalize(c.ctx);
		return NULL;
	}
	self->ctx = c.ctx;
	self->closed = 0;
	self->users = 0;
	self->views = 0;
	self->worker = NULL;
	self->weaklist = NULL;
	return (PyObject *)self;
}

static PyMethodDef module_methods[] = {
	{"init", (PyCFunction)(void (*)(void))py_init, METH_VARARGS | METH_KEYWORDS,
	 "init(argv=None) -> Context: joins the job hps launch started (see hps.init)."},
	{"strerror", py_strerror, METH_O, "strerror(code) -> str: hps_strerror."},
	{"_set_errors", set_errors, METH_VARARGS, "Registers hps.Error and its subclasses by code."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT, "_hps", "The C core of the hps package (use `import hps`).", -1, module_methods,
	NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__hps(void)
{
	PyTypeObject *types[] = {&hpspy_ctx_type, &hpspy_worker_type, &hpspy_request_type, &hpspy_block_type};
	for (size_t i = 0; i < sizeof types / sizeof *types; i++)
		if (PyType_Ready(types[i]) < 0)
			return NULL;
	PyObject *m = PyModule_Create(&module_def);
	if (!m)
		return NULL;
	const char *names[] = {"Context", "Worker", "Request", "Block"};
	for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
		Py_INCREF(types[i]);
		if (PyModule_AddObject(m, names[i], (PyObject *)types[i]) < 0) {
			Py_DECREF(types[i]);
			Py_DECREF(m);
			return NULL;
		}
	}
	struct { const char *name; int code; } codes[] = {
		{"EINVAL", HPS_EINVAL}, {"EKEYORDER", HPS_EKEYORDER}, {"ENOKEY", HPS_ENOKEY},
		{"ETOOBIG", HPS_ETOOBIG}, {"ENOMEM", HPS_ENOMEM}, {"EEXIST", HPS_EEXIST},
		{"ENOSPC", HPS_ENOSPC}, {"ENOJOB", HPS_ENOJOB}, {"EPEERDEAD", HPS_EPEERDEAD},
		{"ETIMEDOUT", HPS_ETIMEDOUT}, {"ECLOSED", HPS_ECLOSED}, {"ECONFIG", HPS_ECONFIG},
		{"EPROTO", HPS_EPROTO}, {"ESYS", HPS_ESYS}, {"EHANDLER", HPS_EHANDLER},
		{"EVALLEN", HPS_EVALLEN}, {"EUNTRACKED", HPS_EUNTRACKED}, {"ROLE_WORKER", HPS_ROLE_WORKER}, {"ROLE_SERVER", HPS_ROLE_SERVER},
		{"REQ_PUSH", HPS_REQ_PUSH}, {"REQ_PULL", HPS_REQ_PULL}, {"REQ_PUSHPULL", HPS_REQ_PUSHPULL},
		{"F32", HPS_F32}, {"F64", HPS_F64},
	};
	for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
		if (PyModule_AddIntConstant(m, codes[i].name, codes[i].code) < 0) {
			Py_DECREF(m);
			return NULL;
		}
	if (PyModule_AddStringConstant(m, "version", HPS_VERSION_STRING) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}

int hpspy_exception_status(void)
{
	int code = HPS_EHANDLER;
	if (error_base && PyErr_ExceptionMatches(error_base)) {
		PyObject *et, *ev, *tb;
		PyErr_Fetch(&et, &ev, &tb);
		PyErr_NormalizeException(&et, &ev, &tb);
		PyObject *c = ev ? PyObject_GetAttrString(ev, "code") : NULL;
		long v = c && PyLong_Check(c) ? PyLong_AsLong(c) : 0;
		if (v < 0 && v >= -1000)
			code = (int)v;
		Py_XDECREF(c);
		Py_XDECREF(et), Py_XDECREF(ev), Py_XDECREF(tb);
		PyErr_Clear();
		return code;
	}
	PyErr_Print(); /* the handler's own bug: show its traceback */
	return code;
}
