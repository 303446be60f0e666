"""Recipes to run or copy: SSL view loaders on FFCV and DALI, and a small trainer (``python -m pipelines.train_ssl``)."""
