"""Teacher training: conditional flow matching from noisy up(LR) to HR (OFTSR sec. 3.1)."""

from __future__ import annotations

import torch
import torch.nn as nn

from snapsr.model import weights
from snapsr.model.flow import FlowSR
from snapsr.train.config import TeacherRunConfig
from snapsr.train.loop import Recipe, RunResult, run, run_card
from snapsr.train.recipes import recipe
from snapsr.train.student import one_step_only


class TeacherLoss(nn.Module):
    """The recipe's loss as a module, so DDP sees a ``forward`` and syncs gradients."""

    def __init__(self, flow: FlowSR):
        super().__init__()
        self.flow = flow

    def forward(self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.flow.loss(lr, hr, generator=generator)


def euler_predictor(steps: int):
    def predict(model: FlowSR, lr: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return model.sample(lr, steps=steps, eps=eps)

    return predict


@recipe("teacher", config=TeacherRunConfig, summary="the conditional rectified-flow teacher (OFTSR sec. 3.1)")
def build_teacher(cfg: TeacherRunConfig, device: torch.device) -> Recipe:
    one_step_only(cfg.flow.backbone, "the teacher")
    flow = FlowSR(cfg.flow).to(device)
    if cfg.init:
        weights.init_from(flow, cfg.init)

    def card(step: int) -> dict:
        return weights.flow_card(
            cfg.flow,
            kind="teacher",
            recipe="flow-matching teacher (OFTSR sec. 3.1)",
            **run_card(cfg, step),
            **({"init": weights.read_card(cfg.init).get("name", cfg.init)} if cfg.init else {}),
            default_steps=4,
        )

    predictors = {f"euler{n}": euler_predictor(n) for n in cfg.train.val_steps}
    return Recipe(model=flow, loss=TeacherLoss(flow), predictors=predictors, card=card, scale=cfg.flow.scale)


def train_teacher(cfg: TeacherRunConfig, **kw) -> RunResult:
    """Train (or with ``resume=True`` continue) a teacher; see ``loop.run`` for the options."""
    return run(cfg, build_teacher, **kw)
