"""Trainer side (torch): localization of object boxes from feature maps."""
from .localize import localize_boxes

__all__ = ["localize_boxes"]
