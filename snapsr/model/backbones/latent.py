"""A one-step latent backbone on a Stable Diffusion prior (diffusers), in the same contract as LRNet.

As in the one-step diffusion SR papers (OSEDiff, RCOD, VPD-SR): the image is encoded by the
prior's VAE, one UNet step (LoRA-tuned, base frozen) restores the latent, the VAE decodes it.
In the flow wrapper's contract ``f(x_t, t, cond, **extra) -> v``:

    z = E(x_t);  eps = UNet(z, tau(t), tokens);  z_0 = (z - sqrt(1 - a_tau) eps) / sqrt(a_tau)
    v = D(z_0) - x_t

so the wrapper's one-step output ``x_0 + v(x_0, t)`` is the decoded restoration, and the realism
dial ``t`` chooses the UNet's timestep ``tau`` (``t_range``: a higher timestep asks the prior to
invent more). A per-pixel dial runs the UNet at the map's lowest and highest ``tau`` and blends
the two decodes per pixel. Tokens: RCOD's visual prompt (``prompt``, projected to the UNet's
cross-attention width) in place of a text embedding, or a learned null token.

The prior comes from a local folder in diffusers layout (``unet/``, ``vae/``, ``scheduler/``,
e.g. SD 2.1 base or SD-Turbo), never downloaded; ``prior = "tiny"`` builds the small random
configs diffusers tests with (CPU tests, smoke runs). Only the LoRA and our heads are trainable,
and only they are written to a weights file (``state_dict`` leaves the base out); the card names
the prior and its hash. Needs ``pip install 'snapsr[prior]'``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn as nn

from snapsr.model.backbones.registry import register

TINY = "tiny"
RANDOM_SD21 = "random-sd2.1"  # SD 2.1 base's architecture, randomly initialised: speed and memory only
ONE_STEP_ONLY = ("sd_latent", "sd_tiny")  # the backbones below
# The VAE encoder's layers that take a LoRA with vae_lora_rank > 0: its convolutions and attention
VAE_TARGETS = ["conv_in", "conv1", "conv2", "conv_shortcut", "conv_out", "to_q", "to_k", "to_v", "to_out.0"]


def _diffusers():
    try:
        import diffusers  # noqa: F401
        import peft  # noqa: F401
    except ImportError as e:
        raise RuntimeError(f"the latent backbone needs diffusers and peft: pip install 'snapsr[prior]' ({e})") from e
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    return AutoencoderKL, DDPMScheduler, UNet2DConditionModel


def load_prior(prior: str):
    """``(vae, unet, scheduler)`` from a local diffusers folder, or the tiny random configs."""
    AutoencoderKL, DDPMScheduler, UNet2DConditionModel = _diffusers()
    if prior == TINY:
        torch.manual_seed(0)  # the same tiny prior in every process (tests, resumes)
        vae = AutoencoderKL(
            # SD's 8x downsampling (its mid-block attends over every latent pixel: a smaller factor
            # would make a 512-pixel image 65k tokens), at a few thousand parameters
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 16, 16, 16), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8,
        )  # fmt: skip
        unet = UNet2DConditionModel(
            sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
        )  # fmt: skip
        return vae, unet, DDPMScheduler(num_train_timesteps=1000)
    if prior == RANDOM_SD21:
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
            layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=768,
        )  # fmt: skip
        unet = UNet2DConditionModel(
            sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=1024,
            attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        )  # fmt: skip
        return vae, unet, DDPMScheduler(num_train_timesteps=1000)
    root = Path(prior)
    for part in ("unet", "vae", "scheduler"):
        if not (root / part).is_dir():
            raise FileNotFoundError(f"prior {root}: no {part}/ folder (a diffusers-layout folder, e.g. SD 2.1 base)")
    vae = AutoencoderKL.from_pretrained(root, subfolder="vae", local_files_only=True)
    unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", local_files_only=True)
    return vae, unet, DDPMScheduler.from_pretrained(root, subfolder="scheduler", local_files_only=True)


def prior_hash(prior: str) -> str:
    """What the card records about the base: the sha256 of its configs and weight files."""
    if prior in (TINY, RANDOM_SD21):
        return prior
    h = hashlib.sha256()
    root = Path(prior)
    for f in sorted(root.rglob("*")):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin"):
            h.update(str(f.relative_to(root)).encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
    return h.hexdigest()


class LatentUNet(nn.Module):
    def __init__(
        self,
        *,
        scale: int,
        prior: str,
        lora_rank: int = 8,
        t_range: tuple[int, int] = (200, 999),
        prompt_dim: int = 0,
        gradient_checkpointing: bool = False,
        vae_lora_rank: int = 0,
    ):
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model

        self.scale, self.prior, self.t_range = scale, prior, tuple(t_range)
        self.vae, self.unet, scheduler = load_prior(prior)
        self.card_record = describe(prior)  # hashed once, here: what a weights card says of the base
        self.vae.requires_grad_(False)
        self.unet.requires_grad_(False)
        targets = ["to_q", "to_k", "to_v", "to_out.0"]
        self.unet.add_adapter(
            LoraConfig(r=lora_rank, lora_alpha=lora_rank, init_lora_weights="gaussian", target_modules=targets)
        )
        if vae_lora_rank > 0:  # the VAE encoder too (OSEDiff's choice): it reads the degraded input
            inject_adapter_in_model(
                LoraConfig(
                    r=vae_lora_rank, lora_alpha=vae_lora_rank, init_lora_weights="gaussian", target_modules=VAE_TARGETS
                ),
                self.vae.encoder,
            )
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.register_buffer("alphas", scheduler.alphas_cumprod.float().clone(), persistent=False)
        width = self.unet.config.cross_attention_dim
        self.null_token = nn.Parameter(torch.zeros(1, 1, width))
        self.prompt = nn.Linear(prompt_dim, width) if prompt_dim > 0 else None
        self.size_multiple = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.preconditioned = False  # it predicts the restored image itself: flow.precond must be off
        # x_t + f is the restoration from any input, not a velocity along the flow's path: a one-step
        # student's backbone (rcod, gtasr's supervised dial), not a teacher's or a consistency model's
        self.one_step_only = True
        self.sf = float(getattr(self.vae.config, "scaling_factor", 0.18215) or 0.18215)
        self._register_state_dict_hook(_drop_base)
        self.register_load_state_dict_post_hook(_base_not_missing)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The prior's latent of an image in [0, 1] (RCOD's latent-space grouping)."""
        return self.vae.encode(x * 2 - 1).latent_dist.mode() * self.sf

    def memory_per_lr_pixel(self, element_bytes: int) -> int:
        """Generous: VAE activations at HR resolution dominate (about 128 channels x 4 per HR pixel)."""
        return 128 * 4 * element_bytes * self.scale**2

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, prompt: torch.Tensor | None = None):
        if (prompt is None) != (self.prompt is None):
            raise ValueError("this backbone " + ("needs" if self.prompt is not None else "takes no") + " prompt tokens")
        B = x_t.shape[0]
        tokens = self.null_token.expand(B, -1, -1) if prompt is None else self.prompt(prompt)
        z = self.vae.encode(x_t * 2 - 1).latent_dist.mode() * self.sf  # frozen, or its LoRA trains
        if t.shape[-1] == 1:  # one dial value per image
            return self._restore(z, t.view(B), tokens) - x_t
        lo, hi = t.amin((1, 2, 3)), t.amax((1, 2, 3))  # a map: the two ends, blended per pixel
        a, b = self._restore(z, lo, tokens), self._restore(z, hi, tokens)
        w = ((t - lo.view(B, 1, 1, 1)) / (hi - lo).clamp_min(1e-6).view(B, 1, 1, 1)).to(a.dtype)
        return a + w * (b - a) - x_t

    def _restore(self, z: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        lo, hi = self.t_range
        tau = (lo + t.float().clamp(0, 1) * (hi - lo)).round().long()
        a = self.alphas.to(z.device)[tau].view(-1, 1, 1, 1).to(z.dtype)
        eps = self.unet(z, tau, encoder_hidden_states=tokens.to(z.dtype)).sample
        z_0 = (z - (1 - a).sqrt() * eps) / a.sqrt()  # one DDPM step to the clean latent
        return (self.vae.decode(z_0 / self.sf).sample + 1) / 2


def _is_base(key: str) -> bool:
    return (".vae." in f".{key}" or ".unet." in f".{key}") and "lora_" not in key


def _drop_base(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix) and _is_base(k[len(prefix) :])]:
        del state_dict[key]
    return state_dict


def _base_not_missing(module, incompatible):
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if not _is_base(k.split("backbone.", 1)[-1])]


@register("sd_latent")
def sd_latent(
    *,
    scale: int,
    prompt_dim: int = 0,
    prior: str = "",
    lora_rank: int = 8,
    t_range: tuple[int, int] = (200, 999),
    gradient_checkpointing: bool = False,
    vae_lora_rank: int = 0,
) -> LatentUNet:
    """A Stable Diffusion prior from the local folder ``prior`` (flow.backbone_args.prior)."""
    if not prior:
        raise FileNotFoundError("the sd_latent backbone needs flow.backbone_args.prior: a local diffusers folder")
    return LatentUNet(
        scale=scale, prior=prior, lora_rank=lora_rank, t_range=t_range, prompt_dim=prompt_dim,
        gradient_checkpointing=gradient_checkpointing, vae_lora_rank=vae_lora_rank,
    )  # fmt: skip


@register("sd_tiny")
def sd_tiny(*, scale: int, prompt_dim: int = 0, lora_rank: int = 4, vae_lora_rank: int = 0) -> LatentUNet:
    """The latent backbone on tiny random configs: for tests and smoke runs only."""
    return LatentUNet(scale=scale, prior=TINY, lora_rank=lora_rank, prompt_dim=prompt_dim, vae_lora_rank=vae_lora_rank)


def describe(prior: str) -> dict:
    """The card's record of the base model."""
    return {"prior": prior, "prior_sha256": prior_hash(prior)} if prior else {}
