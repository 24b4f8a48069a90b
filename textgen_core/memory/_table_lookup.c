/* An n-gram table's lookup in C: what `table_blocks.TableBlocks.lookup` does, as one call; and a
history's whole prediction (`predict`): what `ngram.NgramModel._compute` does for one history.

A suggestion looks up a few hundred contexts; in Python each costs four block reads (keys, starts,
bytes, counts: a dozen calls and a `pread` each) and most of the n-gram's share of a keystroke.
Here one call finds the key's block through the first keys, reads the blocks it needs with `pread`
into one direct-mapped cache of `CACHE_BYTES` shared by every table of the process (a block goes
where its number hashes; a lookup lands anywhere in a table, so keeping the most recent block per
slot keeps as much of what is read again as any other rule), and returns what the Python method
returns. The files are data: every position is checked against its array's length, and a short read
raises OSError, as in Python.

The GIL is held throughout, `pread` included: a read from the page cache takes a microsecond or
two, and a thread that lets the GIL go for it (as Python's os.pread does) may wait for another
thread that computes meanwhile, such as the host's counting of the open buffers, to give it back
(two engines in one process taking turns, a busy Python thread beside them: first callback −0.18 ms
median, 95 % −0.58 … −0.02, against this helper letting the GIL go around its reads; without the
busy thread the same, −0.02 ms, −0.13 … +0.04). Only a read from a cold disk holds it longer, in
the first keystrokes after a boot. Holding it also keeps the cache to one thread at a time.

`predict` hashes the history's last 1..16 bytes, looks each order's context up (in a loaded
table's files as above, or in the arrays of a table counted in this process: `Arrays`), and writes
the Witten–Bell interpolation into the caller's 256 float64s, adding in the order the Python path
does, so that its probabilities are the same to the last bit (tests/core/test_ngram.py). A
keystroke's search asks each table for hundreds of these; in Python each took 25–40 µs (hashing
byte by byte, a dozen numpy calls on arrays of a few bytes), here 4–11 µs: a suggestion's first word
0.5–0.7 ms sooner, the whole of it 1.1–1.9 ms (`bench/ngram_predict.py`, bench/RESULTS.md).

Optional: where it is not built (no C compiler), `table_blocks` and `ngram` do the same in Python.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* `predict` promises the Python path's probabilities to the last bit: no multiply and add fused into
   one rounding (clang and some gcc modes would; setup.py passes -ffp-contract=off too). */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define BLOCK_BYTES 1024
#define CACHE_BYTES (8 << 20)
#define SLOTS (CACHE_BYTES / BLOCK_BYTES)
#define SLOT_BITS 13 /* 2^13 = SLOTS */

static unsigned char *cache_data;   /* SLOTS blocks of BLOCK_BYTES */
static uint64_t *cache_tags;        /* per slot: 1 + (reader << 40 | block), 0 where empty */
static uint64_t next_reader = 1;

typedef struct {
    int fd;
    int64_t offset;                 /* of the array's first element in the file */
    int64_t count;                  /* elements */
    int itemsize;
    uint64_t id;
} Reader;

typedef struct {
    PyObject_HEAD
    Reader keys, starts, next_bytes, counts;
    PyObject *owners;               /* what keeps the files open */
    Py_buffer first_keys;           /* uint32: the first key of every block of keys */
    int has_first_keys;
} Table;

/* Block `b` of `r` copied into `out` (at most BLOCK_BYTES); its length in bytes, or -1 with an
   exception set. Read from the file where the cache does not hold it. */
static Py_ssize_t read_block(Reader *r, int64_t b, unsigned char *out)
{
    int64_t per = BLOCK_BYTES / r->itemsize;
    int64_t first = b * per;
    if (b < 0 || first >= r->count) {
        PyErr_Format(PyExc_OSError, "an n-gram table points past its arrays (block %lld); build it again",
                     (long long)b);
        return -1;
    }
    int64_t n = r->count - first < per ? r->count - first : per;
    Py_ssize_t wanted = (Py_ssize_t)(n * r->itemsize);
    uint64_t tag = 1 + ((r->id << 40) | (uint64_t)b);
    size_t slot = (size_t)((tag * 0x9E3779B97F4A7C15ULL) >> (64 - SLOT_BITS));
    if (cache_tags[slot] == tag) {
        memcpy(out, cache_data + slot * BLOCK_BYTES, (size_t)wanted);
        return wanted;
    }
    unsigned char *to = cache_data + slot * BLOCK_BYTES;
    ssize_t got;
    cache_tags[slot] = 0;                                 /* empty until the read is whole */
    do {
        got = pread(r->fd, to, (size_t)wanted, (off_t)(r->offset + first * r->itemsize));
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (got != wanted) {
        PyErr_Format(PyExc_OSError, "an n-gram table file ended early (%zd of %zd bytes at block %lld)",
                     (Py_ssize_t)got, wanted, (long long)b);
        return -1;
    }
    cache_tags[slot] = tag;
    memcpy(out, to, (size_t)wanted);
    return wanted;
}

/* Element `i` of a uint32 array. */
static int item32(Reader *r, int64_t i, uint32_t *value)
{
    unsigned char block[BLOCK_BYTES];
    int64_t per = BLOCK_BYTES / 4;
    if (read_block(r, i / per, block) < 0)
        return -1;
    memcpy(value, block + (i % per) * 4, 4);
    return 0;
}

/* Where `key` is among the `n` ascending keys (bisect_left): n where all are smaller. */
static Py_ssize_t find_key(const uint32_t *keys, Py_ssize_t n, uint32_t key)
{
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Where `key`'s context lies in a Table: its bytes are [*lo, *hi) of next_bytes and counts. 1 where
   the table holds it, 0 where not, -1 with an exception set. */
static int table_find(Table *self, uint32_t key, uint32_t *lo_out, uint32_t *hi_out)
{
    const uint32_t *firsts = (const uint32_t *)self->first_keys.buf;
    Py_ssize_t blocks = self->first_keys.len / 4;
    Py_ssize_t lo_b = 0, hi_b = blocks;                   /* bisect_right(firsts, key) - 1 */
    while (lo_b < hi_b) {
        Py_ssize_t mid = (lo_b + hi_b) / 2;
        if (key < firsts[mid])
            hi_b = mid;
        else
            lo_b = mid + 1;
    }
    int64_t b = (int64_t)lo_b - 1;
    if (b < 0)
        return 0;
    uint32_t block[BLOCK_BYTES / 4];
    Py_ssize_t got = read_block(&self->keys, b, (unsigned char *)block);
    if (got < 0)
        return -1;
    Py_ssize_t n = got / 4, lo = find_key(block, n, key);
    if (lo >= n || block[lo] != key)
        return 0;
    int64_t at = b * (BLOCK_BYTES / 4) + lo;              /* keys and starts share their block numbers */
    uint32_t start, end;
    if (item32(&self->starts, at, &start) < 0 || item32(&self->starts, at + 1, &end) < 0)
        return -1;
    if (end > start && (end > self->next_bytes.count || end > self->counts.count)) {
        PyErr_Format(PyExc_OSError, "an n-gram table file ended early (a context's bytes end at %u of %lld)",
                     end, (long long)self->next_bytes.count);
        return -1;
    }
    *lo_out = start;
    *hi_out = end;
    return 1;
}

/* Elements [lo, hi) of `r` copied into `to`; -1 with an exception set where a read fails. */
static int copy_items(Reader *r, int64_t lo, int64_t hi, unsigned char *to)
{
    int64_t per = BLOCK_BYTES / r->itemsize;
    unsigned char block[BLOCK_BYTES];
    for (int64_t i = lo; i < hi;) {
        int64_t b = i / per, end = (b + 1) * per < hi ? (b + 1) * per : hi;
        if (read_block(r, b, block) < 0)
            return -1;
        memcpy(to, block + (i - b * per) * r->itemsize, (size_t)((end - i) * r->itemsize));
        to += (end - i) * r->itemsize;
        i = end;
    }
    return 0;
}

/* Elements [lo, hi) of `r` as bytes. */
static PyObject *raw(Reader *r, int64_t lo, int64_t hi)
{
    PyObject *result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)((hi - lo) * r->itemsize));
    if (result == NULL)
        return NULL;
    if (copy_items(r, lo, hi, (unsigned char *)PyBytes_AS_STRING(result)) < 0) {
        Py_DECREF(result);
        return NULL;
    }
    return result;
}

static PyObject *Table_lookup(Table *self, PyObject *arg)
{
    unsigned long long wide = PyLong_AsUnsignedLongLong(arg);
    if (wide == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (wide > UINT32_MAX)
        Py_RETURN_NONE;                                   /* keys are 32 bits: not in the table */
    uint32_t start, end;
    int found = table_find(self, (uint32_t)wide, &start, &end);
    if (found < 0)
        return NULL;
    if (found == 0)
        Py_RETURN_NONE;
    PyObject *following = NULL, *counts = NULL;
    if (end > start) {
        following = raw(&self->next_bytes, start, end);
        counts = following ? raw(&self->counts, start, end) : NULL;
    } else {                                              /* a damaged table: the caller stops there */
        following = PyBytes_FromStringAndSize(NULL, 0);
        counts = following ? PyBytes_FromStringAndSize(NULL, 0) : NULL;
    }
    if (counts == NULL) {
        Py_XDECREF(following);
        return NULL;
    }
    PyObject *found_tuple = Py_BuildValue("(kkNN)", (unsigned long)start, (unsigned long)end, following, counts);
    return found_tuple;
}

static int parse_reader(PyObject *spec, Reader *r, int itemsize)
{
    int fd;
    long long offset, count;
    if (!PyArg_ParseTuple(spec, "iLL", &fd, &offset, &count))
        return -1;
    if (fd < 0 || offset < 0 || count < 0) {
        PyErr_SetString(PyExc_ValueError, "a reader is (file descriptor, offset, count), none negative");
        return -1;
    }
    r->fd = fd;
    r->offset = offset;
    r->count = count;
    r->itemsize = itemsize;
    r->id = next_reader++ & ((1ULL << 23) - 1);
    return 0;
}

static int Table_init(Table *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"keys", "starts", "next_bytes", "counts", "first_keys", "owners", NULL};
    PyObject *keys, *starts, *next_bytes, *counts, *first, *owners;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!O!OO", names, &PyTuple_Type, &keys, &PyTuple_Type,
                                     &starts, &PyTuple_Type, &next_bytes, &PyTuple_Type, &counts, &first, &owners))
        return -1;
    if (parse_reader(keys, &self->keys, 4) < 0 || parse_reader(starts, &self->starts, 4) < 0
        || parse_reader(next_bytes, &self->next_bytes, 1) < 0 || parse_reader(counts, &self->counts, 2) < 0)
        return -1;
    if (self->has_first_keys) {
        PyBuffer_Release(&self->first_keys);
        self->has_first_keys = 0;
    }
    if (PyObject_GetBuffer(first, &self->first_keys, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    self->has_first_keys = 1;
    if (self->first_keys.itemsize != 4 || self->first_keys.len % 4 != 0) {
        PyErr_SetString(PyExc_ValueError, "first_keys must hold 4-byte unsigned numbers");
        return -1;
    }
    Py_INCREF(owners);
    Py_XSETREF(self->owners, owners);
    return 0;
}

static void Table_dealloc(Table *self)
{
    if (self->has_first_keys)
        PyBuffer_Release(&self->first_keys);
    Py_XDECREF(self->owners);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Table_methods[] = {
    {"lookup", (PyCFunction)Table_lookup, METH_O,
     "One key's context: (lo, hi, its bytes, their uint16 counts as bytes), or None where the table "
     "does not hold it."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "textgen_core.memory._table_lookup.Table",
    .tp_basicsize = sizeof(Table),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One order's arrays, read a block at a time: Table(keys, starts, next_bytes, counts, "
              "first_keys, owners), each array (file descriptor, offset of its data, elements).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Table_init,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_methods = Table_methods,
};

/* A table counted in this process (the open buffers'): the same four arrays, in memory. */
typedef struct {
    PyObject_HEAD
    Py_buffer keys, starts, next_bytes, counts;
    int held;                       /* how many of the four buffers are held */
} Arrays;

static void Arrays_release(Arrays *self)
{
    Py_buffer *views[4] = {&self->keys, &self->starts, &self->next_bytes, &self->counts};
    for (int i = 0; i < self->held; i++)
        PyBuffer_Release(views[i]);
    self->held = 0;
}

static int Arrays_init(Arrays *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"keys", "starts", "next_bytes", "counts", NULL};
    static const Py_ssize_t sizes[4] = {4, 4, 1, 2};
    PyObject *objects[4];
    Py_buffer views[4];
    int held = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO", names, &objects[0], &objects[1], &objects[2],
                                     &objects[3]))
        return -1;
    for (; held < 4; held++) {              /* into locals: a failed init leaves the object as it was */
        if (PyObject_GetBuffer(objects[held], &views[held], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            goto fail;
        if (views[held].itemsize != sizes[held] || views[held].len % sizes[held] != 0
            || (uintptr_t)views[held].buf % (uintptr_t)sizes[held] != 0) {
            held++;
            PyErr_SetString(PyExc_ValueError, "Arrays takes aligned uint32 keys and starts, uint8 bytes, uint16 counts");
            goto fail;
        }
    }
    if (views[1].len / 4 != views[0].len / 4 + 1) {
        PyErr_SetString(PyExc_ValueError, "an n-gram table needs one start more than it has keys");
        goto fail;
    }
    Arrays_release(self);
    self->keys = views[0];
    self->starts = views[1];
    self->next_bytes = views[2];
    self->counts = views[3];
    self->held = 4;
    return 0;
fail:
    for (int i = 0; i < held; i++)
        PyBuffer_Release(&views[i]);
    return -1;
}

static void Arrays_dealloc(Arrays *self)
{
    Arrays_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject ArraysType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "textgen_core.memory._table_lookup.Arrays",
    .tp_basicsize = sizeof(Arrays),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One order's arrays in memory for `predict`: Arrays(keys, starts, next_bytes, counts), "
              "uint32, uint32, uint8, uint16, contiguous.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Arrays_init,
    .tp_dealloc = (destructor)Arrays_dealloc,
};

/* Where `key`'s context lies in in-memory arrays (as table_find). */
static int arrays_find(Arrays *self, uint32_t key, uint32_t *lo_out, uint32_t *hi_out)
{
    const uint32_t *keys = (const uint32_t *)self->keys.buf, *starts = (const uint32_t *)self->starts.buf;
    Py_ssize_t n = self->keys.len / 4, lo = find_key(keys, n, key);
    if (lo >= n || keys[lo] != key)
        return 0;
    uint32_t start = starts[lo], end = starts[lo + 1];
    if (end > start && (end > self->next_bytes.len || end > self->counts.len / 2)) {
        PyErr_Format(PyExc_ValueError, "an n-gram table's context points past its bytes (%u of %zd)", end,
                     self->next_bytes.len);
        return -1;
    }
    *lo_out = start;
    *hi_out = end;
    return 1;
}

/* `key`'s context in a Table or an Arrays: its bytes and their counts copied into `following` and
   `counts` (room for 256 each), their number in `*width`. 1 where the table holds it (with bytes),
   0 where not, -1 with an exception set. */
static int read_context(PyObject *t, uint32_t key, unsigned char *following, uint16_t *counts, uint32_t *width)
{
    int is_table = PyObject_TypeCheck(t, &TableType);
    uint32_t lo, hi;
    int found = is_table ? table_find((Table *)t, key, &lo, &hi) : arrays_find((Arrays *)t, key, &lo, &hi);
    if (found <= 0 || hi <= lo)                           /* not held (or a damaged table: no bytes) */
        return found < 0 ? -1 : 0;
    if (hi - lo > 256) {
        PyErr_SetString(PyExc_OSError, "an n-gram table has a context with more than 256 bytes after it: "
                                       "it is damaged; build it again");
        return -1;
    }
    if (is_table) {
        Table *table = (Table *)t;
        if (copy_items(&table->next_bytes, lo, hi, following) < 0
            || copy_items(&table->counts, lo, hi, (unsigned char *)counts) < 0)
            return -1;
    } else {
        Arrays *arrays = (Arrays *)t;
        memcpy(following, (const unsigned char *)arrays->next_bytes.buf + lo, hi - lo);
        memcpy(counts, (const uint16_t *)arrays->counts.buf + lo, (size_t)(hi - lo) * 2);
    }
    *width = hi - lo;
    return 1;
}

#define MAX_ORDERS 32
#define HASH_MULTIPLIER 0x9E3779B97F4A7C15ULL

/* predict(tables, orders, history, unigram, out): what `ngram.NgramModel._compute` does for one
   history, as one call. */
static PyObject *predict(PyObject *module, PyObject *args)
{
    PyObject *tables, *orders;
    Py_buffer history, unigram, out;
    if (!PyArg_ParseTuple(args, "O!O!y*y*w*", &PyTuple_Type, &tables, &PyTuple_Type, &orders, &history, &unigram,
                          &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(tables);
    if (count != PyTuple_GET_SIZE(orders) || count > MAX_ORDERS || unigram.len != 256 * 8 || out.len != 256 * 8) {
        PyErr_SetString(PyExc_ValueError, "predict takes as many orders as tables (at most 32), and 256 "
                                          "float64 for the unigram and the output");
        goto done;
    }
    long order_of[MAX_ORDERS];
    for (Py_ssize_t i = 0; i < count; i++) {
        order_of[i] = PyLong_AsLong(PyTuple_GET_ITEM(orders, i));
        if (order_of[i] == -1 && PyErr_Occurred())
            goto done;
        PyObject *t = PyTuple_GET_ITEM(tables, i);
        if (!PyObject_TypeCheck(t, &TableType) && !PyObject_TypeCheck(t, &ArraysType)) {
            PyErr_SetString(PyExc_TypeError, "predict's tables are Table or Arrays objects");
            goto done;
        }
        if (PyObject_TypeCheck(t, &ArraysType) && ((Arrays *)t)->held != 4) {
            PyErr_SetString(PyExc_ValueError, "predict was given an Arrays that holds no arrays");
            goto done;
        }
        if (order_of[i] < 1 || (i > 0 && order_of[i] <= order_of[i - 1])) {
            PyErr_SetString(PyExc_ValueError, "predict's orders must ascend from 1");
            goto done;
        }
    }
    /* Per context found, lowest order first: its bytes and their counts, and n + d. */
    unsigned char following[MAX_ORDERS][256];
    uint16_t counts[MAX_ORDERS][256];
    uint32_t widths[MAX_ORDERS];
    double norms[MAX_ORDERS], coefficients[MAX_ORDERS];
    const unsigned char *bytes = (const unsigned char *)history.buf;
    Py_ssize_t n = history.len, longest = count ? order_of[count - 1] : 0;
    uint64_t h = 0;
    int position = 0;
    for (Py_ssize_t k = 1; k <= (n < longest ? n : longest) && position < count; k++) {
        h = (h ^ (uint64_t)(bytes[n - k] + 1)) * HASH_MULTIPLIER;
        if (k != order_of[position])
            continue;
        int found = read_context(PyTuple_GET_ITEM(tables, position), (uint32_t)(h >> 32), following[position],
                                 counts[position], &widths[position]);
        if (found < 0)
            goto done;
        if (found == 0)
            break;
        double total = 0.0;
        for (uint32_t j = 0; j < widths[position]; j++)
            total += counts[position][j];
        norms[position] = total + (double)widths[position];
        position++;
    }
    if (position == 0) {
        result = Py_BuildValue("(iId)", 0, 0u, 0.0);
        goto done;
    }
    /* p_K = Π λ · unigram + Σ_k (Π_{m > k} λ_m) · n(ctx_k, ·) / (n_k + d_k),   λ_k = d_k / (n_k + d_k) */
    double scale = 1.0;
    for (int s = position - 1; s >= 0; s--) {
        coefficients[s] = scale / norms[s];
        scale *= (double)widths[s] / norms[s];
    }
    double *p = (double *)out.buf;
    const double *uni = (const double *)unigram.buf;
    memset(p, 0, 256 * sizeof(double));
    for (int s = 0; s < position; s++)
        for (uint32_t j = 0; j < widths[s]; j++)
            p[following[s][j]] += counts[s][j] * coefficients[s];
    for (int b = 0; b < 256; b++)
        p[b] += scale * uni[b];
    result = Py_BuildValue("(iId)", position, widths[position - 1], norms[position - 1] - widths[position - 1]);
done:
    PyBuffer_Release(&history);
    PyBuffer_Release(&unigram);
    PyBuffer_Release(&out);
    return result;
}

static PyObject *cached_blocks(PyObject *module, PyObject *unused)
{
    Py_ssize_t used = 0;
    for (Py_ssize_t i = 0; i < SLOTS; i++)
        used += cache_tags[i] != 0;
    return PyLong_FromSsize_t(used);
}

static PyMethodDef module_methods[] = {
    {"cached_blocks", cached_blocks, METH_NOARGS, "How many blocks the cache holds now."},
    {"predict", predict, METH_VARARGS,
     "predict(tables, orders, history, unigram, out): the n-gram's next-byte probabilities after "
     "`history` written into `out` (256 float64) where a context is found; returns (contexts found, "
     "bytes seen after the longest, their count)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_table_lookup",
    "An n-gram table's lookup in C (see table_blocks.py); optional.", -1, module_methods,
};

PyMODINIT_FUNC PyInit__table_lookup(void)
{
    /* calloc: the cache's pages are touched only as blocks fill them (resident memory grows to
       CACHE_BYTES with use, never past it) */
    cache_data = calloc(SLOTS, BLOCK_BYTES);
    cache_tags = calloc(SLOTS, sizeof(uint64_t));
    if (cache_data == NULL || cache_tags == NULL)
        return PyErr_NoMemory();
    if (PyType_Ready(&TableType) < 0 || PyType_Ready(&ArraysType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&TableType);
    if (PyModule_AddObject(m, "Table", (PyObject *)&TableType) < 0) {
        Py_DECREF(&TableType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ArraysType);
    if (PyModule_AddObject(m, "Arrays", (PyObject *)&ArraysType) < 0) {
        Py_DECREF(&ArraysType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "CACHE_BYTES", CACHE_BYTES);
    PyModule_AddIntConstant(m, "MAX_ORDERS", MAX_ORDERS);
    PyModule_AddIntConstant(m, "BLOCK_BYTES", BLOCK_BYTES);
    return m;
}
