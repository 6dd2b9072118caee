"""Training: the recipe (:mod:`.recipe`), the loop (:mod:`.loop`, with :func:`~.loop.fit`), the run
folder (:mod:`.run_folder`), loaders (:mod:`.loaders`), the input chosen from the data
(:mod:`.input_choice`), transfer from a pretrained start (:mod:`.transfer`), pretraining
(:mod:`.pretraining`, with more from each render in :mod:`.views`), ONNX export (:mod:`.export`)
and the process group (:mod:`.runtime`).

    from crnn_captcha.training import TrainConfig, fit
    fit(TrainConfig(train="data/splits/train.csv", val="data/splits/val.csv"), "runs/mine")
"""
from .loop import fit
from .pretraining import PretrainConfig, pretrain
from .recipe import TrainConfig

__all__ = ["TrainConfig", "fit", "PretrainConfig", "pretrain"]
