"""The shipped style models (fp16 ONNX files in this folder).

This file only makes the folder installable as ``realtime_style.models``, so
that a plain `pip install` carries the models; `rtstyle styles` lists them.
"""
