"""`--bf16`: bfloat16 autocast for the matrix products of the updates and of acting, everything
else float32. These tests force autocast where the CPU only emulates bf16 (slow, the same numbers),
with the networks kept tiny."""

import copy
import json

import numpy as np
import pytest
import torch

import diayn_continuous as diayn
import mede_continuous as mede
from run_utils import cli, hardware
from run_utils.run import Run
import sac_continuous as sac

DIMS = dict(obs_dim=5, act_dim=2, action_low=-np.ones(2), action_high=np.ones(2))
BF16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
# bf16 keeps 8 significant bits (a relative rounding error of 0.4 %), and autocast rounds every
# product's inputs, the backward's included: measured on these batches, the gradients of one update
# differ from float32's by at most 9 % of their norm (the first layers, whose gradient sums the most
# rounded terms), the losses by under 2 %. Two minibatches of real data differ by far more than that.
GRADIENT_TOLERANCE = 0.15  # relative to the norm of the float32 gradient, per weight tensor
LOSS_TOLERANCE = 0.05  # relative


def agent_and_batch(name, **kwargs):
    torch.manual_seed(0)
    if name == "sac":
        args = sac.Args(hidden_dim=32, **kwargs)
        agent = sac.SAC(**DIMS, args=args, device=torch.device("cpu"))
        batch = sac.Batch(torch.randn(64, 5), torch.rand(64, 2) * 2 - 1, torch.randn(64), torch.randn(64, 5),
                          (torch.rand(64) < 0.1).float())
        return agent, batch
    module = {"mede": mede, "diayn": diayn}[name]
    args = module.Args(hidden_dim=32, disc_hidden_dim=32, num_z=3, **kwargs)
    agent = (mede.MEDE if name == "mede" else diayn.DIAYN)(**DIMS, args=args, device=torch.device("cpu"))
    members = 3 if args.separate_networks else 1
    z = torch.arange(members).repeat_interleave(64).view(members, 64) if members > 1 else torch.randint(3, (1, 64))
    batch = module.Batch(torch.randn(members, 64, 5), torch.rand(members, 64, 2) * 2 - 1, torch.randn(members, 64),
                         torch.randn(members, 64, 5), (torch.rand(members, 64) < 0.1).float(), z)
    return agent, batch


CASES = [("sac", {}), ("sac", {"autotune": False}), ("mede", {}), ("mede", {"separate_networks": True}),
         ("mede", {"autotune": True}), ("diayn", {}), ("diayn", {"separate_networks": True})]


@pytest.mark.parametrize("name, kwargs", CASES)
def test_one_bf16_update_stays_close_to_the_float32_update(name, kwargs):
    agent, batch = agent_and_batch(name, **kwargs)
    twin = copy.deepcopy(agent)
    torch.manual_seed(1)  # the same noise ε in both updates
    info32 = agent.update(batch, 0)
    torch.manual_seed(1)
    with BF16():
        info16 = twin.update(batch, 0)
    networks = ["actor", "qf"] + ([] if name == "sac" else ["disc_sa", "disc_s"])
    for network in networks:  # the gradients of the update's last backward through each network
        for (key, p32), p16 in zip(getattr(agent, network).named_parameters(), getattr(twin, network).parameters()):
            error = (p16.grad - p32.grad).norm() / p32.grad.norm()
            assert p16.grad.dtype == torch.float32 and error < GRADIENT_TOLERANCE, f"{network}.{key}: {error:.3f}"
    for key in ("qf_loss", "actor_loss"):
        assert info16[key].item() == pytest.approx(info32[key].item(), rel=LOSS_TOLERANCE), key
    assert info16["qf_loss"].item() != info32["qf_loss"].item(), "bf16 was not in effect"


@pytest.mark.parametrize("name, kwargs", CASES)
def test_under_bf16_the_losses_log_probabilities_and_q_values_are_float32_and_not_rounded(name, kwargs):
    agent, batch = agent_and_batch(name, **kwargs)
    with torch.no_grad():  # large outputs, as a trained critic has: bf16 would round 300.3 to 300
        agent.qf.net.biases[-1].fill_(300.3)
    states = (batch.obs,) if name == "sac" else (batch.obs, batch.z)  # SAC's networks take no z
    q32 = agent.qf(*states, batch.actions)
    with BF16():
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16  # autocast is on
        _, log_pi = agent.actor.sample(*states)
        q16 = agent.qf(*states, batch.actions)
        if name != "sac":
            log_q = agent.disc_sa.log_prob(torch.cat([batch.obs, batch.actions], -1), batch.z)
            assert log_q.dtype == torch.float32
        info = agent.update(batch, 0)
    assert log_pi.dtype == torch.float32 and q16.dtype == torch.float32
    assert not torch.equal(q16, q32), "the hidden layers ran in bf16"
    # only the hidden layers' rounding reaches the Q-values: far below bf16's step of 2 at 300
    assert (q16 - q32).abs().max() < 0.1 and (q16 - 300.3).abs().max() < 1.0
    for key, value in info.items():
        assert value.dtype in (torch.float32, torch.bool), key


def test_run_autocast_does_not_reuse_bf16_copies_of_weights_that_changed(tmp_path, monkeypatch):
    """An update steps the actor more than once (policy_frequency 2): each forward pass must see
    the weights as they are, not a bf16 copy cached before the optimizer step."""
    monkeypatch.setenv(hardware.EMULATED_BF16, "1")
    monkeypatch.chdir(tmp_path)
    run = Run(sac.Args(bf16=True, cuda=False), sac.__file__)
    layer = torch.nn.Linear(4, 4)
    x = torch.ones(1, 4)
    with run.autocast():
        before = layer(x)
        with torch.no_grad():
            layer.weight.add_(1.0)
        after = layer(x)
    assert not torch.equal(before, after)
    run.dir.release()


# --------------------------------------------------------------------------- whole runs
SMALL = dict(env_id="MultiGoal-v0", learning_starts=100, eval_episodes=1, cuda=False, hidden_dim=16)
SCRIPTS = {"sac": (sac, {}), "mede": (mede, dict(disc_hidden_dim=16, num_z=3)),
           "diayn": (diayn, dict(disc_hidden_dim=16, num_z=3))}


def make_args(name, **kwargs):
    module, extra = SCRIPTS[name]
    return module.Args(**{**SMALL, **extra, "total_timesteps": 400, "checkpoint_every": 0, **kwargs})


def only_run(root):
    (run_dir,) = (root / "runs").iterdir()
    return run_dir


@pytest.mark.parametrize("name", ["sac", "mede"])
def test_a_resumed_bf16_run_computes_exactly_what_an_uninterrupted_one_computes(tmp_path, monkeypatch, name):
    monkeypatch.setenv(hardware.EMULATED_BF16, "1")
    module = SCRIPTS[name][0]
    results, losses = {}, {}
    for how in ("uninterrupted", "interrupted", "float32"):
        (tmp_path / how).mkdir()
        monkeypatch.chdir(tmp_path / how)
        bf16 = how != "float32"
        if how == "interrupted":
            module.main(make_args(name, bf16=True, total_timesteps=300, checkpoint_every=300))
            checkpoint = str(only_run(tmp_path / how) / "checkpoint.pt")
            assert torch.load(checkpoint, weights_only=False)["precision"] == "bfloat16"
            args = cli.parse_args(module.Args, module.__file__, ["--resume", checkpoint, "--total-timesteps", "600"])
            results[how] = module.main(args)
        else:
            results[how] = module.main(make_args(name, bf16=bf16, total_timesteps=600, checkpoint_every=300))
        losses[how] = scalars(only_run(tmp_path / how))
    assert losses["interrupted"] == losses["uninterrupted"]  # bit for bit
    assert results["interrupted"]["per_z"] == results["uninterrupted"]["per_z"]
    assert losses["float32"] != losses["uninterrupted"], "bf16 was not in effect"
    assert results["uninterrupted"]["precision"] == "bfloat16" and results["float32"]["precision"] == "float32"
    with open(only_run(tmp_path / "uninterrupted") / "eval.json") as f:
        assert json.load(f)["config"]["bf16"] is True


def scalars(run_dir, tag="losses/qf_loss"):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


def test_without_native_bf16_the_run_says_so_in_one_line_and_runs_float32(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(hardware.EMULATED_BF16, raising=False)
    monkeypatch.setattr(hardware, "native_bf16", lambda device: False)
    monkeypatch.chdir(tmp_path)
    result = mede.main(make_args("mede", bf16=True))
    said = [line for line in capsys.readouterr().err.splitlines() if "--bf16" in line]
    assert len(said) == 1 and "running in float32" in said[0] and "avx512_bf16" in said[0]
    assert result["precision"] == "float32" and result["config"]["bf16"] is True


def test_with_native_bf16_the_run_trains_in_bfloat16_and_records_it(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(hardware.EMULATED_BF16, raising=False)
    monkeypatch.setattr(hardware, "native_bf16", lambda device: True)
    monkeypatch.chdir(tmp_path)
    result = sac.main(make_args("sac", bf16=True))
    assert "--bf16" not in capsys.readouterr().err
    assert result["precision"] == "bfloat16"
    run_dir = only_run(tmp_path)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run_dir), size_guidance={"tensors": 0}).Reload()
    (text,) = events.Tensors("hyperparameters/text_summary")
    assert "|precision|bfloat16|" in text.tensor_proto.string_val[0].decode()


def test_a_resume_in_another_precision_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hardware, "native_bf16", lambda device: True)
    mede.main(make_args("mede", bf16=True, total_timesteps=200, checkpoint_every=200))
    run_dir = str(only_run(tmp_path))
    with pytest.raises(cli.UsageError, match="--bf16 True \\(asked: False\\)"):
        mede.main(cli.parse_args(mede.Args, mede.__file__, ["--resume", run_dir, "--no-bf16",
                                                                  "--total-timesteps", "400"]))
    # the same run on a CPU that only emulates bf16: refused, saying what to do
    monkeypatch.setattr(hardware, "native_bf16", lambda device: False)
    monkeypatch.delenv(hardware.EMULATED_BF16, raising=False)
    with pytest.raises(cli.UsageError, match="trains in bfloat16.*AVX512-BF16 or AMX"):
        mede.main(cli.parse_args(mede.Args, mede.__file__, ["--resume", run_dir, "--total-timesteps", "400"]))
