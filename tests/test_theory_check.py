"""theory_check.py: the paper's theorems on tabular MDPs, with fixed seeds."""

import numpy as np
import pytest

import theory_check as tc


@pytest.fixture(scope="module")
def mdps():
    rng = np.random.default_rng(123)
    return [tc.random_mdp(rng, 4, 6, 0.9) for _ in range(5)]


def test_theorem1_holds_to_floating_point_precision_for_any_policies_and_their_posterior(mdps):
    rng = np.random.default_rng(0)
    for mdp in mdps:
        for num_z in (2, 3):
            pis = tc.random_policies(rng, num_z, 4, 6)
            assert tc.theorem1_error(pis, tc.posteriors(mdp, pis)[2]) < 1e-12


def test_theorem1_fails_for_a_discriminator_that_is_not_the_posterior(mdps):
    rng = np.random.default_rng(1)
    pis = tc.random_policies(rng, 2, 4, 6)
    log_q = tc.posteriors(mdps[0], pis)[2] + 0.1 * rng.normal(size=pis.shape)
    assert tc.theorem1_error(pis, log_q - tc.logsumexp(log_q, 0)[None]) > 1e-2


def test_theorems_2_and_3_hold_at_interior_fixed_points(mdps):
    rng = np.random.default_rng(2)
    for mdp in mdps:
        Q_soft, _, pi_soft = tc.soft_value_iteration(mdp, np.zeros_like(mdp.r))
        for pis in (np.stack([pi_soft] * 3), tc.visitation_preserving_split(mdp, pi_soft, rng)):
            fp = tc.at_policies(mdp, pis)
            assert fp.residual < 1e-10 and fp.converged  # a fixed point of Eqs. 6-7 with the exact posterior
            assert tc.theorem2_error(mdp, fp, Q_soft) < 1e-9
            assert tc.theorem3_error(mdp, fp) < 1e-9
        assert np.mean(tc.symmetric_kl(*pis)) > 1e-4  # the split is diverse


def test_theorems_2_and_3_need_the_discount_of_eqs_9_and_11_and_2_holds_up_to_a_constant_with_a_uniform_prior(mdps):
    mdp = mdps[0]
    Q_soft, _, pi_soft = tc.soft_value_iteration(mdp, np.zeros_like(mdp.r))
    Q_uniform, _, _ = tc.soft_value_iteration(mdp, np.full_like(mdp.r, -np.log(6)))
    fp = tc.at_policies(mdp, np.stack([pi_soft] * 2))
    assert tc.theorem2_error(mdp, fp, Q_uniform) == pytest.approx(0.9 * np.log(6) / 0.1, abs=1e-9)
    np.testing.assert_allclose(Q_soft - Q_uniform, 0.9 * np.log(6) / 0.1, atol=1e-9)
    assert tc.S_growth_without_gamma(mdp, fp, 0) > 0.5  # -log p(z|s') = log 2 each iteration: no fixed point
    assert tc.S_growth_without_gamma(mdp, fp, 0) == pytest.approx(np.log(2), rel=0.05)
    assert tc.M_growth_without_gamma(mdp, fp, 0) == pytest.approx(np.log(2), rel=1e-6)  # appendix A.3's last line too


def test_the_iteration_reaches_diverse_fixed_points_on_the_boundary_where_theorems_2_and_3_fail(mdps):
    mdp = mdps[1]
    Q_soft, _, _ = tc.soft_value_iteration(mdp, np.zeros_like(mdp.r))
    with np.errstate(divide="ignore", invalid="ignore"):
        fp = tc.mede_fixed_point(mdp, tc.random_policies(np.random.default_rng(3), 2, 4, 6))
        assert fp.converged and fp.pis.min() < 1e-50  # some π_z(a|s) is (numerically) zero
        assert np.mean(tc.symmetric_kl(*fp.pis)) > 1.0
        assert tc.theorem1_error(fp.pis, fp.log_p_z_sa) < 1e-10  # Theorem 1 still holds
        assert tc.theorem2_error(mdp, fp, Q_soft) > 1e-2 and tc.theorem3_error(mdp, fp) > 1e-2


def test_the_bandit_against_its_closed_form():
    result = tc.check_bandit([0.0, 1.0, -0.5, 0.3], num_z=2, gamma=0.9)
    for key in ("V_soft", "pi_soft", "split_is_fixed_point", "Q_z", "S_z", "thm2"):
        assert result[key] < 1e-9, key
    assert result["split_kl"] > 0.5


def test_the_script_prints_the_table_and_says_which_theorems_hold(capsys):
    assert tc.main(["--mdps", "2", "--starts", "1"]) == 0
    out = capsys.readouterr().out
    assert "| Theorem 1 | any policies" in out and "| holds |" in out and "| fails |" in out


def test_the_objective_summed_over_z_is_the_mixtures_max_ent_return_minus_the_uncertainty_of_z_given_s(mdps):
    rng = np.random.default_rng(4)
    for mdp in mdps:
        assert tc.objective_identity_error(mdp, tc.random_policies(rng, 3, 4, 6)) < 1e-10


def test_S_z_goes_to_0_as_p_z_given_s_goes_to_1_only_where_every_later_state_is_that_z_alone():
    gamma = 0.9
    with np.errstate(divide="ignore", invalid="ignore"):
        rows = tc.S_as_posterior_goes_to_one(gamma)
    # every state, through the prior p(z) = (1 - ε, ε): S*_z = -γ log(1 - ε) / (1 - γ) -> 0, and Theorem 2 holds
    for row in rows["everywhere"]:
        assert row["residual"] < 1e-10 and row["p_z_s"] == pytest.approx(1 - row["knob"], abs=1e-12)
        assert row["S"] == pytest.approx(-gamma * np.log(1 - row["knob"]) / (1 - gamma), abs=1e-9)
        assert row["Q_soft_minus_Q_z"] == pytest.approx(row["S"], abs=1e-9)
        assert row["S_other_z"] == pytest.approx(-gamma * np.log(row["knob"]) / (1 - gamma), abs=1e-8)  # -> infinity
    assert rows["everywhere"][-1]["S"] < 1e-6
    # a room that z = 0 has to itself and does not leave: p(z|room) -> 1 and S*_z there -> 0, slowly
    closed = rows["closed room"]
    assert all(row["converged"] for row in closed)
    p, S = [row["p_z_s"] for row in closed], [row["S"] for row in closed]
    assert p == sorted(p) and p[0] < 0.7 and p[-1] > 1 - 2e-5
    assert S == sorted(S, reverse=True) and S[0] > 5 and S[-1] < 2e-3
    assert all(abs(row["S"] - row["Q_soft_minus_Q_z"]) < 1e-8 for row in closed)
    # a room that z = 0 has to itself, whose actions lead to a state both z visit: p(z|room) -> 1, S*_z stays
    # γ log 2 / (1 - γ), the surprise -log p(z|s') = log 2 of the shared state, discounted, forever
    shared = rows["room, then shared"]
    assert shared[-1]["p_z_s"] > 1 - 2e-6
    for row in shared:
        assert row["converged"] and row["p_z_s_shared"] == pytest.approx(0.5, abs=1e-12)
        assert row["S"] == pytest.approx(gamma * np.log(2) / (1 - gamma), abs=1e-8)
        assert row["Q_soft_minus_Q_z"] == pytest.approx(gamma * np.log(2) / (1 - gamma), abs=1e-8)


def test_S_z_is_at_least_the_discounted_surprise_of_z_at_the_next_state(mdps):
    with np.errstate(divide="ignore", invalid="ignore"):
        for leak in (1e-2, 1e-4):
            for shared_after in (False, True):
                mdp = tc.two_rooms(leak, shared_after, 0.9)
                pis = np.full((2, len(mdp.r), 2), 0.5)
                pis[:, 0] = [[0.9, 0.1], [0.1, 0.9]]
                fp = tc.mede_fixed_point(mdp, pis)
                assert min(tc.S_lower_bound_gap(mdp, fp, z) for z in range(2)) >= -1e-9
        mdp = mdps[2]
        fp = tc.mede_fixed_point(mdp, tc.random_policies(np.random.default_rng(6), 2, 4, 6))
        assert fp.converged and min(tc.S_lower_bound_gap(mdp, fp, z) for z in range(2)) >= -1e-9
        for z in range(2):  # S_of solves Eq. 9 itself, log E_π/z exp S and all (not Eq. 11's E_π/z S)
            S = tc.S_of(mdp, fp, z)
            log_mean_exp = np.log(np.sum(fp.mixture * np.exp(S), 1))
            assert np.max(np.abs(log_mean_exp - np.sum(fp.mixture * S, 1))) > 1e-3  # the two differ here
            np.testing.assert_allclose(S, 0.9 * mdp.P @ (-np.log(fp.p_z_s[z]) + log_mean_exp), atol=1e-9)


def test_diverse_interior_fixed_points_need_two_actions_not_more_actions_than_states():
    rng = np.random.default_rng(5)
    for actions in (2, 3, 4):  # |A| <= |S| = 4: no per-state split
        mdp = tc.random_mdp(rng, 4, actions, 0.9)
        Q_soft, _, pi_soft = tc.soft_value_iteration(mdp, np.zeros_like(mdp.r))
        with pytest.raises(ValueError):
            tc.visitation_preserving_split(mdp, pi_soft, rng)
        pis = tc.visitation_preserving_split(mdp, pi_soft, rng, per_state=False)
        fp = tc.at_policies(mdp, pis)
        assert fp.residual < 1e-10 and np.mean(tc.symmetric_kl(*pis)) > 1e-4
        np.testing.assert_allclose(fp.p_z_s, 0.5, atol=1e-12)  # the state does not tell z apart
        assert tc.theorem2_error(mdp, fp, Q_soft) < 1e-9 and tc.theorem3_error(mdp, fp) < 1e-9
        # what forces equal visitations at interior fixed points: the differences of transition rows span
        # the |S| - 1 dimensions orthogonal to the constants
        assert np.linalg.matrix_rank((mdp.P[:, 1:] - mdp.P[:, :1]).reshape(-1, 4)) == 3
