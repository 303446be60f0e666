"""Changing a decoder's parameters between epochs (ffcv-imagenet's progressive resizing sets ``decoder.output_size``
at each epoch and keeps its Loader): the next epoch's views equal a freshly built decoder's, bit for bit."""
import ffcv.loader
import numpy as np
import pytest
from ffcv.fields.basics import IntDecoder
from ffcv.loader import OrderOption
from ffcv.pipeline import PipelineSpec

from ccrop_loaders import BoxTable, sample_crop
from ccrop_loaders.ffcv import (ContrastiveCropRGBImageDecoder, FullImageRGBImageDecoder, Loader,
                                MultiViewContrastiveCropDecoder)
from ccrop_loaders.tools.sample_data import random_boxes

from .conftest import NUM_IMAGES

# the windows are 40-120 pixels: at 12x10 the JPEGs decode at scale 1/4 or 1/2, at 40x36 at 1/2 or 1
START = {"output_size": (12, 10), "scale": (0.2, 1.0), "ratio": (3 / 4, 4 / 3), "alpha": 0.6, "flip": False}
CHANGED = {"output_size": (40, 36), "scale": (0.4, 0.9), "ratio": (0.6, 1.2), "alpha": 0.1, "flip": True}
SETTABLE = {"one": ("output_size", "scale", "ratio", "alpha"), "multi": tuple(START), "full": ("output_size",)}


@pytest.fixture(scope="module")
def boxes():
    with BoxTable.create(NUM_IMAGES) as t:
        t.write(np.arange(NUM_IMAGES), random_boxes(NUM_IMAGES, seed=0))
        t.epoch, t.seed = 2, 77
        yield t


def build(table, settings):
    """One decoder of each kind, built with ``settings``."""
    crop = {k: settings[k] for k in ("scale", "ratio", "alpha")}
    return {"one": ContrastiveCropRGBImageDecoder(table, settings["output_size"], view=1, **crop),
            "multi": MultiViewContrastiveCropDecoder(table, settings["output_size"], num_views=2,
                                                     flip=settings["flip"], **crop),
            "full": FullImageRGBImageDecoder(settings["output_size"])}


def make_loader(dataset, decoders, loader_class=Loader, **kw):
    pipelines = {"index": [IntDecoder()], "image": None, "label": None,
                 **{name: PipelineSpec("image", decoder) for name, decoder in decoders.items()}}
    return loader_class(str(dataset.beton), batch_size=5, num_workers=2, order=OrderOption.SEQUENTIAL,
                        drop_last=False, pipelines=pipelines, **kw)


def epoch(loader, names, between_batches=lambda: None):
    """{decoder name: {global index: views}} over one epoch; ``between_batches`` runs after the first batch."""
    out = {name: {} for name in names}
    for b, (indices, *batches) in enumerate(loader):
        for name, batch in zip(names, batches):
            out[name].update({int(i): np.array(views) for i, views in zip(indices[:, 0], batch)})
        if b == 0:
            between_batches()
    return out


def assert_same(got, expected):
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name].keys() == expected[name].keys() == set(range(NUM_IMAGES))
        for index, views in expected[name].items():
            assert np.array_equal(got[name][index], views), (name, index)


def apply(decoders, settings):
    for name, decoder in decoders.items():
        for key in SETTABLE[name]:
            setattr(decoder, key, settings[key])


@pytest.fixture(scope="module")
def reference(jpg_dataset, boxes):
    """A fresh decoder of each kind built with CHANGED, in a fresh Loader."""
    return epoch(make_loader(jpg_dataset, build(boxes, CHANGED)), list(SETTABLE))


# recompile=True compiles every decoder at every epoch: one kind (the one with every settable parameter) is enough
@pytest.mark.parametrize("loader_class, recompile, kinds", [(ffcv.loader.Loader, False, tuple(SETTABLE)),
                                                            (Loader, True, ("multi",))],
                         ids=["ffcv-Loader-recompile-False", "Loader-recompile-True"])
def test_changed_parameters_give_a_fresh_decoders_views(jpg_dataset, boxes, reference, loader_class, recompile,
                                                        kinds):
    decoders = {kind: decoder for kind, decoder in build(boxes, START).items() if kind in kinds}
    loader = make_loader(jpg_dataset, decoders, loader_class, recompile=recompile)
    first = epoch(loader, kinds)
    assert first["multi"][0].shape == (2, *START["output_size"], 3)
    apply(decoders, CHANGED)
    # a change during an epoch waits for the next iter(loader): the running epoch keeps its settings
    changed = epoch(loader, kinds, lambda: setattr(decoders["multi"], "scale", (0.9, 1.0)))
    assert_same(changed, {kind: reference[kind] for kind in kinds})
    apply(decoders, START)
    assert_same(epoch(loader, kinds), first)


def test_each_change_moves_windows(jpg_dataset, boxes):
    """The comparison above has power: each crop parameter alone changes some window."""
    def windows(**change):
        kw = {k: START[k] for k in ("scale", "ratio", "alpha")} | change
        return [sample_crop(*image.shape[:2], boxes.read([i])[0].astype(float), seed=boxes.seed, epoch=boxes.epoch,
                            index=i, view=1, **kw) for i, image in enumerate(jpg_dataset.images)]

    start = windows()
    for key in ("scale", "ratio", "alpha"):
        assert windows(**{key: CHANGED[key]}) != start, key


@pytest.mark.parametrize("name, value", [("output_size", (0, 4)), ("output_size", (4.5, 4)), ("output_size", 8),
                                         ("scale", (0.9, 0.1)), ("ratio", (-1, 1)), ("alpha", 0)])
def test_bad_values_refused_on_set(boxes, name, value):
    for kind, decoder in build(boxes, START).items():
        if name not in SETTABLE[kind]:
            continue
        with pytest.raises(ValueError, match=name):
            setattr(decoder, name, value)
        assert getattr(decoder, name) == START[name]


@pytest.mark.parametrize("kind, name, words", [
    ("one", "table", "new Loader"), ("one", "view", "new Loader"), ("one", "dct_scaling", "new Loader"),
    ("one", "flip", "RandomHorizontalFlip"), ("multi", "num_views", "new Loader"), ("multi", "table", "new Loader"),
    ("full", "dct_scaling", "new Loader"),
])
def test_fixed_attributes_refused(boxes, kind, name, words):
    decoder = build(boxes, START)[kind]
    before = getattr(decoder, name)
    with pytest.raises(AttributeError, match=words):
        setattr(decoder, name, 3)
    assert getattr(decoder, name) is before
