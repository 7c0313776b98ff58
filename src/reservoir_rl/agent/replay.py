"""Replay buffers: uniform or proportional prioritized replay over a `LazyTensorStorage`, and their
checkpoint state as plain tensors.

Prioritized replay (Schaul et al. 2016) is implemented here in plain torch: TorchRL's own
``PrioritizedSampler`` needs its C++ segment trees, which are not importable with every torch build.
Sampling draws from the global torch generator (saved with every checkpoint), so a resumed run samples
exactly what an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import Sampler
from torchrl.data.replay_buffers.storages import Storage

from reservoir_rl.config import TrainConfig

PRIORITY_ALPHA = 0.6  # how strongly priorities shape sampling (0 = uniform)
PRIORITY_BETA = 0.4  # importance-sampling correction exponent (1 = full correction)
PRIORITY_EPS = 1e-6  # keeps every stored transition sampleable


class ProportionalPrioritizedSampler(Sampler):
    """Samples index i with probability p_i^α / Σ p_j^α; returns importance weights (p_i / p_min)^−β.

    ``p_i`` is the magnitude of the transition's last TD error (+ ``eps``); a new transition gets the
    largest priority seen so far, so it is sampled at least once with high probability. Sampling is
    O(buffer) (a cumulative sum and a binary search), cheap next to a gradient update for buffers of
    a few hundred thousand transitions.

    Args:
        capacity: the storage capacity (transitions).
        alpha, beta, eps: the usual PER constants.
        device: where the priorities live (the storage's device).
    """

    def __init__(
        self,
        capacity: int,
        alpha: float = PRIORITY_ALPHA,
        beta: float = PRIORITY_BETA,
        eps: float = PRIORITY_EPS,
        device: torch.device | str = "cpu",
    ) -> None:
        self.capacity = int(capacity)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.eps = float(eps)
        self.device = torch.device(device)
        self._empty()

    def _empty(self) -> None:
        # p^α of every slot (float64 so long cumulative sums stay exact enough); 0 = never written
        self.priorities = torch.zeros(self.capacity, dtype=torch.float64, device=self.device)
        self.max_priority = torch.ones((), dtype=torch.float64, device=self.device)  # raw p, not p^α

    def extend(self, index: torch.Tensor) -> None:
        index = torch.as_tensor(index, device=self.device).reshape(-1)
        self.priorities[index] = self.max_priority.pow(self.alpha)

    def add(self, index: int) -> None:
        self.extend(torch.as_tensor([index]))

    def sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n = len(storage)
        if n == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        weights = self.priorities[:n]
        cumulative = torch.cumsum(weights, 0)
        mass = torch.rand(batch_size, dtype=torch.float64, device=self.device, generator=self._rng) * cumulative[-1]
        index = torch.searchsorted(cumulative, mass, right=True).clamp_(max=n - 1)
        p_min = weights.min()
        importance = (weights[index] / p_min).pow(-self.beta).to(torch.float32)
        return index, {"priority_weight": importance}

    @torch.no_grad()
    def update_priority(self, index: torch.Tensor, priority: torch.Tensor, *, storage: Storage | None = None) -> None:
        """``priority``: the raw priority (|TD error|) of each sampled index, any shape with index.numel() values."""
        index = torch.as_tensor(index, device=self.device).reshape(-1)
        raw = torch.as_tensor(priority, device=self.device).detach().reshape(-1).to(torch.float64).abs() + self.eps
        self.priorities[index] = raw.pow(self.alpha)
        self.max_priority = torch.maximum(self.max_priority, raw.max())

    def mark_update(self, index: torch.Tensor, *, storage: Storage | None = None) -> None:
        self.extend(index)

    @property
    def default_priority(self) -> float:
        return float(self.max_priority)

    def state_dict(self) -> dict[str, Any]:
        return {"priorities": self.priorities.cpu().clone(), "max_priority": self.max_priority.cpu().clone()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.priorities = state_dict["priorities"].to(self.device, torch.float64).clone()
        self.max_priority = state_dict["max_priority"].to(self.device, torch.float64).clone()

    def dumps(self, path) -> None:
        """TorchRL's on-disk buffer format (``ReplayBuffer.dumps``): the state in ``path/sampler.pt``."""
        from pathlib import Path

        Path(path).mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), Path(path) / "sampler.pt")

    def loads(self, path) -> None:
        from pathlib import Path

        self.load_state_dict(torch.load(Path(path) / "sampler.pt", weights_only=True))


def make_replay_buffer(train_config: TrainConfig, device: torch.device | str = "cpu") -> TensorDictReplayBuffer:
    """Uniform (or prioritized) replay of ``buffer_size`` transitions, ``batch_size`` per sample."""
    storage = LazyTensorStorage(train_config.buffer_size, device=device)
    sampler = None
    if train_config.prioritized_replay:
        sampler = ProportionalPrioritizedSampler(
            train_config.buffer_size, alpha=train_config.priority_alpha, beta=train_config.priority_beta, device=device
        )
    kwargs = {"sampler": sampler} if sampler is not None else {}
    return TensorDictReplayBuffer(storage=storage, batch_size=train_config.batch_size, **kwargs)


def sample_transitions(
    replay_buffer: TensorDictReplayBuffer, keys: Optional[Sequence[Any]] = None,
) -> tuple[dict[Any, torch.Tensor], torch.Tensor, torch.Tensor | None]:
    """One training batch straight from the sampler and the storage (the data ``replay_buffer.sample()``
    returns, without its per-call TensorDict bookkeeping).

    Returns the transitions as plain tensors keyed like the stored TensorDict (``"observation"``,
    ``("next", "reward")``, …; first dimension ``batch_size``) — every stored key, or those of ``keys`` the
    buffer holds —, their storage indices (int64, (batch_size,)) and, under prioritized replay, the
    importance weights (float32, (batch_size,)), else None.
    """
    storage = replay_buffer.storage
    index, info = replay_buffer.sampler.sample(storage, replay_buffer.batch_size)
    contents = getattr(storage, "_storage", None)  # LazyTensorStorage: one preallocated TensorDict
    if not (isinstance(contents, TensorDict) and contents.batch_dims == 1):
        contents = storage.get(index)
        leaves = contents.items(True, True) if keys is None else ((k, contents.get(k)) for k in keys if k in contents.keys(True, True))
        return {key: value for key, value in leaves}, index, info.get("priority_weight")
    # index each leaf directly: ~10× cheaper than indexing the TensorDict
    leaves = contents.items(True, True) if keys is None else ((k, contents.get(k, None)) for k in keys)
    sample = {key: value.index_select(0, index) for key, value in leaves if value is not None}
    return sample, index, info.get("priority_weight")


def is_prioritized(replay_buffer: TensorDictReplayBuffer) -> bool:
    return isinstance(replay_buffer.sampler, ProportionalPrioritizedSampler)


def update_priorities(replay_buffer: TensorDictReplayBuffer, index: torch.Tensor, td_error_squared: torch.Tensor) -> None:
    """Set the priorities of the sampled ``index`` to |TD error| (the losses give the squared error)."""
    replay_buffer.sampler.update_priority(index, td_error_squared.detach().sqrt())


# ------------------------------------------------------------------------------ checkpoint state


def _map_tensors(tree: Any, fn) -> Any:
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, dict):
        return type(tree)((key, _map_tensors(value, fn)) for key, value in tree.items())
    return tree


def replay_state(replay_buffer: TensorDictReplayBuffer) -> dict[str, Any]:
    """The buffer's state (contents, write cursor, sampler) as plain data; only the filled slots are
    stored, so an early checkpoint of a large buffer stays small."""
    state = replay_buffer.state_dict()
    storage_state = state["_storage"]
    length = int(storage_state["_len"])
    capacity = replay_buffer.storage.max_size

    def filled(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.ndim and tensor.shape[0] == capacity:
            return tensor[:length].detach().cpu().clone()
        return tensor.detach().cpu().clone()

    state["_storage"] = {**storage_state, "_storage": _map_tensors(storage_state["_storage"], filled)}
    state["capacity"] = capacity
    return state


def load_replay_state(replay_buffer: TensorDictReplayBuffer, state: dict[str, Any]) -> None:
    """Restore what `replay_state` saved into a freshly built buffer of the same capacity."""
    state = dict(state)
    capacity = int(state.pop("capacity", replay_buffer.storage.max_size))
    if capacity != replay_buffer.storage.max_size:
        raise ValueError(f"replay buffer capacity {replay_buffer.storage.max_size} != saved {capacity}")
    storage_state = state["_storage"]
    length = int(storage_state["_len"])
    if storage_state.get("initialized") and length:
        contents = _map_tensors(storage_state["_storage"], lambda tensor: tensor[:length])
        # a TensorDict's state_dict names nested entries with dotted keys ("next.observation")
        data = TensorDict(dict(contents), batch_size=[length]).unflatten_keys(".")
        # writing the saved transitions at their slots lets the storage allocate itself as it would
        # while collecting; the rest of the state (cursor, sampler, …) then loads through the public API
        replay_buffer.storage.set(torch.arange(length), data.to(replay_buffer.storage.device))
    state["_storage"] = replay_buffer.storage.state_dict()
    replay_buffer.load_state_dict(state)
