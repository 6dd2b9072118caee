"""A trained CRNN made narrower: fewer channels in its conv blocks, keeping the ones that matter.

Reading time on a CPU grows with the backbone's channels, and most of it is spent in the first
blocks, which see the most pixels. A model trained wide can be cut down to a size that reads fast
enough, and keep most of what it learned, instead of being trained again from scratch:

    from crnn_captcha.training.narrow import narrow
    small = narrow(model, (16, 32, 64, 64, 144), images)   # images: (N, C, H, W) inputs, a few hundred

Each block keeps the output channels whose removal would change the next layer's input the most:
the channel's mean activation on ``images`` times the size of the next layer's weights that read
it. The next layer keeps only its weights on the kept channels. Removing channels shifts the
statistics the batch norms recorded, so they are measured again on ``images``. The narrowed
model reads worse than the wide one until it is trained further (``pretrain --init`` it).
"""
from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import nn

from ..read.model import CRNN


def conv_blocks(model: CRNN) -> list[nn.Sequential]:
    """The backbone's five (conv, batch norm, ReLU) blocks, in order."""
    return [m for m in model.backbone.features if isinstance(m, nn.Sequential)]


@torch.no_grad()
def block_activations(model: CRNN, images: torch.Tensor) -> list[torch.Tensor]:
    """Each block's mean output per channel over ``images`` (after the ReLU: never negative)."""
    means: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, _i, out: means.append(out.mean(dim=(0, 2, 3))))
             for b in conv_blocks(model)]
    try:
        model.eval()(images)
    finally:
        for h in hooks:
            h.remove()
    return means


def _reader_weights(model: CRNN, block: int) -> torch.Tensor:
    """How much the layer after ``block`` reads each of the block's output channels: the norm of
    its weights on that channel (the next conv's, scaled as its batch norm scales them; for the last
    block, the LSTM's input weights on every feature row of that channel)."""
    blocks = conv_blocks(model)
    if block + 1 < len(blocks):
        conv, norm = blocks[block + 1][0], blocks[block + 1][1]
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # what the batch norm makes of each output
        weight = conv.weight.detach() * scale.detach()[:, None, None, None]
        return weight.pow(2).sum(dim=(0, 2, 3)).sqrt()
    rows = model.config.feature_rows
    weights = [w.detach() for name, w in model.rnn.named_parameters() if name.startswith("weight_ih_l0")]
    per_feature = torch.cat(weights).norm(dim=0)  # LSTM input feature c * rows + r
    return per_feature.view(-1, rows).norm(dim=1)


def choose_channels(model: CRNN, channels: tuple[int, ...], images: torch.Tensor) -> list[torch.Tensor]:
    """For each block, the indices (ascending) of the ``channels[i]`` output channels to keep."""
    means = block_activations(model, images)
    keep = []
    for i, (mean, want) in enumerate(zip(means, channels)):
        score = mean * _reader_weights(model, i)
        keep.append(torch.sort(torch.topk(score, want).indices).values)
    return keep


def narrow(model: CRNN, channels: tuple[int, ...], images: torch.Tensor) -> CRNN:
    """A copy of ``model`` with ``channels`` output channels in its five conv blocks (each at most
    the model's own), its batch norms measured again on ``images``.

    Raises:
        ValueError: a channel count that is not from 1 to the model's own.
    """
    channels = tuple(int(c) for c in channels)
    have = model.config.channels
    if len(channels) != len(have) or any(not 1 <= c <= h for c, h in zip(channels, have)):
        raise ValueError(f"channels {channels}: need {len(have)} counts, each from 1 to the model's own {have}")
    keep = choose_channels(model, channels, images)
    small = CRNN(replace(copy.deepcopy(model.config), channels=channels))
    source, target = conv_blocks(model), conv_blocks(small)
    previous = torch.arange(model.config.in_channels)
    with torch.no_grad():
        for src, dst, kept in zip(source, target, keep):
            dst[0].weight.copy_(src[0].weight[kept][:, previous])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(dst[1], name).copy_(getattr(src[1], name)[kept])
            previous = kept
        rows = model.config.feature_rows
        features = (previous[:, None] * rows + torch.arange(rows)).flatten()  # LSTM inputs of the kept channels
        for name, value in model.rnn.named_parameters():
            part = value[:, features] if name.startswith("weight_ih_l0") else value
            getattr(small.rnn, name).copy_(part)
        small.head.load_state_dict(model.head.state_dict())
    recalibrate(small, images)
    return small


@torch.no_grad()
def recalibrate(model: CRNN, images: torch.Tensor, batch: int = 64) -> None:
    """Measure the batch norms' statistics again: their plain mean over ``images``; leaves the model in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    model.train()
    try:
        for start in range(0, len(images), batch):
            model.backbone(images[start:start + batch])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
