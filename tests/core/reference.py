"""Plain-Python statements of the spec, for comparing distributions (not keyed: numpy Generators)."""
import math



def central_fallback(height, width, ratio):
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = min(max(int(round(w / min(ratio))), 1), height)
    elif in_ratio > max(ratio):
        h = height
        w = min(max(int(round(h * max(ratio))), 1), width)
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def contrastive_crop(rng, height, width, box, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), alpha=0.6):
    """DESIGN.md's crop sampling, line by line."""
    y0, x0, y1, x1 = box
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            ch0 = min(max(int(height * y0) - h // 2, 0), height - h)
            ch1 = min(max(int(height * y1) - h // 2, 0), height - h)
            cw0 = min(max(int(width * x0) - w // 2, 0), width - w)
            cw1 = min(max(int(width * x1) - w // 2, 0), width - w)
            top = ch0 + int((ch1 - ch0) * rng.beta(alpha, alpha))
            left = cw0 + int((cw1 - cw0) * rng.beta(alpha, alpha))
            return top, left, h, w
    return central_fallback(height, width, ratio)


def random_resized_crop(rng, height, width, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision's RandomResizedCrop.get_params, with a numpy Generator."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    return central_fallback(height, width, ratio)
