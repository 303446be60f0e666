"""The tools wing: the ``ccrop`` CLI, the demo, table inspection, box diagnostics, sample data and ``ccrop bench``.

Tools stand on the library (``core``, ``ffcv``, ``dali``, ``trainer``, ``folder``); nothing in the library imports
them.
"""
