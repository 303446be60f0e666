import numpy as np
import pytest
import torch

from ccrop_loaders.trainer.augment import SSLViewAugment, byol_augment, simclr_augment


def identity(**kwargs):
    return SSLViewAugment(jitter_p=0, grayscale_p=0, blur_p=0, solarize_p=0, mean=(0, 0, 0), std=(1, 1, 1),
                          **kwargs)


def test_probabilities_match_over_many_samples():
    aug = simclr_augment(generator=torch.Generator().manual_seed(0))
    n = 20000
    p = aug.sample_params(n)
    for name, expected in (("jitter", 0.8), ("grayscale", 0.2), ("blur", 0.5), ("solarize", 0.0)):
        rate = getattr(p, name).float().mean().item()
        assert abs(rate - expected) < 4 * np.sqrt(expected * (1 - expected) / n) + 1e-9, (name, rate)
    assert 0.6 <= p.brightness.min() and p.brightness.max() <= 1.4 and p.hue.abs().max() <= 0.1
    assert 0.1 <= p.sigma.min() and p.sigma.max() <= 2.0
    b1 = byol_augment(1, generator=torch.Generator().manual_seed(1)).sample_params(n)
    assert abs(b1.solarize.float().mean() - 0.2) < 0.015 and abs(b1.blur.float().mean() - 0.1) < 0.015
    assert byol_augment(0).sample_params(100).blur.all()


def test_parameters_differ_within_a_batch():
    views = torch.full((8, 16, 16, 3), 128, dtype=torch.uint8)
    aug = SSLViewAugment(jitter_p=1.0, grayscale_p=0, blur_p=0, generator=torch.Generator().manual_seed(3))
    p = aug.sample_params(8)
    assert len(set(p.brightness.tolist())) == 8
    out = aug(views)
    assert out.shape == (8, 3, 16, 16) and out.dtype == torch.float32
    means = out.mean(dim=(1, 2, 3))
    assert len(set(np.round(means.numpy(), 5))) == 8


def test_each_operation_does_what_it_says():
    rng = np.random.default_rng(0)
    views = torch.from_numpy(rng.integers(0, 256, (4, 24, 24, 3), dtype=np.uint8))
    x = views.permute(0, 3, 1, 2).float() / 255
    aug = identity()
    p = aug.sample_params(4)
    torch.testing.assert_close(aug.apply(x, p), x)
    p.grayscale[:] = True
    gray = aug.apply(x, p)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    p.grayscale[:] = False
    p.blur[:], p.sigma[:] = True, 2.0
    assert aug.apply(x, p).std() < 0.6 * x.std()
    p.blur[:] = False
    p.solarize[:] = True
    torch.testing.assert_close(aug.apply(x, p), torch.where(x >= 0.5, 1 - x, x))
    # hue: a third of a turn takes red to green; jitter with neutral factors otherwise
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1
    q = aug.sample_params(1)
    q.jitter[:], q.brightness[:], q.contrast[:], q.saturation[:], q.hue[:] = True, 1, 1, 1, 1 / 3
    green = aug.apply(red, q)
    torch.testing.assert_close(green[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-5, rtol=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="jitter_p must be a probability"):
        SSLViewAugment(jitter_p=1.5)
    with pytest.raises(ValueError, match="channels-last"):
        simclr_augment()(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
