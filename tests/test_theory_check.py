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


def test_theorem2_needs_the_discount_of_eq9_and_holds_up_to_a_constant_with_a_uniform_prior(mdps):
    mdp = mdps[0]
    Q_soft, _, pi_soft = tc.soft_value_iteration(mdp, np.zeros_like(mdp.r))
    Q_uniform, _, _ = tc.soft_value_iteration(mdp, np.full_like(mdp.r, -np.log(6)))
    fp = tc.at_policies(mdp, np.stack([pi_soft] * 2))
    assert tc.theorem2_error(mdp, fp, Q_uniform) == pytest.approx(0.9 * np.log(6) / 0.1, abs=1e-9)
    np.testing.assert_allclose(Q_soft - Q_uniform, 0.9 * np.log(6) / 0.1, atol=1e-9)
    assert tc.S_growth_without_gamma(mdp, fp, 0) > 0.5  # -log p(z|s') = log 2 each iteration: no fixed point
    assert tc.S_growth_without_gamma(mdp, fp, 0) == pytest.approx(np.log(2), rel=0.05)


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
