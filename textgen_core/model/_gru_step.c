/* One step of the char-GRU for a few rows in C: what `numpy_gru.NumpyGRU.step` does, as one call.

A suggestion takes 60–80 steps of one row and, for its first word, a few of up to four (the
next-word search's beams). In numpy a step is two dozen calls on arrays of a few hundred floats: the
calls cost as much as the products (87–144 µs a step of one row of the default model, AMD EPYC), and
OpenBLAS copies a whole weight matrix for each product of a few rows. Here a step reads each weight
matrix once for all its rows (a piece of the matrix's row k in registers, used by every row before
the next piece), with no call in between.

The math is the numpy step's, on the weights `NumpyGRU` folds (the first layer's input projection
in a table by byte, the z and r columns scaled by ½ so that σ(v) = ½·tanh(v)+½, their recurrent
biases moved to the input side). tanh is a rational function (the one Eigen uses for float:
|error| < 4e-7 against the exact tanh), which the compiler turns into vector instructions with the
products. The sums run in another order than OpenBLAS's, so logits differ from the numpy step's in
the last bits (at most 2e-5 in the default model's, measured; tests/core/test_model.py holds them to
1e-4). Every output is summed over k in order, however many rows step together: a row's numbers do
not depend on the rows beside it.

Where gcc 12 or later builds for x86-64, the kernels are built twice, for x86-64-v3 (AVX2 with fused
multiply-add) and for any x86-64, and the loader picks one by what the CPU can do (`target_clones`:
by its features, not its model name, so AMD's and Intel's alike). There, a Network made with `half`
keeps its matrices in float16 where the CPU has F16C too (each 8 widened to float32 by one instruction
as they are read; the sums stay float32): a step of a few rows waits on reading the matrices, which
are larger than the nearer caches (2.6 MB for the default model against a 1 MB L2), and half the bytes
made a step of one row 59 → 32 µs and a suggestion's first word 1.74 → 1.58 ms median with hot caches
(bench/gru_step.py, AMD EPYC). The logits move by about 0.005 (float16 keeps 11 significant bits). The weights are the caller's
read-only float32 vectors (the input table, the biases), held through the buffer protocol for the
object's life, and its own copies of the matrices in blocks, which `NumpyGRU` does not keep beside
them (the host's memory stays as it was); no numpy headers.
A step lets the GIL go while it computes (50–120 µs): the host's thread that reads the next key
from Neovim need not wait for it. Before it does, the byte ids are copied and checked (another thread
could change the caller's array meanwhile), and the arrays it writes are checked to be memory of
their own; a network whose making failed has no layers and refuses every call.

Optional: where it is not built (no C compiler), `NumpyGRU` steps in numpy.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__) && defined(__linux__)
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define HALF_WEIGHTS 1
#define HALF_TARGET __attribute__((target("avx2,fma,f16c")))     /* what half_supported() asks */
#include <immintrin.h>
#else
#define VECTOR_CLONES
#define HALF_WEIGHTS 0
#endif

#define MAX_LAYERS 8
#define MAX_HIDDEN (1 << 16)            /* sizes stay far from overflowing an int */
#define BYTES 256                   /* rows of the input table: one per byte */

typedef struct {
    PyObject_HEAD
    int layers, hidden, outputs;
    Py_buffer views[3 + 4 * MAX_LAYERS];
    int held;                       /* views[0..held) are to be released */
    const float *input_table;       /* (BYTES, 3H) */
    const float *input_biases[MAX_LAYERS];      /* (3H,); NULL for layer 0 */
    const float *candidate_biases[MAX_LAYERS];  /* (H,) */
    const float *dense_bias;        /* (outputs,) */
    /* the matrices, ours, in blocks (`packed_copy`): kernels (H, 3H) from layer 1 on, recurrent (H, 3H), dense (H, outputs) */
    void *packed_kernels[MAX_LAYERS], *packed_recurrent[MAX_LAYERS], *packed_dense;
    int half;                       /* the packed matrices hold float16s (`packed_copy`) */
} Network;

/* out (rows, n) += a (rows, k) @ w (k, n), for `R` rows together, 8·`C` columns at a time: each
   row's sums kept in registers over the whole of k, each piece of w loaded once for all the rows
   (the matrix is larger than the nearer caches: a row at a time would read it again per row, and an
   update of the output for every k would store as much as it loads). Fewer rows take more columns
   at once, so that there are always about eight independent sums to add into (one alone would wait
   for its last addition at every k). Every output is summed over k in order whatever R and C are:
   a row's numbers do not depend on the rows beside it. Written with the compiler's vector type of
   8 floats, which it maps to the clone's instructions (two SSE registers in the default clone, one
   AVX register in the x86-64-v3 one). The columns are read from `packed`, the matrix's copy in
   blocks of 16 columns (`packed_copy`; float32s, or float16s widened by `load8_half`): what a pass reads together lies together, where the matrix
   itself would have it a whole row apart (2×256 steps 0.072 → 0.053 ms, 2×512 0.31 → 0.16,
   bench/decode.py, AMD EPYC). Returns the first column it left for a narrower pass. */
typedef float v8 __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) v8 load8(const float *p)
{
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

#if HALF_WEIGHTS
static inline __attribute__((always_inline)) HALF_TARGET v8 load8_half(const uint16_t *p)
{
    __m256 v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    v8 out;
    memcpy(&out, &v, sizeof out);
    return out;
}

/* n float32s → float16s (rounded to nearest), 8 at a time. */
HALF_TARGET
static void to_half(const float *from, int n, uint16_t *to)
{
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm_storeu_si128((__m128i *)(to + j), _mm256_cvtps_ph(_mm256_loadu_ps(from + j), _MM_FROUND_TO_NEAREST_INT));
    for (; j < n; j++)
        to[j] = (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(from[j]), _MM_FROUND_TO_NEAREST_INT), 0);
}

HALF_TARGET
static inline float half_to_float(uint16_t h)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}
#endif

#define DEFINE_PRODUCTS(SUFFIX, W, LOAD, WIDEN, INNER, ATTRIBUTES)                                                              \
static inline __attribute__((always_inline)) INNER int group_products##SUFFIX(const float *restrict a, const int R,      \
                                                                        const int C, int k, const W *restrict packed, \
                                                                        int n, int j0, float *restrict out)        \
{                                                                                                                  \
    for (; j0 + 8 * C <= n / 16 * 16; j0 += 8 * C) {                                                               \
        v8 sums[8];                                                                                                \
        for (int r = 0; r < R; r++)                                                                                \
            for (int c = 0; c < C; c++)                                                                            \
                sums[r * C + c] = load8(out + (size_t)r * n + j0 + 8 * c);                                         \
        const W *restrict block = packed + (size_t)(j0 / 16) * k * 16;                                             \
        for (int i = 0; i < k; i++) {                                                                              \
            v8 wc[8];                                                                                              \
            for (int c = 0; c < C; c++)                                                                            \
                wc[c] = LOAD(block + (size_t)(c / 2) * k * 16 + (size_t)i * 16 + (c % 2) * 8);                     \
            for (int r = 0; r < R; r++) {                                                                          \
                const float ai = a[(size_t)r * k + i];                                                             \
                const v8 av = {ai, ai, ai, ai, ai, ai, ai, ai};                                                    \
                for (int c = 0; c < C; c++)                                                                        \
                    sums[r * C + c] += av * wc[c];                                                                 \
            }                                                                                                      \
        }                                                                                                          \
        for (int r = 0; r < R; r++)                                                                                \
            for (int c = 0; c < C; c++)                                                                            \
                memcpy(out + (size_t)r * n + j0 + 8 * c, &sums[r * C + c], sizeof(v8));                            \
    }                                                                                                              \
    return j0;                                                                                                     \
}                                                                                                                  \
                                                                                                                   \
static inline __attribute__((always_inline)) INNER void row_group##SUFFIX(const float *restrict a, const int R,         \
                                                                    const int C, int k, const W *restrict packed,  \
                                                                    int n, float *restrict out)                    \
{                                                                                                                  \
    int j0 = group_products##SUFFIX(a, R, C, k, packed, n, 0, out);                                                \
    j0 = group_products##SUFFIX(a, R, 2, k, packed, n, j0, out);                                                   \
    for (int r = 0; r < R; r++)                       /* the last n % 16 columns: the last block's */              \
        for (int j = j0; j < n; j++) {                                                                             \
            float sum = out[(size_t)r * n + j];                                                                    \
            for (int i = 0; i < k; i++)                                                                            \
                sum += a[(size_t)r * k + i] * WIDEN(packed[((size_t)(j / 16) * k + i) * 16 + j % 16]);        \
            out[(size_t)r * n + j] = sum;                                                                          \
        }                                                                                                          \
}                                                                                                                  \
                                                                                                                   \
ATTRIBUTES                                                                                                         \
static void add_products##SUFFIX(const float *restrict a, int rows, int k, const W *restrict packed, int n,        \
                                 float *restrict out)                                                              \
{                                                                                                                  \
    for (int r = 0; r < rows; r += 4) {                                                                            \
        const float *ar = a + (size_t)r * k;                                                                       \
        float *o = out + (size_t)r * n;                                                                            \
        switch (rows - r < 4 ? rows - r : 4) {        /* constant counts: the sums in registers */                 \
        case 1: row_group##SUFFIX(ar, 1, 8, k, packed, n, o); break;                                               \
        case 2: row_group##SUFFIX(ar, 2, 4, k, packed, n, o); break;                                               \
        case 3: row_group##SUFFIX(ar, 3, 2, k, packed, n, o); break;                                               \
        default: row_group##SUFFIX(ar, 4, 2, k, packed, n, o); break;                                              \
        }                                                                                                          \
    }                                                                                                              \
}

#define AS_IS(x) (x)
DEFINE_PRODUCTS(, float, load8, AS_IS, , VECTOR_CLONES)
#if HALF_WEIGHTS
DEFINE_PRODUCTS(_half, uint16_t, load8_half, half_to_float, HALF_TARGET, HALF_TARGET)
#endif

/* out (rows, n) += a (rows, k) @ the packed matrix, in the precision it was packed in. */
static void products(const Network *self, const float *restrict a, int rows, int k, const void *packed, int n,
                     float *restrict out)
{
#if HALF_WEIGHTS
    if (self->half) {
        add_products_half(a, rows, k, (const uint16_t *)packed, n, out);
        return;
    }
#endif
    add_products(a, rows, k, (const float *)packed, n, out);
}

/* A (k, n) matrix in blocks of 16 columns, each block's k rows one after another (the last block's
   columns past n zero), as float32s or, with `half`, float16s: what the products read together lies
   together. NULL when out of memory. */
static void *packed_copy(const float *w, int k, int n, int half)
{
    const int blocks = (n + 15) / 16;
    const size_t size = half ? 2 : sizeof(float);
    char *packed = calloc((size_t)blocks * k * 16 + 1, size);
    if (packed == NULL)
        return NULL;
    for (int b = 0; b < blocks; b++) {
        const int width = n - b * 16 < 16 ? n - b * 16 : 16;
        for (int i = 0; i < k; i++) {
            const float *from = w + (size_t)i * n + (size_t)b * 16;
            char *to = packed + ((size_t)b * k + i) * 16 * size;
#if HALF_WEIGHTS
            if (half) {
                to_half(from, width, (uint16_t *)to);
                continue;
            }
#endif
            memcpy(to, from, (size_t)width * sizeof(float));
        }
    }
    return packed;
}

/* tanh for float: Eigen's rational function on [-7.9988, 7.9988] (beyond it tanh is ±1 in float). */
static inline float fast_tanh(float x)
{
    const float limit = 7.99881172180175781f;
    float c = x < limit ? x : limit;
    c = c > -limit ? c : -limit;
    float c2 = c * c;
    float p = -2.76076847742355e-16f;
    p = p * c2 + 2.00018790482477e-13f;
    p = p * c2 + -8.60467152213735e-11f;
    p = p * c2 + 5.12229709037114e-08f;
    p = p * c2 + 1.48572235717979e-05f;
    p = p * c2 + 6.37261928875436e-04f;
    p = p * c2 + 4.89352455891786e-03f;
    p = p * c;
    float q = 1.19825839466702e-06f;
    q = q * c2 + 1.18534705686654e-04f;
    q = q * c2 + 2.26843463243900e-03f;
    q = q * c2 + 4.89352518554385e-03f;
    float t = p / q;
    float magnitude = x < 0.0f ? -x : x;
    return magnitude < 0.0004f ? x : t;                        /* near 0, tanh x = x to float precision */
}

/* The GRU update of one row: x, hp (3H) are its input and recurrent projections (x overwritten),
   h (H) its state, out (H) the new state. */
VECTOR_CLONES
static void update(float *restrict x, const float *restrict hp, const float *restrict h,
                   const float *restrict candidate_bias, int hidden, float *restrict out)
{
    for (int j = 0; j < 2 * hidden; j++)
        x[j] = fast_tanh(x[j] + hp[j]) * 0.5f + 0.5f;           /* z | r = σ(...) */
    const float *z = x, *r = x + hidden;
    for (int j = 0; j < hidden; j++) {
        float reset = (hp[2 * hidden + j] + candidate_bias[j]) * r[j];
        float cand = fast_tanh(x[2 * hidden + j] + reset);
        out[j] = (h[j] - cand) * z[j] + cand;                  /* h̃ + z ⊙ (h − h̃) */
    }
}

static void Network_dealloc(Network *self)
{
    for (int l = 0; l < MAX_LAYERS; l++) {
        free(self->packed_kernels[l]);
        free(self->packed_recurrent[l]);
    }
    free(self->packed_dense);
    for (int i = 0; i < self->held; i++)
        PyBuffer_Release(&self->views[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Whether a buffer holds native float32s ("f", "=f", or "<f" on a little-endian machine). */
static int is_float32(const Py_buffer *view)
{
    if (view->itemsize != 4 || view->format == NULL)
        return 0;
    const char *f = view->format;
#if PY_LITTLE_ENDIAN
    if (*f == '<')
        f++;
#endif
    if (*f == '=' || *f == '@')
        f++;
    return strcmp(f, "f") == 0;
}

/* A C-contiguous, aligned view of `count` float32s of `object` into `view` (writable with `flags`
   PyBUF_WRITABLE); -1 with an error, and nothing held, where `object` is not that. */
static int float_view(PyObject *object, Py_buffer *view, Py_ssize_t count, int flags, const char *what)
{
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | flags) < 0)
        return -1;
    if (!is_float32(view) || view->len != count * 4 || (uintptr_t)view->buf % 4 != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s: expected %zd contiguous float32s", what, count);
        return -1;
    }
    return 0;
}

/* Whether float16 holds every number of `object` (count float32s; its largest finite value is 65504):
   1, 0, or -1 with an error where `object` is not that. */
static int fits_half(PyObject *object, Py_ssize_t count, const char *what)
{
    Py_buffer view;
    if (float_view(object, &view, count, 0, what) < 0)
        return -1;
    const float *w = view.buf;
    int fits = 1;
    for (Py_ssize_t i = 0; i < count && fits; i++)
        fits = w[i] <= 65504.0f && w[i] >= -65504.0f;          /* a NaN does not fit either */
    PyBuffer_Release(&view);
    return fits;
}

/* Whether float16 holds every weight of the matrices a Network packs (the layers' kernels and recurrent
   matrices, the dense kernel): 1, 0, or -1 with an error. A layer that is no 4-tuple is refused with
   its reason when packed. */
static int all_fit_half(PyObject *layers, PyObject *dense_kernel, Py_ssize_t H)
{
    for (Py_ssize_t l = 0; l < PyTuple_GET_SIZE(layers); l++) {
        PyObject *layer = PyTuple_GET_ITEM(layers, l);
        if (!PyTuple_Check(layer) || PyTuple_GET_SIZE(layer) != 4)
            return 1;
        PyObject *kernel = PyTuple_GET_ITEM(layer, 0), *recurrent = PyTuple_GET_ITEM(layer, 2);
        int fits = kernel == Py_None ? 1 : fits_half(kernel, H * 3 * H, "kernel");
        if (fits == 1)
            fits = fits_half(recurrent, H * 3 * H, "recurrent");
        if (fits != 1)
            return fits;
    }
    return fits_half(dense_kernel, H * BYTES, "dense_kernel");
}

/* `object`, a (k, n) float32 matrix, copied in blocks (`packed_copy`) and not held; NULL with an error. */
static void *packed_from(PyObject *object, int k, int n, int half, const char *what)
{
    Py_buffer view;
    if (float_view(object, &view, (Py_ssize_t)k * n, 0, what) < 0)
        return NULL;
    void *packed = packed_copy((const float *)view.buf, k, n, half);
    if (packed == NULL)
        PyErr_NoMemory();
    PyBuffer_Release(&view);
    return packed;
}

/* Hold `object` as a read-only float32 array of `count` floats; its data, or NULL with an error. */
static const float *hold(Network *self, PyObject *object, Py_ssize_t count, const char *what)
{
    Py_buffer *view = &self->views[self->held];
    if (float_view(object, view, count, 0, what) < 0)
        return NULL;
    self->held++;
    return (const float *)view->buf;
}

/* Whether this CPU multiplies float16 matrices here: the half kernels are built (gcc 12 or later on
   x86-64 Linux) and it has AVX2, FMA and F16C. */
static int half_supported(void)
{
#if HALF_WEIGHTS
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

static int Network_init(Network *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"input_table", "layers", "dense_kernel", "dense_bias", "hidden", "half", NULL};
    PyObject *table, *layers, *dense_kernel, *dense_bias;
    int hidden, half = 0;
    if (self->held) {
        PyErr_SetString(PyExc_TypeError, "a Network is made once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!OOi|p", names, &table, &PyTuple_Type, &layers, &dense_kernel,
                                     &dense_bias, &hidden, &half))
        return -1;
    Py_ssize_t count = PyTuple_GET_SIZE(layers);
    if (hidden <= 0 || hidden > MAX_HIDDEN || count < 1 || count > MAX_LAYERS) {
        PyErr_Format(PyExc_ValueError, "a network of 1 to %d layers of 1 to %d units", MAX_LAYERS, MAX_HIDDEN);
        return -1;
    }
    Py_ssize_t H = hidden;
    /* float16 where asked, the CPU can, and every matrix fits it (larger weights would become infinities) */
    if (half && half_supported()) {
        int fits = all_fit_half(layers, dense_kernel, H);
        if (fits < 0)
            return -1;
        self->half = fits;
    }
    if (!(self->input_table = hold(self, table, BYTES * 3 * H, "input_table")))
        return -1;
    for (int l = 0; l < (int)count; l++) {
        PyObject *layer = PyTuple_GET_ITEM(layers, l);
        if (!PyTuple_Check(layer) || PyTuple_GET_SIZE(layer) != 4) {
            PyErr_SetString(PyExc_ValueError, "a layer is (kernel, input_bias, recurrent, candidate_bias)");
            return -1;
        }
        PyObject *kernel = PyTuple_GET_ITEM(layer, 0), *input_bias = PyTuple_GET_ITEM(layer, 1);
        if ((l == 0) != (kernel == Py_None) || (l == 0) != (input_bias == Py_None)) {
            PyErr_SetString(PyExc_ValueError, "the first layer's input is the table: its kernel and input bias are None");
            return -1;
        }
        if (l > 0 && (!(self->packed_kernels[l] = packed_from(kernel, hidden, 3 * hidden, self->half, "kernel"))
                      || !(self->input_biases[l] = hold(self, input_bias, 3 * H, "input_bias"))))
            return -1;
        if (!(self->packed_recurrent[l] = packed_from(PyTuple_GET_ITEM(layer, 2), hidden, 3 * hidden, self->half, "recurrent"))
            || !(self->candidate_biases[l] = hold(self, PyTuple_GET_ITEM(layer, 3), H, "candidate_bias")))
            return -1;
    }
    if (!(self->packed_dense = packed_from(dense_kernel, hidden, BYTES, self->half, "dense_kernel"))
        || !(self->dense_bias = hold(self, dense_bias, BYTES, "dense_bias")))
        return -1;
    /* only now, with every weight held: a network whose making failed has no layers, and `run` refuses it */
    self->outputs = BYTES;                      /* the next byte's logits */
    self->hidden = hidden;
    self->layers = (int)count;
    return 0;
}

/* One step of `rows` rows: bytes `id`, the states h[l] (rows, H) → out[l] (rows, H), and the logits
   (rows, outputs) unless `logits` is NULL. `scratch`: 2 · rows · 3H floats. Needs no GIL. */
static void compute(const Network *self, const int32_t *id, Py_ssize_t rows, const float *const *h, float *const *out,
                    float *logits, float *scratch)
{
    const int L = self->layers, H = self->hidden, V = self->outputs;
    const size_t width = 3 * (size_t)H;
    float *x = scratch, *hp = scratch + width * rows;
    for (int l = 0; l < L; l++) {
        for (Py_ssize_t r = 0; r < rows; r++) {
            if (l == 0)
                memcpy(x + r * width, self->input_table + (size_t)id[r] * width, width * sizeof(float));
            else
                memcpy(x + r * width, self->input_biases[l], width * sizeof(float));
        }
        if (l > 0)
            products(self, out[l - 1], (int)rows, H, self->packed_kernels[l], (int)width, x);
        memset(hp, 0, width * rows * sizeof(float));
        products(self, h[l], (int)rows, H, self->packed_recurrent[l], (int)width, hp);
        for (Py_ssize_t r = 0; r < rows; r++)
            update(x + r * width, hp + r * width, h[l] + r * H, self->candidate_biases[l], H, out[l] + r * H);
    }
    if (logits == NULL)
        return;
    for (Py_ssize_t r = 0; r < rows; r++)
        memcpy(logits + r * V, self->dense_bias, (size_t)V * sizeof(float));
    products(self, out[L - 1], (int)rows, H, self->packed_dense, V, logits);
}

/* `step` (one step of rows = the number of bytes) or `prime` (the bytes one after another, one row). */
static PyObject *run(Network *self, PyObject *args, int sequence)
{
    Py_buffer ids = {0};
    PyObject *states, *new_states, *logits_object;
    if (!PyArg_ParseTuple(args, "y*O!O!O", &ids, &PyTuple_Type, &states, &PyTuple_Type, &new_states, &logits_object))
        return NULL;
    const int L = self->layers, H = self->hidden, V = self->outputs;
    Py_buffer old[MAX_LAYERS], fresh[MAX_LAYERS], logits = {0};
    int old_held = 0, fresh_held = 0;
    float *scratch = NULL;
    PyObject *result = NULL;
    const Py_ssize_t count = ids.len / 4, rows = sequence ? 1 : count;
    if (L < 1) {                            /* made without its weights (Network.__new__ alone) */
        PyErr_SetString(PyExc_ValueError, "the network has no weights");
        goto done;
    }
    if (ids.len % 4 != 0 || count < 1 || PyTuple_GET_SIZE(states) != L || PyTuple_GET_SIZE(new_states) != L) {
        PyErr_SetString(PyExc_ValueError, "(ids: int32 bytes, at least one; states, new_states: one per layer; logits)");
        goto done;
    }
    for (; old_held < L; old_held++)
        if (float_view(PyTuple_GET_ITEM(states, old_held), &old[old_held], rows * H, 0, "a state") < 0)
            goto done;
    for (; fresh_held < L; fresh_held++)
        if (float_view(PyTuple_GET_ITEM(new_states, fresh_held), &fresh[fresh_held], rows * H, PyBUF_WRITABLE,
                       "a new state") < 0)
            goto done;
    if (float_view(logits_object, &logits, rows * V, PyBUF_WRITABLE, "logits") < 0)
        goto done;
    /* What it writes must not overlap anything else it reads or writes (the kernels' pointers are restrict). */
    {
        const Py_buffer *views[2 * MAX_LAYERS + 1];
        int n = 0;
        for (int l = 0; l < L; l++)
            views[n++] = &old[l];
        for (int l = 0; l < L; l++)
            views[n++] = &fresh[l];
        views[n++] = &logits;
        for (int i = L; i < n; i++)
            for (int j = 0; j < n; j++) {
                const char *a = views[i]->buf, *b = views[j]->buf;
                if (i != j && a < b + views[j]->len && b < a + views[i]->len) {
                    PyErr_SetString(PyExc_ValueError, "the new states and the logits need memory of their own");
                    goto done;
                }
            }
    }
    /* the step's projections, for a sequence two states to go back and forth between, and the byte ids:
       copied, checked, while the GIL is held (another thread may write to the caller's array meanwhile) */
    const size_t scratch_floats = 2 * 3 * (size_t)H * rows + (sequence ? 2 * (size_t)L * H : 0);
    scratch = malloc(sizeof(float) * scratch_floats + sizeof(int32_t) * (size_t)count);
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int32_t *id = (int32_t *)(scratch + scratch_floats);
    memcpy(id, ids.buf, sizeof(int32_t) * (size_t)count);
    for (Py_ssize_t i = 0; i < count; i++)
        if (id[i] < 0 || id[i] >= BYTES) {
            PyErr_SetString(PyExc_ValueError, "a byte id is 0..255");
            goto done;
        }
    const float *h[MAX_LAYERS];
    float *out[MAX_LAYERS];
    for (int l = 0; l < L; l++)
        h[l] = (const float *)old[l].buf;
    Py_BEGIN_ALLOW_THREADS                  /* the views are held: another thread may run meanwhile */
    if (!sequence) {
        for (int l = 0; l < L; l++)
            out[l] = (float *)fresh[l].buf;
        compute(self, id, rows, h, out, (float *)logits.buf, scratch);
    } else {
        float *between[2] = {scratch + 2 * 3 * (size_t)H, scratch + 2 * 3 * (size_t)H + (size_t)L * H};
        for (Py_ssize_t t = 0; t < count; t++) {
            const int last = t == count - 1;
            for (int l = 0; l < L; l++)
                out[l] = last ? (float *)fresh[l].buf : between[t % 2] + (size_t)l * H;
            compute(self, id + t, 1, h, out, last ? (float *)logits.buf : NULL, scratch);
            for (int l = 0; l < L; l++)
                h[l] = out[l];
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(scratch);
    for (int i = 0; i < old_held; i++)
        PyBuffer_Release(&old[i]);
    for (int i = 0; i < fresh_held; i++)
        PyBuffer_Release(&fresh[i]);
    if (logits.obj != NULL)
        PyBuffer_Release(&logits);
    PyBuffer_Release(&ids);
    return result;
}

static PyObject *Network_step(Network *self, PyObject *args)
{
    return run(self, args, 0);
}

static PyObject *Network_prime(Network *self, PyObject *args)
{
    return run(self, args, 1);
}

static PyMethodDef Network_methods[] = {
    {"step", (PyCFunction)Network_step, METH_VARARGS,
     "step(ids, states, new_states, logits): one step of rows = len(ids) // 4 (int32 bytes) from `states` "
     "(one (rows, hidden) float32 array per layer), writing the new states and the (rows, outputs) logits."},
    {"prime", (PyCFunction)Network_prime, METH_VARARGS,
     "prime(ids, states, new_states, logits): the bytes one after another from `states` (one (1, hidden) "
     "float32 array per layer), writing the states after the last and its (1, outputs) logits."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Network_members[] = {
    {"half", T_INT, offsetof(Network, half), READONLY, "1 where the matrices are kept in float16, else 0"},
    {NULL, 0, 0, 0, NULL},
};

static PyObject *module_half_supported(PyObject *module, PyObject *unused)
{
    return PyBool_FromLong(half_supported());
}

static PyMethodDef module_methods[] = {
    {"half_supported", module_half_supported, METH_NOARGS,
     "half_supported(): whether a Network made with half=True keeps float16 matrices on this CPU (unless "
     "float16 cannot hold its weights) "
     "(AVX2, FMA and F16C, and a build with the half kernels)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject NetworkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "textgen_core.model._gru_step.Network",
    .tp_basicsize = sizeof(Network),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Network(input_table, layers, dense_kernel, dense_bias, hidden, half=False): a GRU's folded "
              "float32 weights, held read-only; layers are (kernel, input_bias, recurrent, candidate_bias), the "
              "first one's kernel and input bias None. With half, its copies of the matrices are float16 where "
              "the CPU can multiply them (half_supported()) and float16 holds them: the attribute `half` says which.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Network_init,
    .tp_dealloc = (destructor)Network_dealloc,
    .tp_methods = Network_methods,
    .tp_members = Network_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_gru_step", "One step of the char-GRU for a few rows (optional compiled helper).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__gru_step(void)
{
    if (PyType_Ready(&NetworkType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&NetworkType);
    if (PyModule_AddObject(m, "Network", (PyObject *)&NetworkType) < 0) {
        Py_DECREF(&NetworkType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
