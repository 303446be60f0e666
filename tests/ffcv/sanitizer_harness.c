/* ASan + UBSan harness for resample.c and jpeg_region.c; tests/ffcv/test_sanitizers.py builds it with them
 * (-DCCROP_NO_PYTHON: no Python module, no libpython) and runs it.
 *
 *   sanitizer_harness [JPEG HEIGHT WIDTH]...
 *
 * Resizes random images over random windows (fractional, flush with the edges, sub-pixel), output sizes
 * (extreme ratios included) and mirror settings on every instruction set the CPU has, in buffers of exactly
 * the sizes asked (any over-read is a report), checking each instruction set against portable C and that a
 * constant image stays constant. Then region-decodes each JPEG, expected to be HEIGHT x WIDTH, at every scale
 * over a few regions, printing "JPEG EIGHTHS CODE" per decode. Exits 1 on a wrong pixel or an unreadable
 * file; a sanitizer report aborts it.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ccrop_resize_simd(void);
int64_t ccrop_resize_scratch_bytes(int64_t max_height, int64_t max_width, int64_t out_h, int64_t out_w);
int ccrop_resize_crop_simd(const uint8_t *image, int64_t image_h, int64_t image_w, double top, double left,
                           double height, double width, int mirror, uint8_t *out, int64_t out_h, int64_t out_w,
                           void *scratch, int64_t scratch_bytes, int simd);
int ccrop_decode_region(const unsigned char *data, uint64_t size, int eighths, int64_t height, int64_t width,
                        int64_t top, int64_t left, int64_t bottom, int64_t right, unsigned char *out,
                        int64_t capacity, int64_t *placed);

/* Says what was wrong and exits 1 at once (no leak report for the buffers in use). */
static void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    _Exit(1);
}

static uint64_t state = 0x9E3779B97F4A7C15u;

static uint64_t next(void) { /* xorshift64* */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Du;
}

static int64_t below(int64_t n) { return (int64_t)(next() % (uint64_t)n); }

static double uniform(double lo, double hi) { return lo + (hi - lo) * (double)(next() >> 11) / 9007199254740992.0; }

/* A side of `n` pixels: (start, length) fractional, flush with either edge, sub-pixel or whole. */
static void span(int64_t n, double *start, double *length) {
    int kind = (int)below(5);
    *length = kind == 3 ? uniform(0.05, 0.95) : (kind == 4 ? (double)n : uniform(0.05, (double)n));
    *start = kind == 0 ? 0.0 : (kind == 1 ? (double)n - *length : uniform(0.0, (double)n - *length));
    while (*start + *length > (double)n)
        *length = *length * (1.0 - 1e-15);
}

/* A side's image and output sizes: usual, an extreme downscale or an extreme upscale. */
static void sizes(int64_t *image, int64_t *out) {
    int kind = (int)below(4);
    *image = kind == 0 ? 3000 + below(5000) : (kind == 1 ? 1 + below(3) : 1 + below(200));
    *out = kind == 0 ? 1 + below(3) : (kind == 1 ? 100 + below(200) : 1 + below(100));
}

static void resize_cases(int count) {
    int best = ccrop_resize_simd();
    for (int c = 0; c < count; c++) {
        int64_t h, w, oh, ow;
        sizes(&h, &oh);
        sizes(&w, &ow);
        if (h * w > 100000)
            h = 1 + below(3);
        double top, left, height, width;
        span(h, &top, &height);
        span(w, &left, &width);
        int mirror = (int)below(2), constant = c % 4 == 0;
        uint8_t *image = malloc((size_t)(h * w * 3)), *portable = malloc((size_t)(oh * ow * 3));
        uint8_t *out = malloc((size_t)(oh * ow * 3));
        for (int64_t i = 0; i < h * w * 3; i++)
            image[i] = constant ? (uint8_t)(i % 3 == 0 ? 255 : 7 * (i % 3)) : (uint8_t)next();
        int64_t bytes = ccrop_resize_scratch_bytes(h, w, oh, ow);
        int64_t misalign = below(32);
        char *scratch = malloc((size_t)(bytes + misalign)); /* any alignment: exactly `bytes` from scratch + misalign */
        for (int simd = 0; simd <= best; simd++) {
            int code = ccrop_resize_crop_simd(image, h, w, top, left, height, width, mirror, simd ? out : portable,
                                              oh, ow, scratch + misalign, bytes, simd);
            if (code != 0)
                fail("resize case %d (simd %d): code %d\n", c, simd, code);
            if (simd && memcmp(out, portable, (size_t)(oh * ow * 3)) != 0)
                fail("resize case %d: instruction set %d differs from portable C\n", c, simd);
        }
        for (int64_t i = 0; constant && i < oh * ow * 3; i++) {
            int expected = i % 3 == 0 ? 255 : 7 * (int)(i % 3), got = portable[i];
            if (got < expected - 1 || got > expected + 1)
                fail("resize case %d: constant %d came out %d\n", c, expected, got);
        }
        free(image);
        free(portable);
        free(out);
        free(scratch);
    }
}

static void decode_file(const char *path, int64_t height, int64_t width) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail("cannot open %s\n", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc((size_t)size); /* exactly the file: an over-read is a report */
    size_t got = fread(data, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size)
        fail("cannot read %s\n", path);
    int64_t capacity = height * width * 3 + 1;
    unsigned char *out = malloc((size_t)capacity);
    for (int eighths = 1; eighths <= 8; eighths *= 2) {
        int64_t rows = (height * eighths + 7) / 8, cols = (width * eighths + 7) / 8;
        for (int r = 0; r < 4; r++) {
            int64_t top = r == 0 ? 0 : below(rows + 1), left = r == 0 ? 0 : below(cols + 1);
            int64_t bottom = r == 0 ? rows : top + below(rows + 1), right = r == 0 ? cols : left + below(cols + 1);
            int64_t placed[6];
            int code = ccrop_decode_region(data, (uint64_t)size, eighths, height, width, top, left, bottom, right,
                                           out, r == 3 ? 16 : capacity, placed);
            if (code == 0) { /* read every pixel written: the sanitizers check they lie in out */
                unsigned sum = 0;
                for (int64_t i = 0; i < placed[2] * placed[3] * 3; i++)
                    sum += out[i];
                (void)sum;
            }
            printf("%s %d %d\n", path, eighths, code);
        }
    }
    free(data);
    free(out);
}

int main(int argc, char **argv) {
    resize_cases(400);
    for (int i = 1; i + 2 < argc; i += 3)
        decode_file(argv[i], atoll(argv[i + 1]), atoll(argv[i + 2]));
    return 0;
}
