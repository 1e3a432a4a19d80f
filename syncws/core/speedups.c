/* Optional C accelerator for syncws: the WebSocket mask (RFC 6455 section 5.3).
 *
 * syncws.core.frames uses it when it is built and falls back to a pure-Python version otherwise;
 * both give the same bytes, which the tests check. The loop XORs 8 bytes at a time and
 * releases the GIL for large payloads, so other threads run while a big frame is masked.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Below this size, releasing and taking back the GIL costs more than it saves. */
#define RELEASE_GIL_ABOVE 65536

static void
xor_mask(const unsigned char *in, unsigned char *out, Py_ssize_t size, const unsigned char *mask)
{
    uint64_t mask64;
    unsigned char pattern[8];
    Py_ssize_t i = 0;

    memcpy(pattern, mask, 4);
    memcpy(pattern + 4, mask, 4);
    memcpy(&mask64, pattern, 8);
    /* Every 8-byte block starts at an offset that is a multiple of 4: the pattern lines up. */
    for (; i + 8 <= size; i += 8) {
        uint64_t block;
        memcpy(&block, in + i, 8);
        block ^= mask64;
        memcpy(out + i, &block, 8);
    }
    for (; i < size; i++) {
        out[i] = in[i] ^ mask[i & 3];
    }
}

static PyObject *
apply_mask(PyObject *module, PyObject *args)
{
    Py_buffer data;
    Py_buffer mask;
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "y*y*:apply_mask", &data, &mask)) {
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must contain 4 bytes");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        goto done;
    }
    if (data.len > RELEASE_GIL_ABOVE) {
        Py_BEGIN_ALLOW_THREADS
        xor_mask(data.buf, (unsigned char *)PyBytes_AS_STRING(result), data.len, mask.buf);
        Py_END_ALLOW_THREADS
    }
    else {
        xor_mask(data.buf, (unsigned char *)PyBytes_AS_STRING(result), data.len, mask.buf);
    }

done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, mask) -> bytes\n\nXOR data with the 4-byte mask, repeated."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "syncws.core.speedups",
    "C accelerator for syncws: WebSocket masking.",
    -1,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit_speedups(void)
{
    return PyModule_Create(&speedups_module);
}
