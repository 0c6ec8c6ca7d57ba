/* npy.c: NumPy .npy arrays (float32), to hand logits to Python. */
#include "internal.h"

#include <string.h>

rn_status rn_npy_save(const char *path, const rn_real *data, int ndim, const int64_t *shape) {
    if (ndim < 1 || ndim > 4) return rni_fail(RN_ERR_ARG, "npy: %d dimensions", ndim);
    char dict[256];
    size_t o = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || !rni_mul_ok(count, (size_t)shape[i], &count) || count > ((size_t)1 << 46))
            return rni_fail(RN_ERR_ARG, "npy: invalid shape (dimension %d is %lld)", i, (long long)shape[i]);
        o += snprintf(dict + o, sizeof dict - o, "%lld,%s", (long long)shape[i], i + 1 < ndim ? " " : "");
    }
    o += snprintf(dict + o, sizeof dict - o, "), }");
    /* magic (6) + version (2) + header length (2) + dict, padded to 64 with a final \n */
    size_t total = (10 + o + 1 + 63) & ~(size_t)63;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    size_t hl = total - 10;
    pre[8] = (unsigned char)(hl & 255); pre[9] = (unsigned char)(hl >> 8);
    memset(dict + o, ' ', hl - o - 1);
    dict[hl - 1] = '\n';
    rn_atomic_file af;
    rn_status st = rn_atomic_open(&af, path);
    if (st != RN_OK) return st;
    st = rn_atomic_write(&af, pre, 10);
    if (st == RN_OK) st = rn_atomic_write(&af, dict, hl);
    float buf[1024];
    size_t nb = 0;
    for (size_t i = 0; i < count && st == RN_OK; i++) {
        buf[nb++] = (float)data[i];
        if (nb == 1024 || i + 1 == count) { st = rn_atomic_write(&af, buf, nb * 4); nb = 0; }
    }
    if (st == RN_OK) return rn_atomic_commit(&af);
    rn_atomic_abort(&af);
    return st;
}
