/* Optional C accelerator for syncws: the WebSocket mask (RFC 6455 section 5.3), whole frames
 * built in one buffer, frames parsed with their payload unmasked in one call, and large
 * payloads read straight into the bytes object a message delivers.
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

/* Raise syncws.exceptions.<name>(message): only on the error path, so the module is looked up
 * then (it is in sys.modules already: frames imports it before this module). */
static PyObject *
raise_protocol_error(const char *name, PyObject *message)
{
    PyObject *exceptions, *type;

    if (message == NULL) {
        return NULL;
    }
    exceptions = PyImport_ImportModule("syncws.exceptions");
    if (exceptions == NULL) {
        Py_DECREF(message);
        return NULL;
    }
    type = PyObject_GetAttrString(exceptions, name);
    Py_DECREF(exceptions);
    if (type == NULL) {
        Py_DECREF(message);
        return NULL;
    }
    PyErr_SetObject(type, message);
    Py_DECREF(type);
    Py_DECREF(message);
    return NULL;
}

#define PROTOCOL_ERROR(message) raise_protocol_error("ProtocolError", (message))

/* The arguments that parse_frame() and parse_messages() share: (buffer, start, end, mask, ...).
 * Sets start, end and mask; -1 with an exception set if one is not what it must be. */
static int
frame_range_args(const char *name, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected,
                 Py_ssize_t *start, Py_ssize_t *end, int *mask)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments", name, expected);
        return -1;
    }
    *start = PyLong_AsSsize_t(args[1]);
    if (*start == -1 && PyErr_Occurred()) {
        return -1;
    }
    *end = PyLong_AsSsize_t(args[2]);
    if (*end == -1 && PyErr_Occurred()) {
        return -1;
    }
    *mask = PyObject_IsTrue(args[3]);
    return *mask < 0 ? -1 : 0;
}

/* parse_frame(buffer, start, end, mask, max_size, allow_rsv) -> tuple | None
 *
 * The same checks as frames.parse_header(), in the same order and with the same messages,
 * each made as soon as the bytes it needs are there, before any payload is read. None while
 * the header is incomplete; otherwise (head, size, offset, mask_key, data): the first byte of
 * the frame, the length of the payload, where it starts in buffer, the mask key (None if the
 * frame is not masked) and, if the whole payload is in buffer[:end], the payload unmasked
 * (None otherwise). The buffer is not changed. */
static PyObject *
parse_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t start, end, offset;
    const unsigned char *buf;
    unsigned char head0, head1;
    unsigned long long size;
    int mask, allow_rsv, opcode, fin;
    PyObject *max_size;
    PyObject *result = NULL, *mask_key = NULL, *data = NULL;

    if (frame_range_args("parse_frame", args, nargs, 6, &start, &end, &mask) < 0) {
        return NULL;
    }
    max_size = args[4];
    allow_rsv = PyObject_IsTrue(args[5]);
    if (allow_rsv < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (end < 0) {
        end = view.len;
    }
    if (start < 0 || end > view.len || start > end) {
        PyErr_SetString(PyExc_ValueError, "start and end must be within the buffer");
        goto done;
    }
    buf = (const unsigned char *)view.buf;
    if (end - start < 2) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    head0 = buf[start];
    head1 = buf[start + 1];
    opcode = head0 & 0x0F;
    fin = head0 & 0x80;

    if ((opcode > 0x2 && opcode < 0x8) || opcode > 0xA) {
        PROTOCOL_ERROR(PyUnicode_FromFormat("reserved opcode 0x%x", opcode));
        goto done;
    }
    if ((head0 & 0x70) && !allow_rsv) {
        PROTOCOL_ERROR(PyUnicode_FromString(
            "reserved bits must be 0 without a negotiated extension"));
        goto done;
    }
    if (((head1 & 0x80) != 0) != (mask != 0)) {
        PROTOCOL_ERROR(PyUnicode_FromString(
            mask ? "incorrect masking: expected" : "incorrect masking: unexpected"));
        goto done;
    }
    size = head1 & 0x7F;
    /* RFC 6455 section 5.5: control frames are never fragmented and carry at most 125 bytes. */
    if (opcode >= 0x8) {
        if (!fin) {
            PROTOCOL_ERROR(PyUnicode_FromString("fragmented control frame"));
            goto done;
        }
        if (size > 125) {
            PROTOCOL_ERROR(PyUnicode_FromString("control frame too long"));
            goto done;
        }
    }
    offset = start + 2;
    if (size >= 126) {
        unsigned long long minimum;
        if (size == 126) {
            if (end - start < 4) {
                result = Py_NewRef(Py_None);
                goto done;
            }
            size = ((unsigned long long)buf[offset] << 8) | buf[offset + 1];
            offset += 2;
            minimum = 126;
        }
        else {
            if (end - start < 10) {
                result = Py_NewRef(Py_None);
                goto done;
            }
            size = 0;
            for (int i = 0; i < 8; i++) {
                size = (size << 8) | buf[offset + i];
            }
            offset += 8;
            if (size >> 63) {
                PROTOCOL_ERROR(PyUnicode_FromString(
                    "payload length with the most significant bit set"));
                goto done;
            }
            minimum = 65536;
        }
        /* RFC 6455 section 5.2: the minimal number of bytes must be used for the length. */
        if (size < minimum) {
            PROTOCOL_ERROR(PyUnicode_FromFormat(
                "payload length %llu not encoded in its shortest form", size));
            goto done;
        }
    }
    if (max_size != Py_None) {
        int overflow;
        long long limit = PyLong_AsLongLongAndOverflow(max_size, &overflow);
        if (limit == -1 && !overflow && PyErr_Occurred()) {
            goto done;
        }
        /* A limit past the range of long long is larger than any length (below 2**63). */
        if (overflow < 0 || (overflow == 0 && (limit < 0 || size > (unsigned long long)limit))) {
            raise_protocol_error(
                "PayloadTooBig",
                PyUnicode_FromFormat(
                    "frame of %llu bytes exceeds limit of %S bytes", size, max_size));
            goto done;
        }
    }
    if (mask) {
        if (end - offset < 4) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        mask_key = PyBytes_FromStringAndSize((const char *)buf + offset, 4);
        if (mask_key == NULL) {
            goto done;
        }
        offset += 4;
    }
    else {
        mask_key = Py_NewRef(Py_None);
    }
    if ((unsigned long long)(end - offset) >= size) {
        data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
        if (data == NULL) {
            goto done;
        }
        if (mask) {
            const unsigned char *key = (const unsigned char *)PyBytes_AS_STRING(mask_key);
            if (size > RELEASE_GIL_ABOVE) {
                /* The buffer stays exported while the GIL is released: it cannot be resized. */
                Py_BEGIN_ALLOW_THREADS
                xor_mask(buf + offset, (unsigned char *)PyBytes_AS_STRING(data),
                         (Py_ssize_t)size, key);
                Py_END_ALLOW_THREADS
            }
            else {
                xor_mask(buf + offset, (unsigned char *)PyBytes_AS_STRING(data),
                         (Py_ssize_t)size, key);
            }
        }
        else {
            memcpy(PyBytes_AS_STRING(data), buf + offset, (size_t)size);
        }
    }
    else {
        data = Py_NewRef(Py_None);
    }
    result = PyTuple_New(5);
    if (result == NULL) {
        goto done;
    }
    PyTuple_SET_ITEM(result, 0, PyLong_FromLong(head0));
    PyTuple_SET_ITEM(result, 1, PyLong_FromUnsignedLongLong(size));
    PyTuple_SET_ITEM(result, 2, PyLong_FromSsize_t(offset));
    if (PyTuple_GET_ITEM(result, 0) == NULL || PyTuple_GET_ITEM(result, 1) == NULL
        || PyTuple_GET_ITEM(result, 2) == NULL) {
        Py_CLEAR(result);
        goto done;
    }
    PyTuple_SET_ITEM(result, 3, mask_key);
    PyTuple_SET_ITEM(result, 4, data);
    mask_key = data = NULL;

done:
    Py_XDECREF(mask_key);
    Py_XDECREF(data);
    PyBuffer_Release(&view);
    return result;
}

/* parse_messages() keeps the heads of this many frames on the stack, then allocates. */
#define HEADS_ON_STACK 128

/* Whether data holds ASCII bytes only, 8 at a time. */
static int
is_ascii(const unsigned char *data, Py_ssize_t size)
{
    uint64_t bits = 0;
    Py_ssize_t i = 0;

    for (; i + 8 <= size; i += 8) {
        uint64_t block;
        memcpy(&block, data + i, 8);
        bits |= block;
    }
    for (; i < size; i++) {
        bits |= data[i];
    }
    return (bits & 0x8080808080808080ULL) == 0;
}

/* parse_messages(buffer, start, end, mask, max_size) -> (heads, payloads, stop)
 *
 * The frames from start on that are whole messages and complete in buffer[:end], as long as
 * they come: binary or ASCII text, FIN set, no RSV bit, masked as mask says, the length in
 * its shortest form and at most max_size (None: no limit). heads holds the first byte of
 * each (0x81 or 0x82), payloads their payloads unmasked, and stop is where the next frame
 * starts. It stops before the first frame that is anything else, incomplete or not valid,
 * and never raises for one: parse_frame() takes it from there, with its errors. */
static PyObject *
parse_messages(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, end, count = 0;
    const unsigned char *buf;
    int mask, has_limit = 0;
    unsigned long long limit = 0;
    PyObject *payloads = NULL, *heads = NULL, *result = NULL;
    unsigned char heads_on_stack[HEADS_ON_STACK];
    unsigned char *head_bytes = NULL;

    if (frame_range_args("parse_messages", args, nargs, 5, &pos, &end, &mask) < 0) {
        return NULL;
    }
    if (args[4] != Py_None) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(args[4], &overflow);
        if (value == -1 && !overflow && PyErr_Occurred()) {
            return NULL;
        }
        if (overflow < 0 || (overflow == 0 && value < 0)) {
            /* No frame is that small: a negative limit refuses every frame. */
            end = pos;
        }
        else if (overflow == 0) {
            has_limit = 1;
            limit = (unsigned long long)value;
        }
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (pos < 0 || end > view.len || pos > end) {
        PyErr_SetString(PyExc_ValueError, "start and end must be within the buffer");
        goto done;
    }
    buf = (const unsigned char *)view.buf;
    payloads = PyList_New(0);
    if (payloads == NULL) {
        goto done;
    }
    while (end - pos >= 2) {
        unsigned char head0 = buf[pos], head1 = buf[pos + 1];
        unsigned long long size = head1 & 0x7F;
        Py_ssize_t offset = pos + 2;
        const unsigned char *key = NULL;
        PyObject *data;
        unsigned char *out;

        if ((head0 != 0x81 && head0 != 0x82) || ((head1 & 0x80) != 0) != (mask != 0)) {
            break;
        }
        if (size == 126) {
            if (end - pos < 4) {
                break;
            }
            size = ((unsigned long long)buf[offset] << 8) | buf[offset + 1];
            offset += 2;
            if (size < 126) {
                break;
            }
        }
        else if (size == 127) {
            if (end - pos < 10) {
                break;
            }
            size = 0;
            for (int i = 0; i < 8; i++) {
                size = (size << 8) | buf[offset + i];
            }
            offset += 8;
            if (size < 65536 || size >> 63) {
                break;
            }
        }
        if (has_limit && size > limit) {
            break;
        }
        if (mask) {
            if (end - offset < 4) {
                break;
            }
            key = buf + offset;
            offset += 4;
        }
        if ((unsigned long long)(end - offset) < size) {
            break;
        }
        data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
        if (data == NULL) {
            goto done;
        }
        out = (unsigned char *)PyBytes_AS_STRING(data);
        if (mask) {
            unsigned char key_copy[4];
            memcpy(key_copy, key, 4);
            if (size > RELEASE_GIL_ABOVE) {
                Py_BEGIN_ALLOW_THREADS
                xor_mask(buf + offset, out, (Py_ssize_t)size, key_copy);
                Py_END_ALLOW_THREADS
            }
            else {
                xor_mask(buf + offset, out, (Py_ssize_t)size, key_copy);
            }
        }
        else {
            memcpy(out, buf + offset, (size_t)size);
        }
        if (head0 == 0x81) {
            /* Text that is not ASCII is validated by the generic path. */
            if (!is_ascii(out, (Py_ssize_t)size)) {
                Py_DECREF(data);
                break;
            }
        }
        if (PyList_Append(payloads, data) < 0) {
            Py_DECREF(data);
            goto done;
        }
        Py_DECREF(data);
        if (count == HEADS_ON_STACK) {
            /* At most one frame per 2 bytes: a head for each of the rest fits. */
            head_bytes = PyMem_Malloc((size_t)(count + (end - pos) / 2 + 1));
            if (head_bytes == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            memcpy(head_bytes, heads_on_stack, HEADS_ON_STACK);
        }
        (head_bytes == NULL ? heads_on_stack : head_bytes)[count++] = head0;
        pos = offset + (Py_ssize_t)size;
    }
    heads = PyBytes_FromStringAndSize(
        (const char *)(head_bytes == NULL ? heads_on_stack : head_bytes), count);
    if (heads == NULL) {
        goto done;
    }
    result = PyTuple_New(3);
    if (result == NULL) {
        goto done;
    }
    PyTuple_SET_ITEM(result, 2, PyLong_FromSsize_t(pos));
    if (PyTuple_GET_ITEM(result, 2) == NULL) {
        Py_CLEAR(result);
        goto done;
    }
    PyTuple_SET_ITEM(result, 0, heads);
    PyTuple_SET_ITEM(result, 1, payloads);
    heads = payloads = NULL;

done:
    PyMem_Free(head_bytes);
    Py_XDECREF(heads);
    Py_XDECREF(payloads);
    PyBuffer_Release(&view);
    return result;
}

/* Block(size): a new bytes object of size bytes, written through the buffer protocol
 * (memoryview(block) is writable, and recv_into() fills it) until finish() hands it out, so
 * that a large payload is read straight into the bytes a message delivers: no buffer to copy it
 * out of. finish(mask_key=None) unmasks it in place first, if given a key. The block keeps the
 * bytes for as long as it lives, so that a view taken before finish() never points to freed
 * memory; no view is lent after. */
typedef struct {
    PyObject_HEAD
    PyObject *bytes;
    int finished;
} BlockObject;

static PyObject *
block_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t size;
    BlockObject *self;

    if (!PyArg_ParseTuple(args, "n:Block", &size)) {
        return NULL;
    }
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Block() takes no keyword arguments");
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "size must not be negative");
        return NULL;
    }
    self = (BlockObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->bytes = PyBytes_FromStringAndSize(NULL, size);
    if (self->bytes == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
block_dealloc(BlockObject *self)
{
    Py_XDECREF(self->bytes);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t
block_length(BlockObject *self)
{
    return PyBytes_GET_SIZE(self->bytes);
}

static int
block_getbuffer(BlockObject *self, Py_buffer *view, int flags)
{
    if (self->finished) {
        PyErr_SetString(PyExc_BufferError, "the block was finished: its bytes are read-only");
        view->obj = NULL;
        return -1;
    }
    return PyBuffer_FillInfo(view, (PyObject *)self, PyBytes_AS_STRING(self->bytes),
                             PyBytes_GET_SIZE(self->bytes), 0, flags);
}

static PyObject *
block_finish(BlockObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *key = Py_None;
    Py_ssize_t size = PyBytes_GET_SIZE(self->bytes);
    unsigned char *data = (unsigned char *)PyBytes_AS_STRING(self->bytes);

    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "finish() takes at most 1 argument (%zd given)", nargs);
        return NULL;
    }
    if (nargs == 1) {
        key = args[0];
    }
    if (self->finished) {
        PyErr_SetString(PyExc_RuntimeError, "the block was finished already");
        return NULL;
    }
    if (key != Py_None) {
        if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) != 4) {
            PyErr_SetString(PyExc_ValueError, "mask_key must be 4 bytes or None");
            return NULL;
        }
        if (size > RELEASE_GIL_ABOVE) {
            const unsigned char *mask = (const unsigned char *)PyBytes_AS_STRING(key);
            Py_BEGIN_ALLOW_THREADS
            xor_mask(data, data, size, mask);
            Py_END_ALLOW_THREADS
        }
        else {
            xor_mask(data, data, size, (const unsigned char *)PyBytes_AS_STRING(key));
        }
    }
    self->finished = 1;
    Py_INCREF(self->bytes);
    return self->bytes;
}

static PyMethodDef block_methods[] = {
    {"finish", (PyCFunction)(void (*)(void))block_finish, METH_FASTCALL,
     "finish(mask_key=None, /) -> bytes\n\n"
     "The bytes written, unmasked in place with mask_key if given; the block lends no view\n"
     "after."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods block_as_sequence = {
    .sq_length = (lenfunc)block_length,
};

static PyBufferProcs block_as_buffer = {
    .bf_getbuffer = (getbufferproc)block_getbuffer,
};

static PyTypeObject BlockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "syncws.core.speedups.Block",
    .tp_basicsize = sizeof(BlockObject),
    .tp_dealloc = (destructor)block_dealloc,
    .tp_as_sequence = &block_as_sequence,
    .tp_as_buffer = &block_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Block(size, /)\n\n"
              "A new bytes object of size bytes, written through memoryview(block) until\n"
              "finish() returns it.",
    .tp_methods = block_methods,
    .tp_new = block_new,
};

static PyMethodDef speedups_methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, mask) -> bytes\n\nXOR data with the 4-byte mask, repeated."},
    {"encode_frame", encode_frame, METH_VARARGS,
     "encode_frame(head, data, mask_key=None) -> bytes\n\n"
     "One frame: header, mask key and masked payload, in one buffer."},
    {"parse_frame", (PyCFunction)(void (*)(void))parse_frame, METH_FASTCALL,
     "parse_frame(buffer, start, end, mask, max_size, allow_rsv, /) -> tuple | None\n\n"
     "Check the frame header at start in buffer, as frames.parse_header() does; None while\n"
     "it is incomplete, else (head, size, offset, mask_key, data), data being the payload\n"
     "unmasked if it is all in buffer[:end], else None."},
    {"parse_messages", (PyCFunction)(void (*)(void))parse_messages, METH_FASTCALL,
     "parse_messages(buffer, start, end, mask, max_size, /) -> (heads, payloads, stop)\n\n"
     "The whole binary or ASCII text messages, complete in buffer[:end], that come from\n"
     "start on: their first bytes, their payloads unmasked, and where the next frame starts."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "syncws.core.speedups",
    "C accelerator for syncws: WebSocket masking, frame encoding and parsing.",
    -1,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit_speedups(void)
{
    PyObject *module;

    if (PyType_Ready(&BlockType) < 0) {
        return NULL;
    }
    module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&BlockType);
    if (PyModule_AddObject(module, "Block", (PyObject *)&BlockType) < 0) {
        Py_DECREF(&BlockType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
