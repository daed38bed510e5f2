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
import plot_runs
import plot_studies
from run_utils import files
from run_utils.cli import UsageError
import sac_continuous as sac

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures plot.py saves (still written to disk), kept open for inspection."""
    saved, real_save, real_close = [], plot_runs.save, plt.close

    def save_and_keep(fig, out):
        saved.append(fig)
        return real_save(fig, out)

    monkeypatch.setattr(plot_runs, "save", save_and_keep)
    monkeypatch.setattr(plt, "close", lambda fig=None: None)
    yield saved
    real_close("all")


HELD_OUT_GAP, PROBE_GAP = 0.25, 0.4


def fake_run(root, name, num_z, values_sa, values_s, steps, seed=1, exp_name="mede_continuous", measured=True,
             env_id="Hopper-v4", **config):
    run_dir = root / name
    writer = SummaryWriter(str(run_dir))
    for step, sa, s in zip(steps, values_sa, values_s):
        writer.add_scalar("charts/log_q_z_given_sa", sa, step)
        writer.add_scalar("charts/log_q_z_given_s", s, step)
        if measured:
            writer.add_scalar("measure/log_q_z_given_sa", sa - HELD_OUT_GAP, step)  # held out: lower than replay
            writer.add_scalar("measure/log_q_z_given_s", s - HELD_OUT_GAP, step)
            writer.add_scalar("measure/probe_log_q_z_given_sa", sa - PROBE_GAP, step)  # the probe: lower still
            writer.add_scalar("measure/probe_log_q_z_given_s", s - PROBE_GAP, step)
    writer.close()
    (run_dir / "eval.json").write_text(json.dumps({
        "algorithm": "MEDE", "script": exp_name, "exp_name": exp_name, "env_id": env_id, "seed": seed,
        "num_z": num_z, "global_step": steps[-1], "avg": 0.0, "max": 0.0, "per_z": [],
        "config": {"measure_every": 5000, "env_id": env_id, "seed": seed, **config}}))
    return str(run_dir)


@pytest.mark.parametrize("measure, shift", [("replay", 0.0), ("held-out", -HELD_OUT_GAP), ("probe", -PROBE_GAP)])
def test_figure2_mean_and_std_over_seeds_with_chance_level(tmp_path, figures, measure, shift):
    steps = [100, 200, 300, 400]
    for i in range(2):  # found by the glob below
        fake_run(tmp_path, f"mede{i}", 4, [-1.0 + i, -0.5 + i, -0.2 + i, 0.0 + i], [-1.2] * 4, steps, seed=i)
    diayn_runs = [fake_run(tmp_path, "diayn0", 4, [-1.4] * 4, [-1.3] * 4, steps, exp_name="diayn_continuous")]
    matched = [fake_run(tmp_path, "diayn_matched0", 4, [-1.3] * 4, [-1.3] * 4, steps, exp_name="diayn_matched")]
    out = plot.main(["fig2", "--runs", str(tmp_path / "mede*"), "--runs", *diayn_runs, "--runs", *matched,
                     "--label", "MEDE", "--label", "DIAYN", "--label", "DIAYN, matched weight",
                     "--measure", measure, "--points", "4", "--out", str(tmp_path / "fig2.png")])
    assert out.endswith("fig2.png") and os.path.getsize(out) > 10_000
    (fig,) = figures
    ax_sa, ax_s = fig.axes
    assert "s, a" in ax_sa.get_title() and "s)" in ax_s.get_title()
    assert ax_sa.get_xlabel() == "environment steps"
    lines = {line.get_label(): line for line in ax_sa.get_lines()}
    mede_line = lines["MEDE (2 seeds, 400 steps)"]
    # mean over the two seeds: [-0.5, 0.0, 0.3, 0.5] at the steps, linearly interpolated between
    np.testing.assert_allclose(np.interp(steps, *mede_line.get_data()), np.add([-0.5, 0.0, 0.3, 0.5], shift),
                               atol=1e-6)
    assert "DIAYN (1 seed, 400 steps)" in lines and "DIAYN, matched weight (1 seed, 400 steps)" in lines
    assert {"replay": "replay batches", "held-out": "held-out transitions", "probe": "the probe"}[measure] in \
        ax_sa.get_ylabel()
    chance = [line for label, line in lines.items() if label.startswith("chance")]
    assert chance and chance[0].get_ydata()[0] == pytest.approx(math.log(1 / 4))
    # the std band of MEDE is 0.5 wide on each side (the two seeds differ by exactly 1)
    band = ax_sa.collections[0].get_paths()[0].vertices
    assert band[:, 1].max() - band[:, 1].min() == pytest.approx((0.5 + 0.5) - (-0.5 - 0.5), abs=1e-6)
    assert any(label.startswith("chance") for label in (line.get_label() for line in ax_s.get_lines()))


def test_figure2_table_gives_every_seed_and_reads_the_papers_three_words_against_the_first_series(tmp_path):
    """Issue 38: the verdicts ("immediately", "500 iterations", "more robust to seed") come from the runs,
    not from reading curves by eye."""
    # MEDE ahead at 200 and 300, caught up at 400; at 100 its lead (0.05) is within the standard error (0.15);
    # never ahead on s. Its lead at 50, the step of the first update (--learning-starts 50), does not count.
    steps = [50, 100, 200, 300, 400]
    for seed, early, late in ((1, -2.1, -1.0), (2, -1.8, -0.8)):
        fake_run(tmp_path, f"mede{seed}", 4, [-1.0, early, -1.0, -1.0, late], [-1.2] * 5, steps, seed=seed,
                 learning_starts=50)
    diayn = fake_run(tmp_path, "diayn1", 4, [-2.0, -2.0, -1.5, -1.2, -0.5], [-1.0] * 5, steps,
                     exp_name="diayn_continuous", learning_starts=50)
    table = tmp_path / "fig2.md"
    plot.main(["fig2", "--runs", str(tmp_path / "mede*"), "--runs", diayn, "--label", "MEDE", "--label", "DIAYN",
               "--points", "4", "--out", str(tmp_path / "fig2.png"), "--table", str(table)])
    text = table.read_text()
    gap = HELD_OUT_GAP
    assert f"| 200 | {-1.0 - gap:.3f} ± 0.000 | {-1.5 - gap:.3f} ± 0.000 |" in text
    assert f"| 400 | {-0.9 - gap:.3f} ± 0.100 | {-0.5 - gap:.3f} ± 0.000 |" in text  # the mean and std of 2 seeds
    assert f"at 400: s1 {-1.0 - gap:.3f}, s2 {-0.8 - gap:.3f}" in text
    assert r"| DIAYN | log q(z\|s,a) | 200 | 2 of 4 steps | 400 | -0.400 at 400 | 0.100 / 0.000 |" in text
    assert r"| DIAYN | log q(z\|s) | never | 0 of 4 steps | – (never behind) | -0.200 at 400 | 0.000 / 0.000 |" in text
    assert "Hopper-v4, |Z| = 4, held-out measure" in text and "chance -1.386" in text


def test_figure2_rejects_runs_with_different_num_z(tmp_path):
    a = fake_run(tmp_path, "a", 4, [0, 0], [0, 0], [1, 2])
    b = fake_run(tmp_path, "b", 3, [0, 0], [0, 0], [1, 2])
    with pytest.raises(UsageError, match="different"):
        plot.main(["fig2", "--runs", a, "--runs", b, "--out", str(tmp_path / "x.png")])


def test_figure2_labels_series_by_experiment_counts_distinct_seeds_and_says_why_a_measure_is_missing(
        tmp_path, figures, capsys):
    steps, runs = [100, 200], tmp_path / "runs"
    fake_run(runs, "m1", 4, [-1.0, -1.0], [-1.0, -1.0], steps, seed=1)
    fake_run(runs, "m1_again", 4, [-1.0, -1.0], [-1.0, -1.0], steps, seed=1)  # the same seed twice
    fake_run(runs, "mine", 4, [-0.5, -0.5], [-0.5, -0.5], steps, seed=1, exp_name="my_mede")
    plot.main(["fig2", "--runs", str(runs / "*"), "--points", "2", "--out", str(tmp_path / "f.png")])
    labels = {line.get_label() for line in figures[0].axes[0].get_lines()}
    assert "mede_continuous (1 seed; seed 1 twice, 200 steps)" in labels and "my_mede (1 seed, 200 steps)" in labels
    assert "seed 1 twice" in capsys.readouterr().err
    with pytest.raises(UsageError, match="several experiments"):
        plot.main(["fig2", "--runs", str(runs / "*"), "--label", "MEDE", "--out", str(tmp_path / "f.png")])
    short = fake_run(tmp_path / "short", "s", 4, [-1.0], [-1.0], [300], measured=False)
    with pytest.raises(UsageError, match="fewer than --measure-every 5000"):
        plot.main(["fig2", "--runs", short, "--out", str(tmp_path / "f.png")])


def test_figure2_refuses_several_environments_and_splits_what_table1_keeps_apart(tmp_path, figures):
    """Issue 37, defect 7: one --runs of Hopper, MultiGoal and a custom env made one curve; runs of one env
    that differ in a flag or in their budget were pooled too. The figure names the env, the measure, the
    budget and the seeds."""
    runs = tmp_path / "runs"
    for env_id in ("Hopper-v4", "MultiGoal-v0", "my_envs:MyTask-v0"):
        fake_run(runs, f"{env_id.split(':')[-1]}__mede_continuous__1", 4, [-1.0, -1.0], [-1.0, -1.0], [100, 200],
                 env_id=env_id)
    with pytest.raises(UsageError, match=r"3 environments \(Hopper-v4, MultiGoal-v0, my_envs:MyTask-v0\)"):
        plot.main(["fig2", "--runs", str(runs / "*__mede_continuous__*"), "--out", str(tmp_path / "f.png")])
    hopper = tmp_path / "hopper"
    for seed in (1, 2):
        fake_run(hopper, f"a{seed}", 4, [-1.0, -1.0], [-1.0, -1.0], [100, 200], seed=seed, alpha=0.3)
    fake_run(hopper, "b1", 4, [-0.5, -0.5], [-0.5, -0.5], [100, 200], alpha=1.0)
    fake_run(hopper, "c1", 4, [-0.2] * 3, [-0.2] * 3, [100, 200, 300], alpha=0.3)  # a longer budget
    plot.main(["fig2", "--runs", str(hopper / "*"), "--points", "2", "--out", str(tmp_path / "f.png")])
    (fig,) = figures
    labels = {line.get_label() for line in fig.axes[0].get_lines()}
    assert {"mede_continuous, alpha=0.3 (2 seeds, 200 steps)", "mede_continuous, alpha=1.0 (1 seed, 200 steps)",
            "mede_continuous, alpha=0.3 (1 seed, 300 steps)"} <= labels
    title = fig.texts[0].get_text()
    assert "Hopper-v4" in title and "held-out measure" in title and "held-out measure" in fig.axes[0].get_ylabel()
    assert any(label.startswith("chance") for label in labels)
    with pytest.raises(UsageError, match="several experiments or settings"):
        plot.main(["fig2", "--runs", str(hopper / "*"), "--label", "MEDE", "--out", str(tmp_path / "f.png")])


def test_figure2_names_the_measure_it_draws(tmp_path, figures):
    run = fake_run(tmp_path, "m", 4, [-1.0, -1.0], [-1.0, -1.0], [100, 200])
    for measure, name in (("held-out", "held-out measure"), ("probe", "the probe"), ("replay", "replay measure")):
        plot.main(["fig2", "--runs", run, "--measure", measure, "--points", "2", "--out", str(tmp_path / "f.png")])
        fig = figures[-1]
        assert name in fig.texts[0].get_text() and name in fig.axes[0].get_ylabel() and name in fig.axes[1].get_ylabel()


def write_eval(path, algorithm, num_z, avg, best, seed, separate=False, **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"algorithm": algorithm, "env_id": "Hopper-v4", "num_z": num_z, "seed": seed,
                                "global_step": 1000, "avg": avg, "max": best, "separate_networks": separate,
                                "per_z": [{"mean": avg}], **extra}))


def test_table1_mean_and_std_over_seeds(tmp_path):
    """eval.json files without their config (written before 2026-12) group as they did."""
    write_eval(tmp_path / "m1/eval.json", "MEDE", 4, 100.0, 150.0, 1)
    write_eval(tmp_path / "m2/eval.json", "MEDE", 4, 200.0, 250.0, 2)
    write_eval(tmp_path / "s1/eval.json", "SAC", 1, 300.0, 300.0, 1)
    write_eval(tmp_path / "d1/eval.json", "DIAYN", 4, 50.0, 60.0, 1, disc_coef=0.3)  # a row of its own
    write_eval(tmp_path / "d2/eval.json", "DIAYN", 4, 70.0, 80.0, 1, disc_coef=1.0)
    out = str(tmp_path / "docs" / "table1")
    plot.main(["table1", str(tmp_path / "*/eval.json"), "--out", out])
    markdown = open(f"{out}.md").read()
    assert "| Hopper-v4 | MEDE | 4 | 2 seeds | 1000 | 150.0 ± 50.0 | 200.0 ± 50.0 |" in markdown
    assert "| Hopper-v4 | SAC | 1 | 1 seed | 1000 | 300.0 ± 0.0 |  |" in markdown
    assert "| Hopper-v4 | DIAYN β = 0.3 | 4 | 1 seed | 1000 | 50.0 ± 0.0 | 60.0 ± 0.0 |" in markdown
    assert "| Hopper-v4 | DIAYN | 4 | 1 seed | 1000 | 70.0 ± 0.0 | 80.0 ± 0.0 |" in markdown
    rows = open(f"{out}.csv").read().splitlines()
    assert rows[0].startswith("env,algorithm,|Z|,seeds") and len(rows) == 5


def test_table1_keeps_apart_runs_that_differ_only_in_alpha_and_copies_of_a_script(tmp_path, capsys):
    config = {"env_id": "Hopper-v4", "num_z": 4, "alpha": 0.3, "hidden_dim": 300, "seed": 1, "run_dir": "x"}
    write_eval(tmp_path / "a/eval.json", "MEDE", 4, 100.0, 150.0, 1, config=config, script="mede_continuous",
               exp_name="mede_continuous")
    write_eval(tmp_path / "b/eval.json", "MEDE", 4, 200.0, 250.0, 1, config={**config, "alpha": 1.0, "run_dir": "y"},
               script="mede_continuous", exp_name="mede_continuous")
    write_eval(tmp_path / "c/eval.json", "MEDE", 4, 300.0, 350.0, 1, config=config, script="my_mede",
               exp_name="my_mede")
    write_eval(tmp_path / "d/eval.json", "MEDE", 4, 400.0, 450.0, 1, config=config, script="my_mede",
               exp_name="my_mede")  # seed 1 again
    out = str(tmp_path / "t")
    plot.main(["table1", str(tmp_path / "*/eval.json"), "--out", out])
    markdown = open(f"{out}.md").read()
    assert "| MEDE, alpha=0.3 | 4 | 1 seed | 1000 | 100.0 ± 0.0 |" in markdown
    assert "| MEDE, alpha=1.0 | 4 | 1 seed | 1000 | 200.0 ± 0.0 |" in markdown
    assert "| MEDE [my_mede], alpha=0.3 | 4 | 1 seed; seed 1 twice | 1000 | 350.0 ± 50.0 |" in markdown
    assert "seed 1 twice" in capsys.readouterr().err


def test_table1_pools_an_eval_without_settings_by_what_it_recorded_and_says_so(tmp_path, capsys):
    """A run evaluated before 2026-12 (no config, no script) and a later one of the same algorithm:
    one row, not one row per flag that only the later one records, and a note naming the old file."""
    write_eval(tmp_path / "old/eval.json", "SAC", 1, 100.0, 100.0, 1)
    write_eval(tmp_path / "new/eval.json", "SAC", 1, 300.0, 300.0, 2, script="sac_continuous",
               exp_name="sac_continuous", config={"env_id": "Hopper-v4", "alpha": 0.2, "hidden_dim": 128, "seed": 2})
    plot.main(["table1", str(tmp_path / "*/eval.json"), "--out", str(tmp_path / "t")])
    markdown = open(tmp_path / "t.md").read()
    assert "| Hopper-v4 | SAC | 1 | 2 seeds | 1000 | 200.0 ± 100.0 |  |" in markdown and markdown.count("| SAC") == 1
    assert "record no settings" in capsys.readouterr().err


def test_table1_takes_each_runs_latest_evaluation_whatever_the_order(tmp_path):
    write_eval(tmp_path / "r/eval.step1000.json", "MEDE", 4, 1.0, 1.0, 1)
    later = json.loads((tmp_path / "r/eval.step1000.json").read_text())
    (tmp_path / "r/eval.json").write_text(json.dumps({**later, "global_step": 2000, "avg": 2.0, "max": 2.0}))
    for order in (["eval.json", "eval.step1000.json"], ["eval.step1000.json", "eval.json"]):
        plot.main(["table1", *[str(tmp_path / "r" / name) for name in order], "--out", str(tmp_path / "t")])
        assert "| 2000 | 2.0 ± 0.0 |" in open(tmp_path / "t.md").read()


def test_table1_takes_each_runs_evaluation_at_the_step_asked_and_leaves_out_runs_without_one(tmp_path, capsys):
    """Issue 37, defect 9: SAC seed 1, extended to 1M, keeps its 300k evaluation as eval.step300000.json;
    --step 300000 compares it with SAC seed 2 at 300k, and leaves out a run evaluated at 1M only."""
    config = {"env_id": "MultiDirectionAnt-v0", "alpha": 0.2}
    sac = dict(script="sac_continuous", exp_name="sac_continuous", config=config)
    write_eval(tmp_path / "sac1/eval.step300000.json", "SAC", 1, 100.0, 100.0, 1, global_step=300000, **sac)
    write_eval(tmp_path / "sac1/eval.json", "SAC", 1, 900.0, 900.0, 1, global_step=1000000, **sac)
    write_eval(tmp_path / "sac2/eval.json", "SAC", 1, 300.0, 300.0, 2, global_step=300000, **sac)
    write_eval(tmp_path / "sac3/eval.json", "SAC", 1, 950.0, 950.0, 3, global_step=1000000, **sac)
    plot.main(["table1", str(tmp_path / "*/eval.json"), "--step", "300000", "--out", str(tmp_path / "t")])
    markdown = open(tmp_path / "t.md").read()
    assert "| SAC | 1 | 2 seeds | 300000 | 200.0 ± 100.0 |  |" in markdown and markdown.count("| SAC") == 1
    err = capsys.readouterr().err
    assert "left out" in err and "sac3" in err and "sac1" not in err
    plot.main(["table1", str(tmp_path / "*/eval.json"), "--out", str(tmp_path / "t")])  # each run's latest
    assert "| SAC | 1 | 2 seeds | 1000000 | 925.0 ± 25.0 |  |" in open(tmp_path / "t.md").read()
    with pytest.raises(UsageError, match="no run has an evaluation at step 5"):
        plot.main(["table1", str(tmp_path / "*/eval.json"), "--step", "5", "--out", str(tmp_path / "t")])


def test_table1_rejects_a_file_that_is_not_an_eval_json(tmp_path):
    bad = tmp_path / "eval.json"
    bad.write_text("{}")
    with pytest.raises(UsageError, match="not an eval.json"):
        plot.main(["table1", str(bad), "--out", str(tmp_path / "t")])


def save_model(module, agent_state, args, path, dims):
    files.atomic_save({"script": module.SCRIPT, "args": asdict(args), "dims": dims, "agent": agent_state}, path)


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
    monkeypatch.setattr(plt.Axes, "contourf", lambda ax, x, y, values, **kw: (
        drawn.append(values), real_contourf(ax, x, y, values, **kw))[1])
    out = plot.main(["fig1", "--sac", sac_path, "--mede", mede_path, "--z", "1",
                     "--episodes", "2", "--resolution", "9", "--states=0,0 1,1 -2,3",
                     "--out", str(tmp_path / "fig1")])
    assert out.endswith("fig1.png") and os.path.exists(out)
    (fig,) = figures
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "sac_continuous" and titles[1] == "mede_continuous, |Z| = 3"
    goal_names = {child.get_text() for child in fig.axes[0].get_children() if type(child).__name__ == "Annotation"}
    assert goal_names == {"E", "W", "N", "S"}
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
    sac_q, mede_q = (plot.q_function(*plot_runs.load_agent(path)[:2]) for path in (sac_path, mede_path))
    actions, members = torch.rand(5, 2) * 2 - 1, 3 if separate else 1
    z_input = torch.eye(3)[1].expand(1, 5, 3) if not separate else torch.zeros(members, 5, 0)  # separate: member 1
    x = torch.cat([torch.tensor([[[1.0, 1.0]]]).expand(members, 5, 2), z_input, actions.expand(members, 5, 2)], -1)
    direct = mede_agent.qf.net(x.repeat(2, 1, 1)).view(2, members, 5).min(0).values[1 if separate else 0]
    np.testing.assert_allclose(mede_q((1.0, 1.0), 1, actions), direct.detach().numpy(), atol=1e-5)
    assert sac_q((1.0, 1.0), 0, actions).shape == (5,)


def test_figure1_rejects_a_model_of_the_wrong_shape_and_names_the_real_cause(tmp_path):
    sac_path, mede_path, _ = tiny_models(tmp_path)
    with pytest.raises(UsageError, match="--mede needs a model of a script with"):
        plot.main(["fig1", "--sac", sac_path, "--mede", sac_path])
    with pytest.raises(UsageError, match="--sac needs a model of a one-policy script"):
        plot.main(["fig1", "--sac", mede_path, "--mede", mede_path])
    with pytest.raises(UsageError, match="--z must be in"):
        plot.main(["fig1", "--sac", sac_path, "--mede", mede_path, "--z", "3"])
    with pytest.raises(UsageError, match="no such file: .*nothing.pt"):
        plot.main(["goals", str(tmp_path / "nothing.pt")])


def run_directory(tmp_path, name, model_path, script, save_model=True, checkpoint=True):
    """A run directory as a run leaves it: eval.json, a checkpoint (here a stand-in: fig1 reads only
    what it names), and, from a run with --save-model, its model file {exp_name}.pt."""
    run_dir = tmp_path / name
    run_dir.mkdir()
    saved = torch.load(model_path, weights_only=False)
    (run_dir / "eval.json").write_text(json.dumps({
        "algorithm": "X", "script": script, "exp_name": script, "env_id": "MultiGoal-v0", "seed": 1,
        "num_z": saved["args"].get("num_z", 1), "global_step": 1000, "avg": 0.0, "max": 0.0, "per_z": [],
        "config": saved["args"]}))
    if checkpoint:
        torch.save({**saved, "global_step": 1000, "script_path": os.path.join(ROOT, f"{script}.py")},
                   run_dir / "checkpoint.pt")
    if save_model:
        os.replace(model_path, run_dir / f"{script}.pt")
    return str(run_dir)


def test_figure1_takes_run_directories_and_draws_mede_alone_without_sac(tmp_path, figures):
    """Issue 37, defect 10: the README's one-minute run (no SAC, no --save-model) could not be drawn: fig1
    required --sac and refused a run directory."""
    sac_path, mede_path, _ = tiny_models(tmp_path)
    mede_dir = run_directory(tmp_path, "mede_run", mede_path, "mede_continuous")
    plot.main(["fig1", "--mede", mede_dir, "--episodes", "1", "--resolution", "5", "--out", str(tmp_path / "f1")])
    (fig,) = figures
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "mede_continuous, |Z| = 3"
    contour_titles = [t for t in titles if "state" in t]
    assert len(contour_titles) == 3 and all("$Q_z$" in t for t in contour_titles)
    assert not any("soft" in t for t in titles) and "--sac" in fig.texts[0].get_text()
    sac_dir = run_directory(tmp_path, "sac_run", sac_path, "sac_continuous")
    plot.main(["fig1", "--sac", sac_dir, "--mede", mede_dir, "--episodes", "1", "--resolution", "5",
               "--out", str(tmp_path / "f2")])
    assert [ax.get_title() for ax in figures[-1].axes][:2] == ["sac_continuous", "mede_continuous, |Z| = 3"]
    # a run made without --save-model: one line, with the command that writes the model file
    _, mede_path, _ = tiny_models(tmp_path)
    no_model = run_directory(tmp_path, "no_model", mede_path, "mede_continuous", save_model=False)
    with pytest.raises(UsageError, match="without --save-model") as error:
        plot.main(["fig1", "--mede", no_model])
    assert f"mede_continuous.py --resume {no_model} --save-model" in str(error.value)
    assert "\n" not in str(error.value)
    no_checkpoint = run_directory(tmp_path, "no_checkpoint", mede_path, "mede_continuous", save_model=False,
                                  checkpoint=False)
    with pytest.raises(UsageError, match="without --save-model and kept no checkpoint.pt"):
        plot.main(["fig1", "--mede", no_checkpoint])


def test_command_line_error_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "plot.py"), "table1", str(tmp_path / "missing.json")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("plot.py: error:") and len(out.stderr.strip().splitlines()) == 1


def ant_eval(path, algorithm, seed, headings, length=5.0):
    """An eval.json of M. Ant with straight paths of `length` m along the given headings (degrees), 2.5 s long."""
    per_z = []
    for z, heading in enumerate(headings):
        direction = np.array([math.cos(math.radians(heading)), math.sin(math.radians(heading))])
        path_points = [(direction * t).tolist() for t in np.linspace(0, length, 11)]
        per_z.append({"z": z, "returns": [1.0], "mean": 1.0, "std": 0.0,
                      "displacements": [(direction * length).tolist()],
                      "headings": [heading], "mean_heading": heading, "path": path_points,
                      "speeds": [length / 2.5], "mean_speed": length / 2.5})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"algorithm": algorithm, "script": algorithm, "exp_name": algorithm,
                                "env_id": "MultiDirectionAnt-v0", "seed": seed, "global_step": 400,
                                "num_z": len(headings), "avg": 1.0, "max": 1.0, "per_z": per_z,
                                **evaluation.direction_diversity(headings, [length / 2.5] * len(headings))}))
    return str(path.parent)


def test_ant_directions_rows_are_seeds_columns_experiments_on_the_same_axes(tmp_path, figures):
    for seed in (1, 2):
        ant_eval(tmp_path / f"mede{seed}" / "eval.json", "MEDE", seed, [0.0, 90.0, 180.0, -90.0], length=5 * seed)
        ant_eval(tmp_path / f"sac{seed}" / "eval.json", "SAC", seed, [45.0])
    out = plot.main(["ant", str(tmp_path / "mede*"), str(tmp_path / "sac*"), "--out", str(tmp_path / "ant.png")])
    assert os.path.exists(out)
    (fig,) = figures
    assert len(fig.axes) == 4 and {ax.get_xlim() for ax in fig.axes} == {fig.axes[0].get_xlim()}  # the same axes
    assert fig.axes[0].get_title().startswith("MEDE, seed 1") and fig.axes[3].get_title().startswith("SAC, seed 2")
    assert "4 distinct running direction(s)" in fig.axes[0].get_title()
    lines = [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) > 1]
    assert len({line.get_color() for line in lines}) == 4 and any("z = 1: 90°, 2.00 m/s" == line.get_label()
                                                                   for line in lines)
    assert {line.get_color() for line in fig.axes[1].get_lines() if len(line.get_xdata()) > 1} == {"black"}
    arrows = [child for child in fig.axes[0].get_children() if type(child).__name__ == "Annotation"]
    assert len(arrows) == 4 and arrows[1].xy == pytest.approx((0.0, 5.0), abs=1e-9)  # z = 1: 90°, 5 m


def test_ant_directions_reject_an_eval_without_paths(tmp_path):
    write_eval(tmp_path / "h/eval.json", "MEDE", 4, 1.0, 1.0, 1)
    with pytest.raises(UsageError, match="has no torso paths"):
        plot.main(["ant", str(tmp_path / "h"), "--out", str(tmp_path / "x.png")])


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
    steps, headings, speeds = plot_studies.buffer_headings(str(run_dir / "checkpoint.pt"), 100)
    assert list(steps) == [100, 200, 300, 400]
    np.testing.assert_allclose(headings, [[90.0, 180.0]] * 4)
    np.testing.assert_allclose(speeds, [[2.0, 1.0]] * 4)
    out = plot.main(["ant-training", "--runs", str(run_dir), "--window", "100", "--smooth", "2",
                     "--out", str(tmp_path / "t.png")])
    assert os.path.exists(out)
    (fig,) = figures
    assert len(fig.axes) == 3 and "held-out" in fig.axes[1].get_title()
    torch.save({"buffer": {"obs": obs, "pos": 10, "size": 400}}, run_dir / "checkpoint.pt")
    with pytest.raises(UsageError, match="wrapped"):
        plot_studies.buffer_headings(str(run_dir / "checkpoint.pt"), 100)


# ------------------------------------------------- a researcher's own variant, end to end (issue 24)
def test_a_copied_script_is_trained_extended_plotted_under_its_own_label_and_rolled_out(tmp_path, figures):
    """cp mede_continuous.py my_mede.py, train it briefly, extend it, plot it next to MEDE in fig1,
    fig2, table1, goals and goals-over-training, and roll out its saved model as the README does."""
    import shutil
    shutil.copy(os.path.join(ROOT, "mede_continuous.py"), tmp_path / "my_mede.py")
    small = ["--env-id", "MultiGoal-v0", "--hidden-dim", "16", "--disc-hidden-dim", "16", "--learning-starts", "100",
             "--eval-episodes", "2", "--measure-every", "200", "--measure-steps", "60", "--save-model",
             "--checkpoint-every", "300"]

    def run(script, *flags):
        done = subprocess.run([sys.executable, script, *flags], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                  [ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])})
        assert done.returncode == 0, done.stderr
        return done

    first = run(str(tmp_path / "my_mede.py"), *small, "--total-timesteps", "300", "--run-dir", "runs/mine")
    assert first.stdout.startswith("my_mede.py: ") and "MultiGoal-v0, |Z| = 4, 300 steps" in first.stdout
    run(str(tmp_path / "my_mede.py"), "--resume", "runs/mine", "--total-timesteps", "600")  # extend it
    run(os.path.join(ROOT, "mede_continuous.py"), *small, "--total-timesteps", "600", "--run-dir", "runs/mede")
    run(os.path.join(ROOT, "sac_continuous.py"), "--env-id", "MultiGoal-v0", "--hidden-dim", "16",
        "--learning-starts", "100", "--eval-episodes", "2", "--save-model", "--total-timesteps", "300",
        "--run-dir", "runs/sac")
    mine = tmp_path / "runs" / "mine"
    assert torch.load(mine / "my_mede.pt", weights_only=False)["global_step"] == 600  # the latest model
    assert torch.load(mine / "my_mede.step300.pt", weights_only=False)["global_step"] == 300

    plot.main(["fig1", "--sac", str(tmp_path / "runs/sac/sac_continuous.pt"), "--mede", str(mine / "my_mede.pt"),
               "--episodes", "1", "--resolution", "5", "--out", str(tmp_path / "f1.png")])
    assert figures[-1].axes[1].get_title() == "my_mede, |Z| = 4"
    plot.main(["fig1", "--mede", str(mine), "--episodes", "1", "--resolution", "5", "--out", str(tmp_path / "f1")])
    assert figures[-1].axes[0].get_title() == "my_mede, |Z| = 4"  # a run directory, and no SAC
    plot.main(["fig2", "--runs", str(tmp_path / "runs/mede"), "--runs", str(mine), "--points", "3",
               "--out", str(tmp_path / "f2.png")])
    labels = {line.get_label() for line in figures[-1].axes[0].get_lines()}
    assert {"mede_continuous (1 seed, 600 steps)", "my_mede (1 seed, 600 steps)"} <= labels
    plot.main(["table1", str(tmp_path / "runs/*/eval*.json"), "--out", str(tmp_path / "t1")])
    table = open(tmp_path / "t1.md").read()
    assert "| MultiGoal-v0 | MEDE | 4 | 1 seed | 600 |" in table
    assert "| MultiGoal-v0 | MEDE [my_mede] | 4 | 1 seed | 600 |" in table
    assert plot.main(["goals", str(mine / "my_mede.pt"), "--episodes", "2"]) == "the table above"
    plot.main(["goals-over-training", str(mine), "--out", str(tmp_path / "g.png")])
    assert len(figures[-1].axes) == 4 and figures[-1].axes[0].get_ylabel() == "z = 0"

    # the README's rollout, with the copy's own load_model
    import importlib.util
    spec = importlib.util.spec_from_file_location("my_mede", tmp_path / "my_mede.py")
    my_mede = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(my_mede)
    import gymnasium as gym
    agent, args = my_mede.load_model(str(mine / "my_mede.pt"))
    env = gym.make(args.env_id)
    obs, _ = env.reset(seed=0)
    for _ in range(30):
        obs, reward, terminated, truncated, info = env.step(agent.policy(obs, z=2))


def test_goal_table_counts_distinct_goals_per_seed_and_the_seeds_with_every_goal(tmp_path):
    config = {"env_id": "MultiGoal-v0", "num_z": 4, "disc_grad": True}
    for seed, goals in zip((1, 2, 3), (4, 3, 4)):
        write_eval(tmp_path / f"m{seed}/eval.json", "MEDE", 4, 1.0, 1.0, seed, config=config, distinct_goals=goals,
                   goal_names=["E", "W", "N", "S"], script="mede_continuous", exp_name="mede_continuous")
    write_eval(tmp_path / "n1/eval.json", "MEDE", 4, 1.0, 1.0, 1, config={**config, "disc_grad": False},
               distinct_goals=2, goal_names=["E", "W", "N", "S"], script="mede_continuous", exp_name="mede_continuous")
    plot.main(["goal-table", str(tmp_path / "*/eval.json"), "--out", str(tmp_path / "g")])
    text = (tmp_path / "g.md").read_text()
    assert "| seed 1 | seed 2 | seed 3 | runs reaching every goal |" in text
    assert "| MEDE, disc_grad=True | 4 | 1000 | 4 of 4 | 3 of 4 | 4 of 4 | 2 of 3 |" in text
    assert "| MEDE, disc_grad=False | 4 | 1000 | 2 of 4 |  |  | 0 of 1 |" in text
    assert "held-out" not in text  # no run has a TensorBoard log: no measure table


def test_goal_table_counts_goals_against_the_environments_goals(tmp_path):
    """Issue 37, defect 8: a SAC run reaching its one goal read as '1 of 1' runs reaching every goal,
    beside MEDE's '0 of 1'. Goals count against the env's: SAC reaches 1 of 4."""
    names = ["E", "W", "N", "S"]
    for algorithm, num_z, goals in (("SAC", 1, 1), ("MEDE", 4, 3), ("DIAYN", 4, 4)):
        write_eval(tmp_path / f"{algorithm}/eval.json", algorithm, num_z, 1.0, 1.0, 1, distinct_goals=goals,
                   goal_names=names, script=f"{algorithm.lower()}_continuous",
                   exp_name=f"{algorithm.lower()}_continuous", env_id="MultiGoal-v0",
                   config={"env_id": "MultiGoal-v0", "num_z": num_z})
    plot.main(["goal-table", str(tmp_path / "*/eval.json"), "--out", str(tmp_path / "g")])
    text = (tmp_path / "g.md").read_text()
    assert "| MultiGoal-v0 | SAC | 1 | 1000 | 1 of 4 | 0 of 1 |" in text
    assert "| MEDE | 4 | 1000 | 3 of 4 | 0 of 1 |" in text
    assert "| DIAYN | 4 | 1000 | 4 of 4 | 1 of 1 |" in text


def test_goal_table_gives_the_held_out_measure_at_each_evaluations_step(tmp_path):
    """A run extended after its evaluation has measures past it: the table takes the one at the
    evaluation's step, and leaves a run without a log empty."""
    config = {"env_id": "MultiGoal-v0", "num_z": 4}
    for seed in (1, 2):
        write_eval(tmp_path / f"m{seed}/eval.json", "MEDE", 4, 1.0, 1.0, seed, config=config, distinct_goals=4,
                   goal_names=["E", "W", "N", "S"], script="mede_continuous", exp_name="mede_continuous")
    writer = SummaryWriter(str(tmp_path / "m1"))
    for step, value in ((500, -1.0), (1000, -0.25), (2000, -0.05)):  # evaluated at 1000, extended to 2000
        writer.add_scalar("measure/log_q_z_given_sa", value, step)
        writer.add_scalar("measure/log_q_z_given_s", value - 0.5, step)
    writer.close()
    plot.main(["goal-table", str(tmp_path / "*/eval.json"), "--out", str(tmp_path / "g")])
    text = (tmp_path / "g.md").read_text()
    assert "| MEDE | 4 | 1000 | log q(z\\|s,a) | -0.25 |  | -0.25 |" in text
    assert "| MEDE | 4 | 1000 | log q(z\\|s) | -0.75 |  | -0.75 |" in text
