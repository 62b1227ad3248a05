"""PyTorch reference of the fine-tuning step, for training parity fixtures.

What shared/reference/REFERENCE.md ("Fine-tuning") describes, written the way the 2022 reference
wrote it, after the well-known public implementations:

- `BertAdam`: pytorch_pretrained_bert's BertAdam (Adam moments without bias correction, eps added
  to sqrt(v), decoupled weight decay added to the update, its own `WarmupLinearSchedule` factor
  w(t/T) on top of the group's lr), without gradient clipping;
- the group lr is driven by transformers' `get_linear_schedule_with_warmup` (lambda(t)), so the lr
  of step t is lr * lambda(t) * w(t/T), both factors counted from the number of steps taken before;
- `AdamW` variant: `torch.optim.AdamW` (bias correction) with lambda(t) only;
- parameter groups: no weight decay for names containing "bias" or "LayerNorm.weight";
- loss: `nn.CrossEntropyLoss(label_smoothing=...)` (mean over the batch);
- `FGM` / `PGD`: the classic adversarial-training helpers on the word-embedding matrix;
- `EMA`: the classic shadow-weights helper (shadow = decay * shadow + (1 - decay) * param);
- `resample`: the reference's repetition of rare categories' training videos.

One training step (`Trainer.step`): forward + loss, backward, adversarial passes, optimizer step,
EMA update, zero the gradients, scheduler step. A parameter that never receives a gradient (the
visual branch of the last cross-modality layer: its output is not used) keeps `grad is None`, so
both optimizers skip it entirely (no moments, no weight decay), as in PyTorch.

The model is `model_reference.VideoModel(cfg, pretrain=False)`; with every dropout and
stochastic-depth probability at 0 in `cfg`, train mode is deterministic.

Used by scripts/make_train_fixtures.py and scripts/bench_reference_train.py.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_reference as ref  # noqa: E402

NO_DECAY = ("bias", "LayerNorm.weight")
WORD_EMBEDDINGS = "encoder.bert.embeddings.word_embeddings.weight"


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


def warmup_linear(progress: float, warmup: float) -> float:
    """pytorch_pretrained_bert's `WarmupLinearSchedule.get_lr_`: w(x) = x / warmup for
    x < warmup, else max((x - 1) / (warmup - 1), 0)."""
    if progress < warmup:
        return progress / warmup
    return max((progress - 1.0) / (warmup - 1.0), 0.0)


def linear_lambda(step: int, warmup_steps: int, total_steps: int) -> float:
    """transformers' `get_linear_schedule_with_warmup` factor lambda(t)."""
    if step < warmup_steps:
        return float(step) / float(max(1, warmup_steps))
    return max(0.0, float(total_steps - step) / float(max(1, total_steps - warmup_steps)))


# --------------------------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------------------------


class BertAdam(torch.optim.Optimizer):
    """pytorch_pretrained_bert's BertAdam without gradient clipping.

    Per parameter: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2 (no bias correction),
    update = m / (sqrt(v) + e) + weight_decay * p, p -= lr_t * update with
    lr_t = group lr * warmup_linear(step / t_total, warmup). `step` is the parameter's own count
    of steps taken, starting at `start_step` (a resumed schedule with fresh moments).
    """

    def __init__(self, params, lr, warmup=0.1, t_total=-1, b1=0.9, b2=0.999, e=1e-6, weight_decay=0.01,
                 start_step=0):
        defaults = dict(lr=lr, warmup=warmup, t_total=t_total, b1=b1, b2=b2, e=e, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self.start_step = start_step
        self.last_lr = None  # the lr_t of the last step (the same for every parameter)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = self.start_step
                    state["next_m"] = torch.zeros_like(p)
                    state["next_v"] = torch.zeros_like(p)
                next_m, next_v = state["next_m"], state["next_v"]
                beta1, beta2 = group["b1"], group["b2"]

                next_m.mul_(beta1).add_(grad, alpha=1 - beta1)
                next_v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                update = next_m / (next_v.sqrt() + group["e"])
                if group["weight_decay"] > 0.0:
                    update += group["weight_decay"] * p

                lr_scheduled = group["lr"]
                if group["t_total"] != -1:
                    lr_scheduled *= warmup_linear(state["step"] / group["t_total"], group["warmup"])
                self.last_lr = lr_scheduled

                p.add_(-(lr_scheduled * update))
                state["step"] += 1
        return loss


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The reference's two groups: decay, and no decay for "bias" / "LayerNorm.weight" names."""
    named = list(model.named_parameters())
    return [
        {"params": [p for n, p in named if not any(nd in n for nd in NO_DECAY)], "weight_decay": weight_decay},
        {"params": [p for n, p in named if any(nd in n for nd in NO_DECAY)], "weight_decay": 0.0},
    ]


# --------------------------------------------------------------------------------------------
# Adversarial training and EMA (the classic helpers)
# --------------------------------------------------------------------------------------------


class FGM:
    """Fast Gradient Method on the embedding matrices whose name contains `emb_name`."""

    def __init__(self, model: nn.Module, emb_name: str = WORD_EMBEDDINGS):
        self.model = model
        self.emb_name = emb_name
        self.backup = {}

    def attack(self, epsilon: float = 1.0):
        for name, param in self.model.named_parameters():
            if param.requires_grad and self.emb_name in name:
                self.backup[name] = param.data.clone()
                norm = torch.norm(param.grad)
                if norm != 0 and not torch.isnan(norm):
                    r_at = epsilon * param.grad / norm
                    param.data.add_(r_at)

    def restore(self):
        for name, param in self.model.named_parameters():
            if param.requires_grad and self.emb_name in name:
                assert name in self.backup
                param.data = self.backup[name]
        self.backup = {}


class PGD:
    """Projected Gradient Descent on the embedding matrices whose name contains `emb_name`."""

    def __init__(self, model: nn.Module, emb_name: str = WORD_EMBEDDINGS):
        self.model = model
        self.emb_name = emb_name
        self.emb_backup = {}
        self.grad_backup = {}

    def attack(self, epsilon: float = 1.0, alpha: float = 0.3, is_first_attack: bool = False):
        for name, param in self.model.named_parameters():
            if param.requires_grad and self.emb_name in name:
                if is_first_attack:
                    self.emb_backup[name] = param.data.clone()
                norm = torch.norm(param.grad)
                if norm != 0 and not torch.isnan(norm):
                    r_at = alpha * param.grad / norm
                    param.data.add_(r_at)
                    param.data = self.project(name, param.data, epsilon)

    def restore(self):
        for name, param in self.model.named_parameters():
            if param.requires_grad and self.emb_name in name:
                assert name in self.emb_backup
                param.data = self.emb_backup[name]
        self.emb_backup = {}

    def project(self, param_name: str, param_data: torch.Tensor, epsilon: float) -> torch.Tensor:
        r = param_data - self.emb_backup[param_name]
        if torch.norm(r) > epsilon:
            r = epsilon * r / torch.norm(r)
        return self.emb_backup[param_name] + r

    def backup_grad(self):
        for name, param in self.model.named_parameters():
            if param.requires_grad and param.grad is not None:
                self.grad_backup[name] = param.grad.clone()

    def restore_grad(self):
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                param.grad = self.grad_backup.get(name)


class EMA:
    """Exponential moving average of the trainable parameters (a shadow copy)."""

    def __init__(self, model: nn.Module, decay: float):
        self.model = model
        self.decay = decay
        self.shadow = {}

    def register(self):
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                self.shadow[name] = param.data.clone()

    def update(self):
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                assert name in self.shadow
                new_average = (1.0 - self.decay) * param.data + self.decay * self.shadow[name]
                self.shadow[name] = new_average.clone()


# --------------------------------------------------------------------------------------------
# Training steps
# --------------------------------------------------------------------------------------------


@dataclass
class TrainCase:
    """Hyper-parameters of a run of consecutive fine-tuning steps (the fields of a fixture case).

    `optimizer`: "bertadam" (lr * lambda(t) * w(t / total_steps)) or "adamw" (lr * lambda(t));
    `start_step`: the schedule index t of the first step (moments always start at zero);
    `adversarial`: "none", "fgm" or "pgd"; `ema_decay`: 0 = no EMA.
    """

    lr: float
    warmup_steps: int
    total_steps: int
    warmup_ratio: float = 0.1
    optimizer: str = "bertadam"
    weight_decay: float = 0.01
    start_step: int = 0
    steps: int = 1
    label_smoothing: float = 0.1
    adversarial: str = "none"
    fgm_eps: float = 1.0
    pgd_steps: int = 3
    pgd_alpha: float = 0.3
    pgd_eps: float = 1.0
    ema_decay: float = 0.0

    def expected_lr(self, step: int) -> float:
        """The lr of the step with schedule index `step`, in closed form."""
        lr = self.lr * linear_lambda(step, self.warmup_steps, self.total_steps)
        if self.optimizer == "bertadam":
            lr *= warmup_linear(step / self.total_steps, self.warmup_ratio)
        return lr


class Trainer:
    """The reference's fine-tuning loop body on one model: optimizer, lr schedule, adversarial
    training and EMA as configured by a `TrainCase`."""

    def __init__(self, model: nn.Module, case: TrainCase):
        self.model = model
        self.case = case
        groups = param_groups(model, case.weight_decay)
        if case.optimizer == "bertadam":
            self.optimizer = BertAdam(groups, lr=case.lr, warmup=case.warmup_ratio, t_total=case.total_steps,
                                      start_step=case.start_step)
        elif case.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(groups, lr=case.lr, betas=(0.9, 0.999), eps=1e-6)
        else:
            raise ValueError(f"unknown optimizer {case.optimizer!r}")
        for group in self.optimizer.param_groups:
            group["initial_lr"] = case.lr  # resuming LambdaLR at start_step needs it
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, case.warmup_steps, case.total_steps, last_epoch=case.start_step - 1
        )
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=case.label_smoothing)
        if case.adversarial == "fgm":
            self.adversary = FGM(model)
        elif case.adversarial == "pgd":
            self.adversary = PGD(model)
        elif case.adversarial == "none":
            self.adversary = None
        else:
            raise ValueError(f"unknown adversarial training {case.adversarial!r}")
        self.ema = None
        if case.ema_decay > 0:
            self.ema = EMA(model, case.ema_decay)
            self.ema.register()

    def loss(self, batch: dict) -> torch.Tensor:
        logits = self.model(batch["input_ids"], batch["text_mask"], frames=batch["frames"],
                            frame_mask=batch["frame_mask"])
        return self.loss_fn(logits, batch["labels"])

    def step(self, batch: dict) -> tuple[float, float]:
        """One training step; returns (lr used, clean loss)."""
        case = self.case
        loss = self.loss(batch)
        loss.backward()
        if case.adversarial == "fgm":
            self.adversary.attack(epsilon=case.fgm_eps)
            self.loss(batch).backward()
            self.adversary.restore()
        elif case.adversarial == "pgd":
            pgd = self.adversary
            pgd.backup_grad()
            for t in range(case.pgd_steps):
                pgd.attack(epsilon=case.pgd_eps, alpha=case.pgd_alpha, is_first_attack=(t == 0))
                if t != case.pgd_steps - 1:
                    self.model.zero_grad()
                else:
                    pgd.restore_grad()
                self.loss(batch).backward()
            pgd.restore()
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        if case.optimizer == "bertadam":
            lr = self.optimizer.last_lr
        if self.ema is not None:
            self.ema.update()
        self.optimizer.zero_grad()
        self.scheduler.step()
        return lr, loss.item()


def build_model(config: dict, state_dict: dict) -> ref.VideoModel:
    """The reference classifier with `state_dict` loaded strictly, in train mode."""
    model = ref.VideoModel(config, pretrain=False)
    model.load_state_dict(state_dict, strict=True)
    return model.train()


def trainable_state(model: nn.Module) -> dict:
    """Copies of the trainable parameters (reference names, no buffers)."""
    return {name: p.detach().clone().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def run_steps(config: dict, state_dict: dict, batch: dict, case: TrainCase) -> dict:
    """Runs `case.steps` consecutive steps on `batch` from `state_dict`.

    Returns {"lrs": [...], "losses": [...] (clean losses), "weights": raw trainable parameters
    after the steps, "ema": the EMA shadow (None without EMA)}.
    """
    model = build_model(config, state_dict)
    trainer = Trainer(model, case)
    lrs, losses = [], []
    for index in range(case.steps):
        lr, loss = trainer.step(batch)
        expected = case.expected_lr(case.start_step + index)
        assert math.isclose(lr, expected, rel_tol=1e-12, abs_tol=1e-18), (lr, expected)
        lrs.append(lr)
        losses.append(loss)
    ema = None
    if trainer.ema is not None:
        ema = {name: value.contiguous() for name, value in trainer.ema.shadow.items()}
    return {"lrs": lrs, "losses": losses, "weights": trainable_state(model), "ema": ema}


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------


def repeats(count: int) -> int:
    """Times a training video is used, from its category's number of labeled videos."""
    if count < 100:
        return 5
    if count < 500:
        return 3
    if count < 1000:
        return 2
    return 1


def resample(labels: list, train: list[int]) -> list[int]:
    """The reference's resampling: `labels` are the categories of the whole labeled set,
    `train` indices into it; each train index is repeated (consecutively, in order) by
    `repeats` of its category's count in the whole labeled set."""
    counts = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    out = []
    for index in train:
        out.extend([index] * repeats(counts[labels[index]]))
    return out
