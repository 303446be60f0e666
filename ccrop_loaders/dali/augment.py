"""SSL view augmentations as DALI ops, on the pipeline's device, with per-sample random parameters."""
from __future__ import annotations

from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode


def ssl_view_augment(views: DataNode, *, jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
                     jitter_p: float = 0.8, grayscale_p: float = 0.2, blur_p: float = 0.5,
                     blur_sigma: tuple[float, float] = (0.1, 2.0), blur_window: int = 23,
                     solarize_p: float = 0.0) -> DataNode:
    """The paper's ImageNet recipe on uint8 HWC views (after the crop and flip): colour jitter with p = 0.8,
    grayscale p = 0.2, Gaussian blur p = 0.5 (sigma in ``blur_sigma``), solarize p = ``solarize_p``.

    Every parameter is drawn per sample (``fn.random.*``). A skipped jitter uses
    neutral factors; grayscale is saturation 0; a skipped blur uses a sigma so
    small the kernel is the identity. Output: uint8 HWC on the views' device.
    """
    for name, p in (("jitter_p", jitter_p), ("grayscale_p", grayscale_p), ("blur_p", blur_p),
                    ("solarize_p", solarize_p)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    b, c, s, h = jitter

    def coin(p):
        return fn.cast(fn.random.coin_flip(probability=p), dtype=types.FLOAT)

    def factor(spread):
        return fn.random.uniform(range=[max(0.0, 1 - spread), 1 + spread])

    on, gray = coin(jitter_p), coin(grayscale_p)
    neutral = 1.0 - on
    views = fn.color_twist(
        views, brightness=neutral + on * factor(b), contrast=neutral + on * factor(c),
        saturation=(neutral + on * factor(s)) * (1.0 - gray), hue=on * fn.random.uniform(range=[-h * 360, h * 360]))
    if blur_p > 0:
        blurred = coin(blur_p)
        sigma = blurred * fn.random.uniform(range=list(blur_sigma)) + (1.0 - blurred) * 0.05
        views = fn.gaussian_blur(views, sigma=sigma, window_size=blur_window)
    if solarize_p > 0:
        flip = coin(solarize_p) * fn.cast(views >= 128, dtype=types.FLOAT)
        x = fn.cast(views, dtype=types.FLOAT)
        views = fn.cast(x + flip * (255.0 - 2.0 * x), dtype=types.UINT8)
    return views
