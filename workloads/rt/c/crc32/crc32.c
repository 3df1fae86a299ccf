/*
 * crc32: the example C workload. One job is the CRC-32 (IEEE 802.3, the
 * polynomial of zlib and Ethernet) of a buffer of `len=` bytes (default
 * 4096) filled by the xorshift64* generator every workload uses.
 *
 * A C workload is freestanding C (no libc: build.rs compiles it with
 * -ffreestanding) that provides the four functions of prism.h. The
 * expected values below were computed on the host (Python's zlib.crc32
 * over the same bytes); a host test of rt-workloads recomputes them with
 * the crc32fast crate, and setup checks the published check value of the
 * algorithm first ("123456789" -> 0xCBF43926).
 */
#include "prism.h"

#define SEED 0x9e3779b97f4a7c15ULL
#define MAX_LEN 65536

/* Host-computed CRC-32 of the generator's first `len` bytes. */
static const struct { unsigned long len; unsigned int crc; } expected_crc[] = {
    { 1024, 0x33dcab4bu },
    { 4096, 0x2df3b109u },
    { 16384, 0xaf624a87u },
    { 65536, 0xaa8885afu },
};

static unsigned int table[256];
static unsigned char *buf;
static unsigned long len;
static unsigned int expected;
static unsigned int last;

static unsigned long long next(unsigned long long *s)
{
    unsigned long long x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static unsigned int crc32(const unsigned char *p, unsigned long n)
{
    unsigned int c = 0xffffffffu;
    for (unsigned long i = 0; i < n; i++)
        c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* The value of `key=` in the argument words, as a decimal number. */
static int arg(const char *args, unsigned long n, const char *key, unsigned long *out)
{
    unsigned long klen = 0;
    while (key[klen])
        klen++;
    for (unsigned long i = 0; i + klen < n; i++) {
        if ((i == 0 || args[i - 1] == ' ') && args[i + klen] == '=') {
            unsigned long k = 0;
            while (k < klen && args[i + k] == key[k])
                k++;
            if (k < klen)
                continue;
            unsigned long v = 0, j = i + klen + 1;
            if (j >= n || args[j] < '0' || args[j] > '9')
                return -1;
            while (j < n && args[j] >= '0' && args[j] <= '9')
                v = v * 10 + (unsigned long)(args[j++] - '0');
            *out = v;
            return 0;
        }
    }
    return 1;
}

int prism_setup(const char *args, unsigned long args_len, void *heap, unsigned long heap_size)
{
    for (unsigned int i = 0; i < 256; i++) {
        unsigned int c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    if (crc32((const unsigned char *)"123456789", 9) != 0xcbf43926u)
        return 1;
    len = 4096;
    if (arg(args, args_len, "len", &len) < 0)
        return 2;
    expected = 0;
    for (unsigned long i = 0; i < sizeof expected_crc / sizeof expected_crc[0]; i++)
        if (expected_crc[i].len == len)
            expected = expected_crc[i].crc;
    if (!expected)
        return 3; /* no host-computed value for this length */
    if (len > heap_size || len > MAX_LEN)
        return 4;
    buf = heap;
    unsigned long long s = SEED;
    for (unsigned long i = 0; i < len; i += 8) {
        unsigned long long w = next(&s);
        for (unsigned long b = 0; b < 8 && i + b < len; b++)
            buf[i + b] = (unsigned char)(w >> (8 * b));
    }
    return 0;
}

void prism_job(void)
{
    last = crc32(buf, len);
}

unsigned long long prism_result(void)
{
    return last;
}

unsigned long long prism_expected(void)
{
    return expected;
}
