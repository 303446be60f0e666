/* Decode only a region of a JPEG, at a DCT scale M/8, with libjpeg-turbo's libjpeg API.
 *
 * FFCV's imdecode decodes whole images (TurboJPEG 2.x has no cropped decode).
 * Here the rows above the region are skipped without inverse DCT
 * (jpeg_skip_scanlines), the rows below are never entropy-decoded (the decode
 * stops), and only the iMCU columns covering the region are transformed and
 * colour-converted (jpeg_crop_scanline). Called from numba-compiled loops
 * through ctypes; each thread keeps its own decompressor (a few KB) for its life.
 *
 * Built as the extension module ccrop_loaders.ffcv._jpeg_region (the Python
 * module is empty; the function is reached through ctypes, as FFCV does with
 * libffcv).
 */
#ifndef CCROP_NO_PYTHON /* defined by the sanitizer harness (tests/ffcv), which links without Python */
#include <Python.h>
#endif
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>

enum {
    REGION_OK = 0,
    REGION_ERROR = 1,        /* libjpeg refused the data (corrupt, truncated, unsupported colour space) */
    REGION_CORRUPT_DATA = 2, /* libjpeg decoded but warned of corrupt data: the pixels are not trusted */
    REGION_TOO_LARGE = 3,    /* the region does not fit the output buffer */
    REGION_NO_MEMORY = 4,
    REGION_BAD_SIZE = 5,     /* the header declares another size than expected, or more than REGION_MAX_PIXELS */
};

/* The most pixels a JPEG may declare (e.g. 16384 x 16384): more are refused before libjpeg allocates its buffers. */
#define REGION_MAX_PIXELS ((int64_t)1 << 28)
/* libjpeg's memory for an image (max_memory_to_use; the rest would need a backing store, an error here): its
 * whole-image coefficient buffers (progressive JPEGs: 2 bytes per coefficient, 3 components) and row buffers. */
#define REGION_MEMORY_PER_PIXEL 8
#define REGION_MEMORY_BASE ((int64_t)16 << 20)

/* REGION_MAX_PIXELS, for the Python binding. */
int64_t ccrop_region_max_pixels(void) { return REGION_MAX_PIXELS; }

struct region_error {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    int warnings;
};

struct region_decoder {
    struct jpeg_decompress_struct cinfo;
    struct region_error error;
};

static void on_error(j_common_ptr cinfo) {
    longjmp(((struct region_error *)cinfo->err)->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
    if (level < 0) /* a warning: libjpeg-turbo reports corrupt data this way and carries on */
        ((struct region_error *)cinfo->err)->warnings++;
}

static void on_output(j_common_ptr cinfo) { (void)cinfo; }

static __thread struct region_decoder *thread_decoder;

static struct region_decoder *get_decoder(void) {
    if (thread_decoder == NULL) {
        struct region_decoder *d = calloc(1, sizeof(*d));
        if (d == NULL)
            return NULL;
        d->cinfo.err = jpeg_std_error(&d->error.mgr);
        d->error.mgr.error_exit = on_error;
        d->error.mgr.emit_message = on_message;
        d->error.mgr.output_message = on_output;
        if (setjmp(d->error.jump)) {
            free(d);
            return NULL;
        }
        jpeg_create_decompress(&d->cinfo);
        thread_decoder = d;
    }
    return thread_decoder;
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* Decode rows [top, bottom) and columns [left, right) of the image scaled by eighths/8 (1..8) as RGB.
 *
 * The JPEG must declare `height` x `width` pixels (what the caller expects,
 * e.g. the dataset's metadata), at most REGION_MAX_PIXELS: else REGION_BAD_SIZE,
 * before libjpeg allocates the image's buffers. placed[4..5] receives the
 * declared (height, width) once the header is read ((0, 0) until then).
 * Coordinates are in pixels of the scaled image (libjpeg's output_height =
 * ceil(height * eighths / 8)) and are clamped to it. The columns decoded are
 * widened by a pixel and to iMCU boundaries: placed[0..3] receives (row0, col0,
 * rows, cols) of what was written to out, uint8 (rows, cols, 3) row-major,
 * which contains the region asked for, pixel for pixel as a full decode gives
 * it (the extra columns may differ). Returns a REGION_* code.
 */
int ccrop_decode_region(const unsigned char *data, uint64_t size, int eighths, int64_t height, int64_t width,
                        int64_t top, int64_t left, int64_t bottom, int64_t right,
                        unsigned char *out, int64_t capacity, int64_t *placed) {
    struct region_decoder *d = get_decoder();
    if (d == NULL)
        return REGION_NO_MEMORY;
    struct jpeg_decompress_struct *cinfo = &d->cinfo;
    if (setjmp(d->error.jump)) {
        jpeg_abort_decompress(cinfo);
        return REGION_ERROR;
    }
    d->error.warnings = 0;
    placed[4] = placed[5] = 0;
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    jpeg_read_header(cinfo, TRUE);
    placed[4] = cinfo->image_height;
    placed[5] = cinfo->image_width;
    if (placed[4] != height || placed[5] != width || height * width > REGION_MAX_PIXELS) {
        jpeg_abort_decompress(cinfo);
        return REGION_BAD_SIZE;
    }
    cinfo->mem->max_memory_to_use = (long)(REGION_MEMORY_PER_PIXEL * height * width + REGION_MEMORY_BASE);
    cinfo->out_color_space = JCS_RGB;
    cinfo->scale_num = (unsigned int)clamp(eighths, 1, 8);
    cinfo->scale_denom = 8;
    cinfo->dct_method = JDCT_IFAST; /* as FFCV (TJFLAG_FASTDCT) */
    jpeg_start_decompress(cinfo);

    int64_t rows_out = cinfo->output_height, cols_out = cinfo->output_width;
    top = clamp(top, 0, rows_out - 1);
    bottom = clamp(bottom, top + 1, rows_out);
    left = clamp(left, 0, cols_out - 1);
    right = clamp(right, left + 1, cols_out);
    /* one more column each side: fancy upsampling computes a crop's edge columns without their outer neighbours */
    JDIMENSION col0 = (JDIMENSION)(left > 0 ? left - 1 : 0);
    JDIMENSION cols = (JDIMENSION)((right < cols_out ? right + 1 : cols_out) - col0);
    if (cols < cinfo->output_width)
        jpeg_crop_scanline(cinfo, &col0, &cols);
    if ((bottom - top) * (int64_t)cols * 3 > capacity) {
        jpeg_abort_decompress(cinfo);
        return REGION_TOO_LARGE;
    }
    if (top > 0)
        jpeg_skip_scanlines(cinfo, (JDIMENSION)top);
    JSAMPROW rows[16];
    while ((int64_t)cinfo->output_scanline < bottom) {
        int64_t first = cinfo->output_scanline;
        int64_t count = bottom - first < 16 ? bottom - first : 16;
        for (int64_t r = 0; r < count; r++)
            rows[r] = out + (first - top + r) * (int64_t)cols * 3;
        if (jpeg_read_scanlines(cinfo, rows, (JDIMENSION)count) == 0) {
            jpeg_abort_decompress(cinfo);
            return REGION_ERROR;
        }
    }
    jpeg_abort_decompress(cinfo); /* the rows below the region are never decoded */
    placed[0] = top;
    placed[1] = col0;
    placed[2] = bottom - top;
    placed[3] = cols;
    return d->error.warnings ? REGION_CORRUPT_DATA : REGION_OK;
}

#ifndef CCROP_NO_PYTHON
static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_jpeg_region",
    "Region decoding for ccrop_loaders.ffcv; the code is reached through ctypes (ccrop_decode_region).", -1, NULL,
};

PyMODINIT_FUNC PyInit__jpeg_region(void) { return PyModule_Create(&module); }
#endif
