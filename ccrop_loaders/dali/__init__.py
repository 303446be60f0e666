"""DALI adapter: ContrastiveCrop windows (``windows``) and views (``views``, resized by ``resize``) inside a pipeline
graph, the gates that fail a batch naming what failed (``gates``), ready file-reader and external-source pipelines
(``readers``, described by ``graph``), SSL colour augmentations (``augment``) and a torch iterator (``iterator``)."""
try:
    import nvidia.dali  # noqa: F401
except ImportError as _error:
    from .._extras import missing_extra

    raise missing_extra(_error, "dali", "ccrop_loaders.dali") from _error
from .gates import checked_images
from .resize import AUTO_RESIZE
from .views import (AUTO_DECODE, contrastive_crop_decoded, contrastive_crop_groups, contrastive_crop_groups_decoded,
                    contrastive_crop_views, crop_resize_views)
from .webdataset import webdataset_pipeline
from .windows import contrastive_crop_group_windows, contrastive_crop_windows
from .augment import ssl_view_augment
from .readers import (ExternalSourceReader, FolderFiles, external_source_pipeline, file_reader_pipeline,
                      full_image_pipeline)

__all__ = ["AUTO_DECODE", "AUTO_RESIZE", "ContrastiveCropIterator", "ExternalSourceReader", "FolderFiles",
           "checked_images", "contrastive_crop_decoded", "contrastive_crop_group_windows", "contrastive_crop_groups",
           "contrastive_crop_groups_decoded", "contrastive_crop_views", "contrastive_crop_windows", "crop_resize_views",
           "external_source_pipeline", "file_reader_pipeline", "full_image_pipeline", "ssl_view_augment",
           "webdataset_pipeline"]


def __getattr__(name: str):
    if name == "ContrastiveCropIterator":  # needs torch
        try:
            import torch  # noqa: F401
        except ImportError as error:
            from .._extras import missing_extra

            raise missing_extra(error, "torch", "ccrop_loaders.dali.ContrastiveCropIterator") from error
        from .iterator import ContrastiveCropIterator

        return ContrastiveCropIterator
    raise AttributeError(f"module 'ccrop_loaders.dali' has no attribute {name!r}")
