/* Antialiased crop-resize of uint8 RGB images (triangle filter, as Pillow's BILINEAR), with a fused mirror.
 *
 * Separable, one output row at a time, in fixed point:
 *   vertical pass:   the window's columns of the row's source rows -> one row of
 *                    int16 "mid" values, value * 128 (Q7), coefficients u16 summing
 *                    to 1 << 15, each product truncated: ((v << 8) * c) >> 16;
 *   horizontal pass: mid -> uint8 RGB, coefficients int16 summing to 1 << 14,
 *                    exact int32 sums rounded once: (sum + 2^20) >> 21.
 * Weights are non-negative and sum to one exactly, so nothing overflows or
 * saturates and a constant image stays constant. A pass with more than
 * NARROW_TAPS taps per output (a downscale beyond 16x, where 16 bits lose the
 * small weights and the truncations add up) takes the wide path instead:
 * portable C, coefficients summing to 1 << 22, exact int32/int64 sums rounded
 * once. Three implementations give the same pixels, bit for bit, the best the
 * CPU has chosen at run time: AVX-512 (BW, VBMI), AVX2 and portable C.
 *
 * Built as the extension module ccrop_loaders.core._resample (the Python module
 * is empty; the functions are reached through ctypes, from numba-compiled loops).
 */
#ifndef CCROP_NO_PYTHON /* defined by the sanitizer harness (tests/ffcv), which links without Python */
#include <Python.h>
#endif
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_X86_SIMD 1
#include <immintrin.h>
#endif

enum {
    RESIZE_OK = 0,
    RESIZE_BAD_WINDOW = 1,    /* empty, or not inside the image */
    RESIZE_BAD_SIZE = 2,      /* an image or output dimension below 1 */
    RESIZE_SMALL_SCRATCH = 3, /* the scratch is smaller than ccrop_resize_scratch_bytes asks */
};

#define ROW_BITS 15 /* vertical coefficients sum to 1 << ROW_BITS; mid = value << 7 */
#define COL_BITS 14 /* horizontal coefficients sum to 1 << COL_BITS */
#define OUT_SHIFT (7 + COL_BITS)
#define NARROW_TAPS 34 /* passes with more taps per output (downscales beyond 16x) take the wide path: */
#define WIDE_BITS 22   /* portable C, coefficients summing to 1 << WIDE_BITS, int32 / int64 sums rounded once */
#define GROUP 8 /* the AVX2 horizontal pass makes 8 output pixels per step */
#define CHUNK 16 /* the AVX-512 horizontal pass makes 4 chunks of 16 output values (bytes) per step */

enum { SIMD_NONE = 0, SIMD_AVX2 = 1, SIMD_AVX512 = 2 }; /* instruction sets, each needing the ones before */

/* The most taps one output can have when `extent` input pixels map onto `out_size` outputs. */
static int64_t taps_bound(double extent, int64_t out_size) {
    double scale = extent / (double)out_size;
    return (int64_t)ceil(scale > 1.0 ? scale : 1.0) * 2 + 2;
}

/* Where each table lives in the scratch, for one window and output size. */
struct plan {
    int64_t col0, span;                      /* first source column of the window; its width in bytes (3 per pixel) */
    int32_t row_stride, col_stride;          /* taps bound per row / column output: the tables' row length (even) */
    int32_t col_taps;                        /* the most taps any column output has */
    int64_t pairs, mid_length;
    int32_t *row_first, *row_count, *row_coef;
    int32_t *col_first, *col_coef;
    int32_t *pair_first;                     /* AVX2: the two pixels' first mid index per output pair */
    int16_t *pair_coef, *mid;
    int64_t chunks;                          /* AVX-512: CHUNK-value chunks of an output row, a multiple of 4 */
    int32_t *chunk_first;                    /* AVX-512: first mid index of the 64 int16 each chunk reads */
    uint8_t *chunk_index;                    /* AVX-512: per chunk and tap pair, 64 byte indices into those */
    int16_t *chunk_coef;                     /*          and the 32 coefficients they are multiplied by */
    int32_t *wide_sum;                       /* the wide vertical pass: exact sums, span of them */
    float *weights;
};

/* The next `bytes` of the scratch at *cursor, 32-byte aligned. */
static void *take(uintptr_t *cursor, int64_t bytes) {
    void *table = (void *)*cursor;
    *cursor += (uintptr_t)(bytes + 31) / 32 * 32;
    return table;
}

/* Lays the tables for a window of up to `height` x `width` pixels out from `base` (32-byte aligned, or 0 to
 * only size them) into `plan`; returns the bytes of scratch they need. */
static int64_t layout(double height, double width, int64_t out_h, int64_t out_w, uintptr_t base, struct plan *plan) {
    int64_t row_stride = taps_bound(height, out_h), col_stride = taps_bound(width, out_w);
    int64_t groups = (col_stride + 1) / 2;
    int64_t pairs = (out_w + GROUP - 1) / GROUP * (GROUP / 2);
    int64_t span = ((int64_t)ceil(width) + 1) * 3;
    uintptr_t cursor = base;
    plan->row_stride = (int32_t)row_stride;
    plan->col_stride = (int32_t)col_stride;
    plan->pairs = pairs;
    plan->mid_length = span + 6 * (2 * groups + 2) + 64; /* vector loads read past the window: zeros */
    plan->mid = take(&cursor, plan->mid_length * 2);
    plan->pair_coef = take(&cursor, pairs * groups * 16 * 2);
    plan->row_first = take(&cursor, out_h * 4);
    plan->row_count = take(&cursor, out_h * 4);
    plan->row_coef = take(&cursor, out_h * row_stride * 4);
    plan->col_first = take(&cursor, out_w * 4);
    plan->col_coef = take(&cursor, out_w * col_stride * 4);
    plan->pair_first = take(&cursor, pairs * 2 * 4);
    plan->weights = take(&cursor, (row_stride > col_stride ? row_stride : col_stride) * 4);
    plan->chunks = (3 * out_w + 4 * CHUNK - 1) / (4 * CHUNK) * 4;
    plan->chunk_first = take(&cursor, plan->chunks * 4);
    plan->chunk_index = take(&cursor, plan->chunks * groups * 4 * CHUNK);
    plan->chunk_coef = take(&cursor, plan->chunks * groups * 2 * CHUNK * 2);
    plan->wide_sum = take(&cursor, span * 4);
    return (int64_t)(cursor - base) + 32; /* the caller's buffer may start anywhere: room to align it */
}

/* The source column of output pixel `xo`, mirrored or not; past the row (the SIMD passes' padding), the last. */
static inline int64_t source_column(int64_t xo, int64_t out_w, int mirror) {
    xo = xo < out_w ? xo : out_w - 1;
    return mirror ? out_w - 1 - xo : xo;
}

static inline int64_t floor_int(double x) {
    int64_t i = (int64_t)x;
    return i - (x < (double)i);
}

/* Triangle-filter taps of `out_size` outputs over the input span [start, start + extent).
 *
 * Taps stay within the input pixels [lo_limit, hi_limit) (those the span touches, inside the image);
 * the support widens with the downscale factor (antialiasing), upscaling is
 * plain bilinear. Output o reads inputs first[o] + k for k < count[o] (count
 * may be NULL), weights coef[o * stride + k]: ints >= 0 summing to 1 << bits
 * (rounded cumulatively: each within 1 of its exact value), zero from count[o]
 * to stride. Returns the largest count. Branch-light: it runs for every view.
 */
static int32_t filter_taps(double start, double extent, int64_t out_size, int64_t lo_limit, int64_t hi_limit,
                           int bits, int32_t stride, float *weights, int32_t *first, int32_t *count, int32_t *coef) {
    double scale = extent / (double)out_size;
    double support = scale > 1.0 ? scale : 1.0;
    float inverse = (float)(1.0 / support);
    int32_t most = 1;
    memset(coef, 0, (size_t)(out_size * stride) * sizeof *coef);
    for (int64_t o = 0; o < out_size; o++) {
        double center = start + ((double)o + 0.5) * scale;
        int64_t lo = floor_int(center - support + 0.5);
        int64_t hi = floor_int(center + support + 0.5);
        lo = lo < lo_limit ? lo_limit : lo;
        hi = hi > hi_limit ? hi_limit : hi;
        hi = hi < lo + 1 ? lo + 1 : hi;
        int32_t n = (int32_t)(hi - lo);
        float offset = (float)((double)lo - center + 0.5);
        double total = 0.0;
        for (int32_t k = 0; k < n; k++) {
            float w = 1.0f - fabsf((offset + (float)k) * inverse);
            w = w > 0.0f ? w : 0.0f;
            weights[k] = w;
            total += w;
        }
        /* total > 0: the pixel under the centre (or, at the span's end, next to it) is within 0.5 of it */
        int32_t *q = coef + o * stride, before = 0;
        double norm = (double)(1 << bits) / total, cumulative = 0.0;
        for (int32_t k = 0; k < n; k++) {
            cumulative += weights[k];
            int32_t upto = k == n - 1 ? 1 << bits : (int32_t)(cumulative * norm + 0.5);
            q[k] = upto - before;
            before = upto;
        }
        first[o] = (int32_t)lo;
        if (count != NULL)
            count[o] = n;
        most = n > most ? n : most;
    }
    return most;
}

/* ---- portable C (the vertical pass is written for the compiler's vectorizer: -O3) ---- */

static void vertical_portable(const struct plan *p, const uint8_t *row0, int64_t stride, int64_t y) {
    const int32_t *c = p->row_coef + y * p->row_stride;
    const int32_t n = p->row_count[y];
    const int64_t span = p->span;
    uint16_t *restrict mid = (uint16_t *)p->mid;
    memset(mid, 0, (size_t)span * sizeof *mid);
    for (int32_t k = 0; k < n; k++) { /* a high-half multiply per tap (pmulhuw, umull): the compiler vectorizes it */
        const uint8_t *restrict src = row0 + k * stride;
        const uint16_t w = (uint16_t)c[k];
        for (int64_t j = 0; j < span; j++)
            mid[j] += (uint16_t)(((uint32_t)(uint16_t)(src[j] << 8) * w) >> 16);
    }
}

static void horizontal_portable(const struct plan *p, int mirror, uint8_t *dst, int64_t out_w) {
    const int16_t *const mid = p->mid;
    const int32_t taps = p->col_taps;
    for (int64_t xo = 0; xo < out_w; xo++) {
        int64_t x = source_column(xo, out_w, mirror);
        const int16_t *src = mid + (int64_t)p->col_first[x] * 3;
        const int32_t *c = p->col_coef + x * p->col_stride;
        int32_t r = 1 << (OUT_SHIFT - 1), g = r, b = r;
        for (int32_t k = 0; k < taps; k++) {
            r += src[3 * k] * c[k];
            g += src[3 * k + 1] * c[k];
            b += src[3 * k + 2] * c[k];
        }
        dst[3 * xo] = (uint8_t)(r >> OUT_SHIFT);
        dst[3 * xo + 1] = (uint8_t)(g >> OUT_SHIFT);
        dst[3 * xo + 2] = (uint8_t)(b >> OUT_SHIFT);
    }
}

/* ---- wide: portable C for any number of taps (extreme downscales), the same whatever the instruction set ---- */

static void vertical_wide(const struct plan *p, const uint8_t *row0, int64_t stride, int64_t y) {
    const int32_t *c = p->row_coef + y * p->row_stride;
    const int32_t n = p->row_count[y];
    const int64_t span = p->span;
    int32_t *restrict sum = p->wide_sum; /* at most 255 << WIDE_BITS: fits */
    memset(sum, 0, (size_t)span * sizeof *sum);
    for (int32_t k = 0; k < n; k++) {
        const uint8_t *restrict src = row0 + k * stride;
        const int32_t w = c[k];
        for (int64_t j = 0; j < span; j++)
            sum[j] += src[j] * w;
    }
    for (int64_t j = 0; j < span; j++) /* to mid's Q7, rounded */
        p->mid[j] = (int16_t)((sum[j] + (1 << (WIDE_BITS - 8))) >> (WIDE_BITS - 7));
}

static void horizontal_wide(const struct plan *p, int mirror, uint8_t *dst, int64_t out_w) {
    const int16_t *const mid = p->mid;
    const int32_t taps = p->col_taps;
    for (int64_t xo = 0; xo < out_w; xo++) {
        int64_t x = source_column(xo, out_w, mirror);
        const int16_t *src = mid + (int64_t)p->col_first[x] * 3;
        const int32_t *c = p->col_coef + x * p->col_stride;
        int64_t r = (int64_t)1 << (WIDE_BITS + 6), g = r, b = r;
        for (int32_t k = 0; k < taps; k++) {
            r += (int64_t)src[3 * k] * c[k];
            g += (int64_t)src[3 * k + 1] * c[k];
            b += (int64_t)src[3 * k + 2] * c[k];
        }
        dst[3 * xo] = (uint8_t)(r >> (WIDE_BITS + 7));
        dst[3 * xo + 1] = (uint8_t)(g >> (WIDE_BITS + 7));
        dst[3 * xo + 2] = (uint8_t)(b >> (WIDE_BITS + 7));
    }
}

/* ---- AVX2 ---- */

#ifdef HAVE_X86_SIMD
/* Output pixels in pairs (2q, 2q + 1) of output order, taps in twos: per pair q and group g, 16 int16
 * (c0 c1 c0 c1 c0 c1 0 0 | the same for the second pixel), matching what `spread` makes of mid. */
__attribute__((target("avx2"))) static void plan_pairs(struct plan *p, int mirror, int64_t out_w) {
    int32_t groups = (p->col_taps + 1) / 2;
    for (int64_t q = 0; q < p->pairs; q++) {
        int64_t x[2];
        for (int i = 0; i < 2; i++) {
            x[i] = source_column(2 * q + i, out_w, mirror);
            p->pair_first[2 * q + i] = p->col_first[x[i]] * 3;
        }
        const int32_t *a = p->col_coef + x[0] * p->col_stride, *b = p->col_coef + x[1] * p->col_stride;
        for (int32_t g = 0; g < groups; g++) { /* tap 2g + 1 is inside the row: col_stride is even */
            int32_t ca = (int32_t)((uint32_t)a[2 * g] | (uint32_t)a[2 * g + 1] << 16); /* both in [0, 1 << 14] */
            int32_t cb = (int32_t)((uint32_t)b[2 * g] | (uint32_t)b[2 * g + 1] << 16);
            _mm256_storeu_si256((__m256i *)(p->pair_coef + (q * groups + g) * 16),
                                _mm256_setr_epi32(ca, ca, ca, 0, cb, cb, cb, 0));
        }
    }
}

__attribute__((target("avx2"))) static void vertical_avx2(const struct plan *p, const uint8_t *row0, int64_t stride,
                                                          int64_t y) {
    const int32_t *c = p->row_coef + y * p->row_stride;
    int32_t n = p->row_count[y];
    const int64_t span = p->span;
    int16_t *const mid = p->mid;
    const __m256i zero = _mm256_setzero_si256();
    for (int64_t j = 0; j + 32 <= span || (j < span && span >= 32); j += 32) {
        j = j + 32 <= span ? j : span - 32; /* the last step overlaps the one before it: the same values again */
        __m256i lo = zero, hi = zero;
        for (int32_t k = 0; k < n; k++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(row0 + k * stride + j));
            __m256i w = _mm256_set1_epi16((short)c[k]);
            lo = _mm256_add_epi16(lo, _mm256_mulhi_epu16(_mm256_unpacklo_epi8(zero, v), w)); /* (v << 8) * w >> 16 */
            hi = _mm256_add_epi16(hi, _mm256_mulhi_epu16(_mm256_unpackhi_epi8(zero, v), w));
        }
        _mm256_storeu_si256((__m256i *)(mid + j), _mm256_permute2x128_si256(lo, hi, 0x20));
        _mm256_storeu_si256((__m256i *)(mid + j + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
    if (span < 32)
        vertical_portable(p, row0, stride, y);
}

/* Two output pixels' taps 2g, 2g + 1: mid at a and b (int16 RGB) -> (r0 r1 g0 g1 b0 b1 0 0) per 128-bit lane. */
#define PAIR_TAPS(a, b, spread)                                                                          \
    _mm256_shuffle_epi8(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(a))), \
                                                _mm_loadu_si128((const __m128i *)(b)), 1),               \
                        spread)

__attribute__((target("avx2"))) static void horizontal_avx2(const struct plan *p, uint8_t *dst, int64_t out_w) {
    const __m256i spread = _mm256_setr_epi8(0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11, -1, -1, -1, -1,
                                            0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11, -1, -1, -1, -1);
    const __m128i drop_fourth = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    const __m256i half = _mm256_set1_epi32(1 << (OUT_SHIFT - 1));
    const int32_t groups = (p->col_taps + 1) / 2;
    const int64_t pairs = p->pairs;
    const int32_t *const pair_first = p->pair_first;
    const int16_t *const pair_coef = p->pair_coef, *const mid = p->mid;
    for (int64_t q = 0; q < pairs; q += GROUP / 2) {
        const int32_t *f = pair_first + 2 * q;
        const int16_t *c = pair_coef + q * groups * 16;
        __m256i s0 = half, s1 = half, s2 = half, s3 = half; /* pairs q .. q + 3, 4 int32 (RGB0) per pixel */
        for (int32_t g = 0; g < groups; g++) {
            const int16_t *m = mid + 6 * g;
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(PAIR_TAPS(m + f[0], m + f[1], spread),
                                                        _mm256_loadu_si256((const __m256i *)(c + 16 * g))));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(PAIR_TAPS(m + f[2], m + f[3], spread),
                                                        _mm256_loadu_si256((const __m256i *)(c + 16 * (groups + g)))));
            s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(PAIR_TAPS(m + f[4], m + f[5], spread),
                                                        _mm256_loadu_si256((const __m256i *)(c + 16 * (2 * groups + g)))));
            s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(PAIR_TAPS(m + f[6], m + f[7], spread),
                                                        _mm256_loadu_si256((const __m256i *)(c + 16 * (3 * groups + g)))));
        }
        /* lanes hold pixels (0 2 4 6 | 1 3 5 7) after packing; interleave them back, drop the fourth bytes */
        __m256i packed = _mm256_packus_epi16(
            _mm256_packs_epi32(_mm256_srai_epi32(s0, OUT_SHIFT), _mm256_srai_epi32(s1, OUT_SHIFT)),
            _mm256_packs_epi32(_mm256_srai_epi32(s2, OUT_SHIFT), _mm256_srai_epi32(s3, OUT_SHIFT)));
        __m128i even = _mm256_castsi256_si128(packed), odd = _mm256_extracti128_si256(packed, 1);
        __m128i first4 = _mm_shuffle_epi8(_mm_unpacklo_epi32(even, odd), drop_fourth);
        __m128i last4 = _mm_shuffle_epi8(_mm_unpackhi_epi32(even, odd), drop_fourth);
        int64_t x = 2 * q;
        if (x + GROUP + 2 <= out_w) { /* 16-byte stores: their 4 extra bytes land on pixels written next */
            _mm_storeu_si128((__m128i *)(dst + 3 * x), first4);
            _mm_storeu_si128((__m128i *)(dst + 3 * x + 12), last4);
        } else {
            uint8_t staged[32];
            _mm_storeu_si128((__m128i *)staged, first4);
            _mm_storeu_si128((__m128i *)(staged + 12), last4);
            memcpy(dst + 3 * x, staged, (size_t)(3 * (out_w - x < GROUP ? out_w - x : GROUP)));
        }
    }
}
#endif

/* ---- AVX-512 (BW, VBMI) ---- */

#ifdef HAVE_X86_SIMD
/* Output values (bytes, output order) in chunks of CHUNK whose taps lie within 64 int16 of mid from the chunk's
 * first: two 64-byte loads serve the chunk, vpermt2b gathers per tap pair g the two int16 each value multiplies
 * (vpmaddwd: one int32 per value, no lane wasted on a fourth channel). Padding values past the row repeat the
 * last. Returns 0 where a chunk's taps spread wider (downscales beyond ~2.5x): that view takes the AVX2 path. */
static int plan_chunks(struct plan *p, int mirror, int64_t out_w) {
    const int32_t groups = (p->col_taps + 1) / 2;
    const int64_t values = 3 * out_w;
    for (int64_t k = 0; k < p->chunks; k++) {
        int32_t first[CHUNK], base = INT32_MAX;
        int64_t column[CHUNK];
        for (int j = 0; j < CHUNK; j++) {
            int64_t v = k * CHUNK + j < values ? k * CHUNK + j : values - 1;
            column[j] = source_column(v / 3, out_w, mirror);
            first[j] = p->col_first[column[j]] * 3 + (int32_t)(v % 3);
            base = first[j] < base ? first[j] : base;
        }
        p->chunk_first[k] = base;
        for (int j = 0; j < CHUNK; j++) {
            int32_t offset = first[j] - base;
            if (offset + 3 * (2 * groups - 1) > 63)
                return 0;
            const int32_t *c = p->col_coef + column[j] * p->col_stride;
            for (int32_t g = 0; g < groups; g++) { /* tap 2g + 1 is inside the row: col_stride is even */
                uint8_t *index = p->chunk_index + (k * groups + g) * 4 * CHUNK + 4 * j; /* the int16s' bytes */
                int16_t *coef = p->chunk_coef + (k * groups + g) * 2 * CHUNK + 2 * j;
                index[0] = (uint8_t)(2 * (offset + 6 * g));
                index[1] = (uint8_t)(2 * (offset + 6 * g) + 1);
                index[2] = (uint8_t)(2 * (offset + 6 * g + 3));
                index[3] = (uint8_t)(2 * (offset + 6 * g + 3) + 1);
                coef[0] = (int16_t)c[2 * g];
                coef[1] = (int16_t)c[2 * g + 1];
            }
        }
    }
    return 1;
}

__attribute__((target("avx512f,avx512bw"))) static void vertical_avx512(const struct plan *p, const uint8_t *row0,
                                                                       int64_t stride, int64_t y) {
    const int32_t *c = p->row_coef + y * p->row_stride;
    int32_t n = p->row_count[y];
    const int64_t span = p->span;
    int16_t *const mid = p->mid;
    const __m512i zero = _mm512_setzero_si512();
    const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    for (int64_t j = 0; j < span; j += 64) {
        /* the last step loads only the window's bytes (zeros past it) and writes zeros into mid's padding */
        __mmask64 bytes = span - j >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (span - j)) - 1;
        __m512i lo = zero, hi = zero;
        for (int32_t k = 0; k < n; k++) {
            __m512i v = _mm512_maskz_loadu_epi8(bytes, row0 + k * stride + j);
            __m512i w = _mm512_set1_epi16((short)c[k]);
            lo = _mm512_add_epi16(lo, _mm512_mulhi_epu16(_mm512_unpacklo_epi8(zero, v), w)); /* (v << 8) * w >> 16 */
            hi = _mm512_add_epi16(hi, _mm512_mulhi_epu16(_mm512_unpackhi_epi8(zero, v), w));
        }
        _mm512_storeu_si512(mid + j, _mm512_permutex2var_epi64(lo, first, hi)); /* back to source order */
        _mm512_storeu_si512(mid + j + 32, _mm512_permutex2var_epi64(lo, second, hi));
    }
}

/* Chunk k's 16 values as int32, already shifted: its two 64-byte loads of mid, a gather and a multiply-add per
 * tap pair. */
__attribute__((target("avx512f,avx512bw,avx512vbmi"), always_inline)) static inline __m512i
chunk_values(const struct plan *p, int64_t k, int32_t groups) {
    const int16_t *m = p->mid + p->chunk_first[k];
    const uint8_t *index = p->chunk_index + k * groups * 4 * CHUNK;
    const int16_t *coef = p->chunk_coef + k * groups * 2 * CHUNK;
    const __m512i lo = _mm512_loadu_si512(m), hi = _mm512_loadu_si512(m + 32);
    __m512i sum = _mm512_set1_epi32(1 << (OUT_SHIFT - 1));
    for (int32_t g = 0; g < groups; g++)
        sum = _mm512_add_epi32(sum, _mm512_madd_epi16(_mm512_permutex2var_epi8(lo, _mm512_loadu_si512(index + 4 * CHUNK * g), hi),
                                                      _mm512_loadu_si512(coef + 2 * CHUNK * g)));
    return _mm512_srai_epi32(sum, OUT_SHIFT);
}

__attribute__((target("avx512f,avx512bw,avx512vbmi"))) static void horizontal_avx512(const struct plan *p,
                                                                                     uint8_t *dst, int64_t out_w) {
    /* packing leaves byte 16 l + 4 c + i = value 4 l + i of chunk c (l: 128-bit lane): put it at 16 c + 4 l + i */
    const __m512i order = _mm512_set_epi8(63, 62, 61, 60, 47, 46, 45, 44, 31, 30, 29, 28, 15, 14, 13, 12,
                                          59, 58, 57, 56, 43, 42, 41, 40, 27, 26, 25, 24, 11, 10, 9, 8,
                                          55, 54, 53, 52, 39, 38, 37, 36, 23, 22, 21, 20, 7, 6, 5, 4,
                                          51, 50, 49, 48, 35, 34, 33, 32, 19, 18, 17, 16, 3, 2, 1, 0);
    const int32_t groups = (p->col_taps + 1) / 2;
    const int64_t values = 3 * out_w;
    for (int64_t k = 0; k < p->chunks; k += 4) {
        __m512i packed = _mm512_packus_epi16(
            _mm512_packs_epi32(chunk_values(p, k, groups), chunk_values(p, k + 1, groups)),
            _mm512_packs_epi32(chunk_values(p, k + 2, groups), chunk_values(p, k + 3, groups)));
        int64_t left = values - CHUNK * k;
        _mm512_mask_storeu_epi8(dst + CHUNK * k, left >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << left) - 1,
                                _mm512_permutexvar_epi8(order, packed));
    }
}
#endif

/* The instruction sets this CPU gives the resampler: SIMD_NONE (portable C), SIMD_AVX2 or SIMD_AVX512. */
int ccrop_resize_simd(void) {
#ifdef HAVE_X86_SIMD
    if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi"))
        return SIMD_AVX512;
    if (__builtin_cpu_supports("avx2"))
        return SIMD_AVX2;
#endif
    return SIMD_NONE;
}

/* Bytes of scratch that ccrop_resize_crop needs for windows up to max_height x max_width pixels. */
int64_t ccrop_resize_scratch_bytes(int64_t max_height, int64_t max_width, int64_t out_h, int64_t out_w) {
    if (max_height < 1 || max_width < 1 || out_h < 1 || out_w < 1)
        return -1;
    struct plan sizes;
    return layout((double)max_height, (double)max_width, out_h, out_w, 0, &sizes);
}

static int resize(const uint8_t *image, int64_t image_h, int64_t image_w, double top, double left, double height,
                  double width, int mirror, uint8_t *out, int64_t out_h, int64_t out_w, void *scratch,
                  int64_t scratch_bytes, int simd) {
    if (image_h < 1 || image_w < 1 || out_h < 1 || out_w < 1)
        return RESIZE_BAD_SIZE;
    if (!(height > 0.0 && width > 0.0 && top >= 0.0 && left >= 0.0 && top + height <= (double)image_h &&
          left + width <= (double)image_w))
        return RESIZE_BAD_WINDOW;
    struct plan p;
    if (layout(height, width, out_h, out_w, ((uintptr_t)scratch + 31) & ~(uintptr_t)31, &p) > scratch_bytes)
        return RESIZE_SMALL_SCRATCH;
    /* taps stay on the pixels the window touches, inside the image, however the bounds round */
    int64_t row0 = floor_int(top), row_end = -floor_int(-(top + height));
    row_end = row_end > image_h ? image_h : (row_end > row0 ? row_end : row0 + 1);
    p.col0 = floor_int(left);
    int64_t col_end = -floor_int(-(left + width));
    col_end = col_end > image_w ? image_w : (col_end > p.col0 ? col_end : p.col0 + 1);
    p.span = (col_end - p.col0) * 3;
    int wide_rows = p.row_stride > NARROW_TAPS, wide_cols = p.col_stride > NARROW_TAPS;
    filter_taps(top, height, out_h, row0, row_end, wide_rows ? WIDE_BITS : ROW_BITS, p.row_stride, p.weights,
                p.row_first, p.row_count, p.row_coef);
    p.col_taps = filter_taps(left - (double)p.col0, width, out_w, 0, col_end - p.col0,
                             wide_cols ? WIDE_BITS : COL_BITS, p.col_stride, p.weights, p.col_first, NULL, p.col_coef);
    memset(p.mid + p.span, 0, (size_t)(p.mid_length - p.span) * 2);
    int64_t stride = image_w * 3;
    const uint8_t *window = image + p.col0 * 3;
#ifdef HAVE_X86_SIMD
    simd = simd < ccrop_resize_simd() ? simd : ccrop_resize_simd();
    int chunks = !wide_cols && simd >= SIMD_AVX512 && plan_chunks(&p, mirror, out_w);
    if (!wide_cols && !chunks && simd >= SIMD_AVX2)
        plan_pairs(&p, mirror, out_w);
#else
    (void)simd;
#endif
    for (int64_t y = 0; y < out_h; y++) {
        const uint8_t *rows = window + p.row_first[y] * stride;
        uint8_t *dst = out + y * out_w * 3;
        if (wide_rows)
            vertical_wide(&p, rows, stride, y);
#ifdef HAVE_X86_SIMD
        else if (simd >= SIMD_AVX512)
            vertical_avx512(&p, rows, stride, y);
        else if (simd >= SIMD_AVX2)
            vertical_avx2(&p, rows, stride, y);
#endif
        else
            vertical_portable(&p, rows, stride, y);
        if (wide_cols)
            horizontal_wide(&p, mirror, dst, out_w);
#ifdef HAVE_X86_SIMD
        else if (chunks)
            horizontal_avx512(&p, dst, out_w);
        else if (simd >= SIMD_AVX2)
            horizontal_avx2(&p, dst, out_w);
#endif
        else
            horizontal_portable(&p, mirror, dst, out_w);
    }
    return RESIZE_OK;
}

/* Resize window (top, left, height, width) of image (uint8 (image_h, image_w, 3), C order) into out
 * (uint8 (out_h, out_w, 3), C order), mirrored left-right if `mirror`.
 *
 * The window is in pixels, may be fractional and must lie inside the image.
 * `scratch`: scratch_bytes bytes, any alignment, at least what
 * ccrop_resize_scratch_bytes gives for the window's size. Returns a RESIZE_* code.
 */
int ccrop_resize_crop(const uint8_t *image, int64_t image_h, int64_t image_w, double top, double left, double height,
                      double width, int mirror, uint8_t *out, int64_t out_h, int64_t out_w, void *scratch,
                      int64_t scratch_bytes) {
    return resize(image, image_h, image_w, top, left, height, width, mirror, out, out_h, out_w, scratch,
                  scratch_bytes, SIMD_AVX512);
}

/* The same with at most the instruction set `simd` (SIMD_*): the same pixels, whichever (tests compare them). */
int ccrop_resize_crop_simd(const uint8_t *image, int64_t image_h, int64_t image_w, double top, double left,
                           double height, double width, int mirror, uint8_t *out, int64_t out_h, int64_t out_w,
                           void *scratch, int64_t scratch_bytes, int simd) {
    return resize(image, image_h, image_w, top, left, height, width, mirror, out, out_h, out_w, scratch,
                  scratch_bytes, simd);
}

#ifndef CCROP_NO_PYTHON
static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_resample",
    "Antialiased crop-resize for ccrop_loaders (FFCV and DALI CPU views); the code is reached through ctypes (ccrop_resize_crop).", -1,
    NULL,
};

PyMODINIT_FUNC PyInit__resample(void) { return PyModule_Create(&module); }
#endif
