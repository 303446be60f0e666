import numpy as np
import pytest
from nvidia.dali import fn, pipeline_def

from ccrop_loaders.dali.augment import ssl_view_augment

BATCH = 512


def augmented(**kwargs) -> np.ndarray:
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)

    @pipeline_def(batch_size=BATCH, num_threads=2, device_id=None, seed=5)
    def pipe():
        return ssl_view_augment(fn.external_source(source=lambda: [image] * BATCH, layout="HWC"), **kwargs)

    p = pipe()
    p.build()
    return np.concatenate([np.stack([np.array(o) for o in p.run()[0]]) for _ in range(4)])


def test_grayscale_probability_and_per_sample_parameters():
    out = augmented(blur_p=0.0)
    spread = np.abs(out.astype(int) - out[..., :1]).max(axis=(1, 2, 3))
    gray = (spread <= 1).mean()  # saturation 0, up to DALI's colour-space rounding
    n = len(out)
    assert abs(gray - 0.2) < 4 * np.sqrt(0.2 * 0.8 / n), gray
    assert len({o.tobytes() for o in out[:BATCH]}) > 0.8 * 0.8 * BATCH  # jittered samples all differ


def test_solarize_and_blur_change_pixels():
    plain = augmented(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    assert len({o.tobytes() for o in plain}) == 1  # nothing applied: every sample is the input
    solar = augmented(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=1.0)
    np.testing.assert_array_equal(solar[0], np.where(plain[0] >= 128, 255 - plain[0], plain[0]))
    blurred = augmented(jitter_p=0.0, grayscale_p=0.0, blur_p=1.0)
    assert np.median(blurred.std(axis=(1, 2, 3))) < 0.7 * plain[0].std()  # sigma ~ U(0.1, 2): most blur


def test_bad_probability():
    with pytest.raises(ValueError, match="grayscale_p must be a probability"):
        ssl_view_augment(None, grayscale_p=2.0)
