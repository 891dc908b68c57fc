/* hps._hps.Block: memory of the job's shared segment exported through the
 * buffer protocol (numpy wraps it without copying). A heap block is freed
 * into its worker's heap when the last view of it goes; a direct block
 * maps a HOGWILD range, which lives as long as its context. Each keeps its
 * owner alive, and the owner refuses to close while blocks live. */
#include "hpsmod.h"

PyObject *hpspy_block_new(void *ptr, Py_ssize_t nbytes, int kind, PyObject *owner)
{
	hpspy_block *b = PyObject_New(hpspy_block, &hpspy_block_type);
	if (!b)
		return NULL;
	b->ptr = ptr;
	b->nbytes = nbytes;
	b->kind = kind;
	b->exports = 0;
	Py_INCREF(owner);
	b->owner = owner;
	if (kind == HPSPY_HEAP)
		((hpspy_worker *)owner)->blocks++;
	else
		((hpspy_ctx *)owner)->views++;
	return (PyObject *)b;
}

static void block_dealloc(hpspy_block *b)
{
	if (b->kind == HPSPY_HEAP) {
		hpspy_worker *w = (hpspy_worker *)b->owner;
		/* The worker cannot have closed: it refuses while blocks live. */
		if (!w->closed && w->w)
			hps_free(w->w, b->ptr);
		w->blocks--;
	} else {
		((hpspy_ctx *)b->owner)->views--;
	}
	Py_DECREF(b->owner);
	PyObject_Free(b);
}

static int block_getbuffer(hpspy_block *b, Py_buffer *view, int flags)
{
	int rc = PyBuffer_FillInfo(view, (PyObject *)b, b->ptr, b->nbytes, 0, flags);
	if (rc == 0)
		b->exports++;
	return rc;
}

static void block_releasebuffer(hpspy_block *b, Py_buffer *view)
{
	(void)view;
	b->exports--;
}

static PyBufferProcs block_as_buffer = {
	.bf_getbuffer = (getbufferproc)block_getbuffer,
	.bf_releasebuffer = (releasebufferproc)block_releasebuffer,
};

static PyObject *block_new(PyTypeObject *t, PyObject *a, PyObject *k)
{
	(void)t, (void)a, (void)k;
	PyErr_SetString(PyExc_TypeError, "blocks come from Worker.alloc and Context.direct");
	return NULL;
}

static Py_ssize_t block_len(hpspy_block *b) { return b->nbytes; }

static PySequenceMethods block_as_sequence = {.sq_length = (lenfunc)block_len};

PyTypeObject hpspy_block_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "hps._hps.Block",
	.tp_basicsize = sizeof(hpspy_block),
	.tp_dealloc = (destructor)block_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Bytes of the job's shared memory (a heap allocation or a direct range).",
	.tp_as_buffer = &block_as_buffer,
	.tp_as_sequence = &block_as_sequence,
	.tp_new = block_new,
};
