/* Optional C accelerator for syncws: the WebSocket mask (RFC 6455 section 5.3), and whole
 * frames built in one buffer.
 *
 * syncws.core.frames uses it when it is built and falls back to pure-Python versions otherwise;
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

/* encode_frame(head, data, mask_key=None) -> bytes: the frame's header, the mask key if any,
 * and the payload (masked with the key), written once into one new bytes object: no
 * intermediate masked copy and no concatenation. */
static PyObject *
encode_frame(PyObject *module, PyObject *args)
{
    int head;
    Py_buffer data;
    PyObject *mask_obj = Py_None;
    Py_buffer mask = {0};
    PyObject *result = NULL;
    unsigned char *out;
    Py_ssize_t header_size;
    int masked;

    if (!PyArg_ParseTuple(args, "iy*|O:encode_frame", &head, &data, &mask_obj)) {
        return NULL;
    }
    masked = mask_obj != Py_None;
    if (masked) {
        if (PyObject_GetBuffer(mask_obj, &mask, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&data);
            return NULL;
        }
        if (mask.len != 4) {
            PyErr_SetString(PyExc_ValueError, "mask must contain 4 bytes");
            goto done;
        }
    }
    if (head < 0 || head > 255) {
        PyErr_SetString(PyExc_ValueError, "head must be a byte");
        goto done;
    }
    header_size = data.len < 126 ? 2 : data.len < 65536 ? 4 : 10;
    result = PyBytes_FromStringAndSize(NULL, header_size + (masked ? 4 : 0) + data.len);
    if (result == NULL) {
        goto done;
    }
    out = (unsigned char *)PyBytes_AS_STRING(result);
    out[0] = (unsigned char)head;
    if (header_size == 2) {
        out[1] = (masked ? 0x80 : 0) | (unsigned char)data.len;
    }
    else if (header_size == 4) {
        out[1] = (masked ? 0x80 : 0) | 126;
        out[2] = (unsigned char)(data.len >> 8);
        out[3] = (unsigned char)data.len;
    }
    else {
        uint64_t size = (uint64_t)data.len;
        out[1] = (masked ? 0x80 : 0) | 127;
        for (int i = 9; i >= 2; i--) {
            out[i] = (unsigned char)size;
            size >>= 8;
        }
    }
    out += header_size;
    if (masked) {
        memcpy(out, mask.buf, 4);
        out += 4;
        if (data.len > RELEASE_GIL_ABOVE) {
            Py_BEGIN_ALLOW_THREADS
            xor_mask(data.buf, out, data.len, mask.buf);
            Py_END_ALLOW_THREADS
        }
        else {
            xor_mask(data.buf, out, data.len, mask.buf);
        }
    }
    else {
        memcpy(out, data.buf, data.len);
    }

done:
    PyBuffer_Release(&data);
    if (masked) {
        PyBuffer_Release(&mask);
    }
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, mask) -> bytes\n\nXOR data with the 4-byte mask, repeated."},
    {"encode_frame", encode_frame, METH_VARARGS,
     "encode_frame(head, data, mask_key=None) -> bytes\n\n"
     "One frame: header, mask key and masked payload, in one buffer."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "syncws.core.speedups",
    "C accelerator for syncws: WebSocket masking and frame encoding.",
    -1,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit_speedups(void)
{
    return PyModule_Create(&speedups_module);
}
