"""What a run writes to TensorBoard (and to Weights and Biases with --track) as it trains: CleanRL's
episode and loss tags, the measures, and the hyperparameters once."""

from collections import deque

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from run_utils.cli import UsageError


class TrainingLog:
    """The run's TensorBoard writer in its directory. On resume, TensorBoard hides what the
    interrupted run logged after its checkpoint (`purge_step`): those steps are logged again."""

    def __init__(self, args, directory: str, name: str, precision: str, resumed_at: int | None):
        if args.track:
            try:
                import wandb
            except ImportError:
                raise UsageError("--track needs Weights and Biases: pip install wandb") from None
            wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True,
                       config=vars(args), name=name, save_code=True)
        self.writer = SummaryWriter(directory, purge_step=resumed_at)
        if resumed_at is None:
            self.writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" +
                                 "\n".join(f"|{k}|{v}|" for k, v in {**vars(args), "precision": precision}.items()))
        self.recent_returns = deque(maxlen=20)  # for the progress line, and kept in checkpoints

    def episodes(self, infos: dict, step: int, z: np.ndarray | None = None) -> None:
        """CleanRL's episode tags (and, with a z per env, the return of each z)."""
        for i in np.flatnonzero(infos.get("_episode", [])):
            episode_return = infos["episode"]["r"][i]
            self.recent_returns.append(float(episode_return))
            self.writer.add_scalar("charts/episodic_return", episode_return, step)
            if z is not None:
                self.writer.add_scalar(f"charts/episodic_return_z{z[i]}", episode_return, step)
            self.writer.add_scalar("charts/episodic_length", infos["episode"]["l"][i], step)

    def losses(self, info: dict, step: int, charts, sps: float) -> None:
        """The update's losses and measurements (tags in `charts` under charts/, the others under
        losses/), read from the device, and the steps per second."""
        for name, value in info.items():
            self.writer.add_scalar(f"charts/{name}" if name in charts else f"losses/{name}", value.item(), step)
        self.writer.add_scalar("charts/SPS", sps, step)

    def scalars(self, scalars: dict, step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, float(value), step)

    def close(self) -> None:
        self.writer.close()
