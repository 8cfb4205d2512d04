"""Model files: the safe, portable format that ``learn.export`` writes (:mod:`.export`), the
Hugging Face layout that ``learn.save_pretrained`` writes (:mod:`.pretrained`: weights in
safetensors, ``config.json``, a model card), :func:`read_model_file` for either
(:func:`dermlearn.load_learner` makes a Learner of it), and the ONNX inference graph
(:mod:`.onnx`, extra ``dermlearn[onnx]``)."""

from .export import FORMAT, ModelFile, export_learner
from .pretrained import save_pretrained
from .read import read_model_file

__all__ = ["FORMAT", "ModelFile", "export_learner", "read_model_file", "save_pretrained"]
