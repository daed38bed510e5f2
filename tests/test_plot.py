"""plot.py on tiny fabricated logs, eval files and models: shapes, labels, one seed, bad input."""

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

import evaluation
import mede_continuous as mede
import plot
import run_utils
import sac_continuous as sac

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures plot.py saves (still written to disk), kept open for inspection."""
    saved, real_save, real_close = [], plot.save, plt.close

    def save_and_keep(fig, out):
        saved.append(fig)
        return real_save(fig, out)

    monkeypatch.setattr(plot, "save", save_and_keep)
    monkeypatch.setattr(plt, "close", lambda fig=None: None)
    yield saved
    real_close("all")


HELD_OUT_GAP = 0.25


def fake_run(root, name, num_z, values_sa, values_s, steps):
    run_dir = root / name
    writer = SummaryWriter(str(run_dir))
    for step, sa, s in zip(steps, values_sa, values_s):
        writer.add_scalar("charts/log_q_z_given_sa", sa, step)
        writer.add_scalar("charts/log_q_z_given_s", s, step)
        writer.add_scalar("measure/log_q_z_given_sa", sa - HELD_OUT_GAP, step)  # held out: lower than replay
        writer.add_scalar("measure/log_q_z_given_s", s - HELD_OUT_GAP, step)
    writer.close()
    (run_dir / "eval.json").write_text(json.dumps({"num_z": num_z}))
    return str(run_dir)


@pytest.mark.parametrize("measure, shift", [("replay", 0.0), ("held-out", -HELD_OUT_GAP)])
def test_figure2_mean_and_std_over_seeds_with_chance_level(tmp_path, figures, measure, shift):
    steps = [100, 200, 300, 400]
    mede_runs = [fake_run(tmp_path, f"mede{i}", 4, [-1.0 + i, -0.5 + i, -0.2 + i, 0.0 + i], [-1.2] * 4, steps)
                 for i in range(2)]
    diayn_runs = [fake_run(tmp_path, "diayn0", 4, [-1.4] * 4, [-1.3] * 4, steps)]  # one seed must work too
    matched = [fake_run(tmp_path, "diayn_matched0", 4, [-1.3] * 4, [-1.3] * 4, steps)]
    out = plot.main(["fig2", "--mede", *mede_runs, "--diayn", *diayn_runs, "--diayn-matched", *matched,
                     "--measure", measure, "--points", "4", "--out", str(tmp_path / "fig2.png")])
    assert out.endswith("fig2.png") and os.path.getsize(out) > 10_000
    (fig,) = figures
    ax_sa, ax_s = fig.axes
    assert "s, a" in ax_sa.get_title() and "s)" in ax_s.get_title()
    assert ax_sa.get_xlabel() == "environment steps"
    lines = {line.get_label(): line for line in ax_sa.get_lines()}
    mede_line = lines["MEDE (2 seeds)"]
    # mean over the two seeds: [-0.5, 0.0, 0.3, 0.5] at the steps, linearly interpolated between
    np.testing.assert_allclose(np.interp(steps, *mede_line.get_data()), np.add([-0.5, 0.0, 0.3, 0.5], shift),
                               atol=1e-6)
    assert "DIAYN (1 seed)" in lines and "DIAYN, matched weight (1 seed)" in lines
    assert {"replay": "replay batches", "held-out": "held-out transitions"}[measure] in ax_sa.get_ylabel()
    chance = [line for label, line in lines.items() if label.startswith("chance")]
    assert chance and chance[0].get_ydata()[0] == pytest.approx(math.log(1 / 4))
    # the std band of MEDE is 0.5 wide on each side (the two seeds differ by exactly 1)
    band = ax_sa.collections[0].get_paths()[0].vertices
    assert band[:, 1].max() - band[:, 1].min() == pytest.approx((0.5 + 0.5) - (-0.5 - 0.5), abs=1e-6)
    assert any(label.startswith("chance") for label in (line.get_label() for line in ax_s.get_lines()))


def test_figure2_rejects_runs_with_different_num_z(tmp_path):
    a = fake_run(tmp_path, "a", 4, [0, 0], [0, 0], [1, 2])
    b = fake_run(tmp_path, "b", 3, [0, 0], [0, 0], [1, 2])
    with pytest.raises(plot.PlotError, match="different"):
        plot.main(["fig2", "--mede", a, "--diayn", b, "--out", str(tmp_path / "x.png")])


def write_eval(path, algorithm, num_z, avg, best, seed, separate=False, **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"algorithm": algorithm, "env_id": "Hopper-v4", "num_z": num_z, "seed": seed,
                                "global_step": 1000, "avg": avg, "max": best, "separate_networks": separate,
                                "per_z": [{"mean": avg}], **extra}))


def test_table1_mean_and_std_over_seeds(tmp_path):
    write_eval(tmp_path / "m1/eval.json", "MEDE", 4, 100.0, 150.0, 1)
    write_eval(tmp_path / "m2/eval.json", "MEDE", 4, 200.0, 250.0, 2)
    write_eval(tmp_path / "s1/eval.json", "SAC", 1, 300.0, 300.0, 1)
    write_eval(tmp_path / "d1/eval.json", "DIAYN", 4, 50.0, 60.0, 1, disc_coef=0.3)  # a row of its own
    write_eval(tmp_path / "d2/eval.json", "DIAYN", 4, 70.0, 80.0, 1, disc_coef=1.0)
    out = str(tmp_path / "docs" / "table1")
    plot.main(["table1", str(tmp_path / "*/eval.json"), "--out", out])
    markdown = open(f"{out}.md").read()
    assert "| Hopper-v4 | MEDE | 4 | 2 | 1000 | 150.0 ± 50.0 | 200.0 ± 50.0 |" in markdown
    assert "| Hopper-v4 | SAC | 1 | 1 | 1000 | 300.0 ± 0.0 |  |" in markdown
    assert "| Hopper-v4 | DIAYN β = 0.3 | 4 | 1 | 1000 | 50.0 ± 0.0 | 60.0 ± 0.0 |" in markdown
    assert "| Hopper-v4 | DIAYN | 4 | 1 | 1000 | 70.0 ± 0.0 | 80.0 ± 0.0 |" in markdown
    rows = open(f"{out}.csv").read().splitlines()
    assert rows[0].startswith("env,algorithm,|Z|,seeds") and len(rows) == 5


def test_table1_rejects_a_file_that_is_not_an_eval_json(tmp_path):
    bad = tmp_path / "eval.json"
    bad.write_text("{}")
    with pytest.raises(plot.PlotError, match="not an eval.json"):
        plot.main(["table1", str(bad), "--out", str(tmp_path / "t")])


def save_model(module, agent_state, args, path, dims):
    run_utils.atomic_save({"script": module.SCRIPT, "args": asdict(args), "dims": dims, "agent": agent_state}, path)


def tiny_models(tmp_path, separate=False):
    """A SAC and a MEDE model file on MultiGoal-v0, in the format of --save-model, random weights."""
    dims = {"obs_dim": 2, "act_dim": 2, "action_low": -np.ones(2, np.float32), "action_high": np.ones(2, np.float32)}
    torch.manual_seed(0)
    sac_args = sac.Args(env_id="MultiGoal-v0", hidden_dim=8)
    sac_agent = sac.SAC(2, 2, -np.ones(2), np.ones(2), sac_args, torch.device("cpu"))
    save_model(sac, {"actor": sac_agent.actor.state_dict(), "qf": sac_agent.qf.state_dict()}, sac_args,
               str(tmp_path / "sac.pt"), dims)
    mede_args = mede.Args(env_id="MultiGoal-v0", hidden_dim=8, disc_hidden_dim=8, num_z=3, separate_networks=separate)
    mede_agent = mede.MEDE(2, 2, -np.ones(2), np.ones(2), mede_args, torch.device("cpu"))
    save_model(mede, {name: getattr(mede_agent, name).state_dict() for name in ("actor", "qf", "disc_sa", "disc_s")},
               mede_args, str(tmp_path / "mede.pt"), dims)
    return str(tmp_path / "sac.pt"), str(tmp_path / "mede.pt"), mede_agent


@pytest.mark.parametrize("separate", [False, True])
def test_figure1_panels_from_tiny_models(tmp_path, figures, monkeypatch, separate):
    sac_path, mede_path, mede_agent = tiny_models(tmp_path, separate)
    drawn = []  # the value grids of the filled contour plots, in drawing order
    real_contourf = plt.Axes.contourf
    monkeypatch.setattr(plt.Axes, "contourf", lambda ax, x, y, values, **kw: (drawn.append(values),
                                                                                 real_contourf(ax, x, y, values, **kw))[1])
    out = plot.main(["fig1", "--sac", sac_path, "--mede", mede_path, "--z", "1",
                     "--episodes", "2", "--resolution", "9", "--states=0,0 1,1 -2,3",
                     "--out", str(tmp_path / "fig1")])
    assert out.endswith("fig1.png") and os.path.exists(out)
    (fig,) = figures
    titles = [ax.get_title() for ax in fig.axes]
    assert "SAC" in titles[0] and "|Z| = 3" in titles[1]
    contour_titles = [t for t in titles if "state" in t]
    assert len(contour_titles) == 9  # 3 states x (Q_soft, Q_z, S_z)
    assert sum("Q_{soft} - Q_z" in t for t in contour_titles) == 3
    assert sum("z = 1" in t for t in contour_titles) == 3
    assert any("(-2.0, 3.0)" in t for t in contour_titles)
    # SAC paths are black; MEDE draws one colour per z
    assert {line.get_color() for line in fig.axes[0].get_lines() if len(line.get_xdata()) > 1} == {"black"}
    mede_colours = {line.get_color() for line in fig.axes[1].get_lines() if len(line.get_xdata()) > 1}
    assert len(mede_colours) == 3

    # every row draws Q_soft, Q_z and exactly their difference S_z
    assert len(drawn) == 9
    for q_soft, q_z, s_z in zip(drawn[0::3], drawn[1::3], drawn[2::3]):
        np.testing.assert_allclose(s_z, q_soft - q_z, atol=1e-6)
        assert not np.allclose(q_soft, q_z)
    _, sac_q, _ = plot.load_sac(sac_path)
    _, mede_q, _ = plot.load_mede(mede_path)
    actions = torch.rand(5, 2) * 2 - 1
    direct = mede_agent.qf(mede.policy_input(torch.tensor([[[1.0, 1.0]]]).expand(3 if separate else 1, 5, 2),
                                             torch.full((3 if separate else 1, 5), 1), 3, separate),
                           actions.expand(3 if separate else 1, 5, 2)).min(0).values[1 if separate else 0]
    np.testing.assert_allclose(mede_q((1.0, 1.0), 1, actions), direct.detach().numpy(), atol=1e-5)
    assert sac_q((1.0, 1.0), actions).shape == (5,)


def test_figure1_rejects_a_model_of_the_wrong_script(tmp_path):
    sac_path, mede_path, _ = tiny_models(tmp_path)
    with pytest.raises(plot.PlotError, match="written by sac_continuous.py, not mede_continuous.py"):
        plot.main(["fig1", "--sac", sac_path, "--mede", sac_path])
    with pytest.raises(plot.PlotError, match="--z must be in"):
        plot.main(["fig1", "--sac", sac_path, "--mede", mede_path, "--z", "3"])


def test_command_line_error_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "plot.py"), "table1", str(tmp_path / "missing.json")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("plot.py: error:") and len(out.stderr.strip().splitlines()) == 1


def ant_eval(path, algorithm, seed, headings):
    """An eval.json of M. Ant with straight paths along the given headings (degrees)."""
    per_z = []
    for z, heading in enumerate(headings):
        direction = np.array([math.cos(math.radians(heading)), math.sin(math.radians(heading))])
        path_points = [(direction * t).tolist() for t in np.linspace(0, 5, 11)]
        per_z.append({"z": z, "returns": [1.0], "mean": 1.0, "std": 0.0, "displacements": [(direction * 5).tolist()],
                      "headings": [heading], "mean_heading": heading, "path": path_points})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"algorithm": algorithm, "env_id": "MultiDirectionAnt-v0", "seed": seed,
                                "global_step": 400, "num_z": len(headings), "avg": 1.0, "max": 1.0, "per_z": per_z,
                                **evaluation.direction_diversity(headings)}))
    return str(path.parent)


def test_ant_directions_one_panel_per_run_sac_in_black_and_an_arrow_per_z(tmp_path, figures):
    runs = [ant_eval(tmp_path / f"mede{seed}" / "eval.json", "MEDE", seed, [0.0, 90.0, 180.0, -90.0]) for seed in (1, 2)]
    sac = ant_eval(tmp_path / "sac1" / "eval.json", "SAC", 1, [45.0])
    out = plot.main(["ant", "--runs", *runs, "--sac", sac, "--out", str(tmp_path / "ant.png")])
    assert os.path.exists(out)
    (fig,) = figures
    assert len(fig.axes) == 2 and "4 of 4 quadrants" in fig.axes[0].get_title()
    lines = [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) > 1]
    assert [line.get_color() for line in lines][0] == "black" and len({line.get_color() for line in lines}) == 5
    assert any(line.get_label().endswith("90°") for line in lines)
    arrows = [child for child in fig.axes[0].get_children() if type(child).__name__ == "Annotation"]
    assert len(arrows) == 5  # SAC and every z
    end = arrows[2].xy  # z = 1: heading 90°, mean displacement 5
    assert end == pytest.approx((0.0, 5.0), abs=1e-9)


def test_ant_directions_reject_an_eval_without_paths(tmp_path):
    write_eval(tmp_path / "h/eval.json", "MEDE", 4, 1.0, 1.0, 1)
    with pytest.raises(plot.PlotError, match="has no torso paths"):
        plot.main(["ant", "--runs", str(tmp_path / "h"), "--out", str(tmp_path / "x.png")])


def test_ant_training_headings_come_from_the_buffers_torso_velocities(tmp_path, figures):
    run_dir = tmp_path / "ant_run"
    writer = SummaryWriter(str(run_dir))
    for step in range(0, 800, 40):
        for k in range(2):
            writer.add_scalar(f"charts/episodic_return_z{k}", float(step + k), step)
        writer.add_scalar("measure/accuracy_z_given_sa", 0.9, step)
        writer.add_scalar("measure/accuracy_z_given_s", 0.8, step)
    writer.close()
    obs = torch.zeros(400, 2, 27)
    obs[:, 0, 13:15] = torch.tensor([0.0, 2.0])  # z = 0 runs north (90°) at 2 m/s
    obs[:, 1, 13:15] = torch.tensor([-1.0, 0.0])  # z = 1 runs west (180°)
    torch.save({"buffer": {"obs": obs, "pos": 400, "size": 400}}, run_dir / "checkpoint.pt")
    steps, headings, speeds = plot.buffer_headings(str(run_dir / "checkpoint.pt"), 100)
    assert list(steps) == [100, 200, 300, 400]
    np.testing.assert_allclose(headings, [[90.0, 180.0]] * 4)
    np.testing.assert_allclose(speeds, [[2.0, 1.0]] * 4)
    out = plot.main(["ant-training", "--runs", str(run_dir), "--window", "100", "--smooth", "2",
                     "--out", str(tmp_path / "t.png")])
    assert os.path.exists(out)
    (fig,) = figures
    assert len(fig.axes) == 3 and "held-out" in fig.axes[1].get_title()
    torch.save({"buffer": {"obs": obs, "pos": 10, "size": 400}}, run_dir / "checkpoint.pt")
    with pytest.raises(plot.PlotError, match="wrapped"):
        plot.buffer_headings(str(run_dir / "checkpoint.pt"), 100)
