from .transformer import TransformerNet, TransformerOptions

__all__ = ["TransformerNet", "TransformerOptions"]
