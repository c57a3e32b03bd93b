"""stylekit loss terms and a metric on intrinsic images (shading and albedo).

Liu, Lai & Rosin (NPAR 2017) name losses on intrinsic images as future work; this
package implements it with a classical, differentiable Retinex-style decomposition.
"""

from .decompose import IntrinsicOptions, albedo, decompose, gaussian_blur, log_luminance, shading
from .terms import AlbedoStyleLoss, ShadingError, ShadingLoss

__version__ = "0.1.0"
__all__ = ["AlbedoStyleLoss", "IntrinsicOptions", "ShadingError", "ShadingLoss", "albedo", "decompose",
           "gaussian_blur", "log_luminance", "shading"]
