"""rtstyle: real-time neural style transfer.

Importing the package must stay cheap and must not need torch: the runtime
(image, video, webcam) runs on ONNX Runtime alone. Torch-only parts live in
modules that import torch themselves (nets, vgg, losses, gatys, training).
"""

__version__ = "0.1.0"
