"""Model files: the safe, portable format that ``learn.export`` writes and
:func:`dermlearn.load_learner` reads (:mod:`.export`), and the ONNX inference graph
(:mod:`.onnx`, extra ``dermlearn[onnx]``)."""

from .export import FORMAT, ModelFile, export_learner, read_model_file

__all__ = ["FORMAT", "ModelFile", "export_learner", "read_model_file"]
