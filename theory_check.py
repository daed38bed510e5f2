"""The MEDE paper's theorems (§3), checked numerically on small tabular MDPs.

    python theory_check.py                      # 20 random MDPs and the hand-solvable bandit, seconds
    python theory_check.py --mdps 100 --states 8 --actions 3 --num-z 3 --gamma 0.95

Everything is exact (float64 linear algebra and value iteration, no sampling, no networks):

- Q*_soft by soft value iteration, V(s) = log Σ_a π0(a|s) exp Q(s, a) (paper Eqs. 2-3). The paper
  defines Q*_soft with a uniform prior π0 (end of §2.1), while its proof of Theorem 2 backs up
  log Σ_a exp Q, i.e. no prior. The two differ by the constant γ log|A| / (1 - γ); both are shown.
- The MEDE optimum with the exact posterior: p(z|s) ∝ p(z) d_z(s) from each policy's discounted
  state visitation d_z (p(z) uniform), p(z|s, a) ∝ p(z|s) π(a|s, z) by Bayes, and every π_z the
  optimal policy of Eq. 5 given p(z|s, a): Q_z = r + γ E V_z(s'), V_z(s) = log Σ_a exp Q_z(s, a) p(z|s, a)
  and π_z = exp(Q_z - V_z) p(z|s, a) (Eqs. 6-7). Iterated from random policies to a joint fixed
  point: one soft Bellman backup of every Q_z and one policy step per iteration.
- Theorem 1 from its definitions, Theorem 2 with S_z from the recursion of Eq. 9, Theorem 3 with
  M_z from Eq. 11, each as the largest absolute error over states, actions, z and MDPs, and each
  also without the condition it needs, to show that the condition matters.
- §3.3's "S*_z -> 0 as p(z|s) -> 1": S*_z and Q*_soft - Q*_z as p(z|s) of one z is driven towards 1,
  at every state (through the prior p(z)), in a room that z has to itself and never leaves, and in
  a room that z has to itself but whose actions lead to a state that every z visits.
"""

import argparse
import dataclasses
import itertools
import sys

import numpy as np

TOLERANCE = 1e-12  # value iteration and the fixed point stop below this change


@dataclasses.dataclass
class MDP:
    P: np.ndarray  # [S, A, S]: P(s'|s, a)
    r: np.ndarray  # [S, A]: expected reward
    gamma: float
    rho0: np.ndarray  # [S]: start distribution


def random_mdp(rng: np.random.Generator, states: int, actions: int, gamma: float) -> MDP:
    """Transitions drawn from a sparse-ish Dirichlet (each action leads mostly to a few states, so
    that policies can separate by the states they visit), standard normal rewards."""
    return MDP(P=rng.dirichlet(np.full(states, 0.3), size=(states, actions)), r=rng.normal(size=(states, actions)),
               gamma=gamma, rho0=rng.dirichlet(np.ones(states)))


def bandit(rewards, gamma: float) -> MDP:
    """The hand-solvable MDP: one state that leads back to itself, whatever the action."""
    rewards = np.asarray(rewards, dtype=float)[None]
    return MDP(P=np.ones((1, rewards.shape[1], 1)), r=rewards, gamma=gamma, rho0=np.ones(1))


def logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.squeeze(top, axis) + np.log(np.sum(np.exp(x - top), axis=axis))


# ------------------------------------------------------------------------- soft values
def soft_value_iteration(mdp: MDP, log_prior: np.ndarray, Q: np.ndarray | None = None):
    """The optimal soft Q and V of `Q = r + γ E_s' V(s')`, `V(s) = log Σ_a exp(Q(s, a) + log_prior(s, a))`
    (Eqs. 2-3 with prior π0 = exp(log_prior); Eq. 6 with log_prior = log p(z|s, a)), and the optimal
    policy exp(Q + log_prior - V) (Eqs. 3, 7). `log_prior` may have leading axes (one problem per z);
    `Q` is where the iteration starts (default 0)."""
    Q = np.zeros(log_prior.shape) if Q is None else Q
    while True:
        V = logsumexp(Q + log_prior, axis=-1)
        Q_new = mdp.r + mdp.gamma * np.einsum("sat,...t->...sa", mdp.P, V)
        if np.max(np.abs(Q_new - Q)) < TOLERANCE:
            V = logsumexp(Q_new + log_prior, axis=-1)
            return Q_new, V, np.exp(Q_new + log_prior - V[..., None])
        Q = Q_new


def soft_policy_evaluation(mdp: MDP, pi: np.ndarray) -> np.ndarray:
    """The soft Q of a fixed policy, Q = r + γ E_s' E_a'~π [Q(s', a') - log π(a'|s')], solved exactly."""
    S, A = mdp.r.shape
    entropy_term = np.sum(pi * -np.log(pi), axis=1)  # [S]
    M = mdp.gamma * (mdp.P.reshape(S * A, S)[:, :, None] * pi[None]).reshape(S * A, S * A)
    b = mdp.r.reshape(-1) + mdp.gamma * mdp.P.reshape(S * A, S) @ entropy_term
    return np.linalg.solve(np.eye(S * A) - M, b).reshape(S, A)


def state_visitation(mdp: MDP, pi: np.ndarray) -> np.ndarray:
    """d(s) = (1 - γ) Σ_t γ^t Pr(s_t = s) under π from ρ0."""
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    return (1 - mdp.gamma) * np.linalg.solve(np.eye(len(P_pi)) - mdp.gamma * P_pi.T, mdp.rho0)


# ------------------------------------------------------------------------ the MEDE optimum
def posteriors(mdp: MDP, pis: np.ndarray, p_z: np.ndarray | None = None):
    """The exact posteriors of |Z| policies pis [Z, S, A] under the prior p_z (default uniform):
    p(z|s) ∝ p(z) d_z(s) [Z, S] from their discounted visitations, the mixture
    π/z(a|s) = Σ_z p(z|s) π_z(a|s) [S, A], and log p(z|s, a) = log p(z|s) + log π_z(a|s) - log π/z(a|s)
    [Z, S, A] (Bayes)."""
    d = np.stack([state_visitation(mdp, pi) for pi in pis])  # a uniform p(z) cancels
    if p_z is not None:
        d = np.asarray(p_z, dtype=float)[:, None] * d
    p_z_s = d / d.sum(0, keepdims=True)
    mixture = np.einsum("zs,zsa->sa", p_z_s, pis)
    log_p_z_sa = np.log(p_z_s)[:, :, None] + np.log(pis) - np.log(mixture)[None]
    return p_z_s, mixture, log_p_z_sa


@dataclasses.dataclass
class FixedPoint:
    pis: np.ndarray  # [Z, S, A]
    Q: np.ndarray  # [Z, S, A]: Q*_z of Eq. 6
    p_z_s: np.ndarray  # [Z, S]
    mixture: np.ndarray  # [S, A]
    log_p_z_sa: np.ndarray  # [Z, S, A]
    iterations: int
    residual: float  # max |π_new - π| at the last iteration
    converged: bool


def mede_fixed_point(mdp: MDP, pis: np.ndarray, max_iterations: int = 100000, tolerance: float = 1e-10,
                     p_z: np.ndarray | None = None) -> FixedPoint:
    """From the policies `pis`, iterate: the exact posterior of the policies, one soft Bellman backup
    of every Q_z under it (Eq. 6), every π_z <- exp(Q_z - V_z) p(z|s, a) (Eq. 7); until neither the
    policies nor the Q_z move by more than `tolerance`. Then Q_z is solved exactly for the final
    posterior, and `residual` is how far the final policies are from their best responses. `p_z`:
    the prior over z (default uniform)."""
    Q = np.zeros(pis.shape)
    for iteration in range(1, max_iterations + 1):
        _, _, log_p_z_sa = posteriors(mdp, pis, p_z)
        V = logsumexp(Q + log_p_z_sa, axis=-1)
        Q_new = mdp.r + mdp.gamma * np.einsum("sat,zt->zsa", mdp.P, V)
        new = np.exp(Q_new + log_p_z_sa - logsumexp(Q_new + log_p_z_sa, axis=-1)[..., None])
        change = max(np.max(np.abs(new - pis)), np.max(np.abs(Q_new - Q)))
        pis, Q = new, Q_new
        if change < tolerance:
            break
    return at_policies(mdp, pis, iteration, tolerance, p_z)


def at_policies(mdp: MDP, pis: np.ndarray, iterations: int = 0, tolerance: float = 1e-10,
                p_z: np.ndarray | None = None) -> FixedPoint:
    """The posterior of the policies `pis` (under the prior `p_z`, default uniform), every Q*_z solved
    exactly for it, and how far `pis` are from the best responses exp(Q*_z - V*_z) p(z|s, a): 0 at a
    fixed point."""
    p_z_s, mixture, log_p_z_sa = posteriors(mdp, pis, p_z)
    Q, _, best = soft_value_iteration(mdp, log_p_z_sa)
    residual = float(np.max(np.abs(best - pis)))
    return FixedPoint(pis, Q, p_z_s, mixture, log_p_z_sa, iterations, residual, residual < 100 * tolerance)


# ---------------------------------------------------------------------------- the theorems
def expectation(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Σ_a p(a) x(a) over the last axis, with 0·x = 0 where p(a) = 0 (x may be ±inf there)."""
    return np.sum(np.where(p > 0, p * np.where(p > 0, x, 0.0), 0.0), -1)


def symmetric_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return expectation(p, np.log(p) - np.log(q)) + expectation(q, np.log(q) - np.log(p))


def theorem1_error(pis: np.ndarray, log_q_z_sa: np.ndarray) -> float:
    """max over s and pairs i < j of |D_KL(π_i||π_j) + D_KL(π_j||π_i) - (E_π_i[log q(z_i|s,a)/q(z_j|s,a)]
    + E_π_j[log q(z_j|s,a)/q(z_i|s,a)])| (Theorem 1, with q the posterior the right side uses). Where
    two policies have disjoint supports both sides are +inf, which counts as equal."""
    errors = []
    for i, j in itertools.combinations(range(len(pis)), 2):
        left = symmetric_kl(pis[i], pis[j])
        right = expectation(pis[i], log_q_z_sa[i] - log_q_z_sa[j]) + expectation(pis[j], log_q_z_sa[j] - log_q_z_sa[i])
        errors.append(np.where(np.isinf(left) & (left == right), 0.0, np.abs(left - right)))
    return float(np.max(errors))


def objective_identity_error(mdp: MDP, pis: np.ndarray) -> float:
    """|Σ_z p(z) J(π_z) - Σ_s d̄(s) [E_π/z r + H(π/z(·|s)) - H(Z|s)] / (1 - γ)|, J of Eq. 5 (discounted)
    with the exact posterior and d̄ = Σ_z p(z) d_z: the action-level term I(Z; A|s) cancels, so the
    objective summed over z is the mixture's max-ent return minus the uncertainty of z given s."""
    p_z_s, mixture, log_p_z_sa = posteriors(mdp, pis)
    d = np.stack([state_visitation(mdp, pi) for pi in pis]) / len(pis)  # p(z) d_z(s)
    total = np.sum(d * expectation(pis, mdp.r[None] - np.log(pis) + log_p_z_sa))
    identity = np.sum(d.sum(0) * (expectation(mixture, mdp.r - np.log(mixture)) + expectation(p_z_s.T, np.log(p_z_s.T))))
    return float(abs(total - identity) / (1 - mdp.gamma))


def fixed_point_of(mdp: MDP, backup) -> np.ndarray:
    """Iterate X <- backup(X) from 0 to its fixed point (a γ-contraction)."""
    X = np.zeros_like(mdp.r)
    while True:
        X_new = backup(X)
        if np.max(np.abs(X_new - X)) < TOLERANCE:
            return X_new
        X = X_new


def S_of(mdp: MDP, fp: FixedPoint, z: int) -> np.ndarray:
    """S*_z, the fixed point of Eq. 9: S(s, a) = γ E_s'[-log p(z|s') + log E_a'~π/z exp S(s', a')]."""
    return fixed_point_of(mdp, lambda S: mdp.gamma * mdp.P @ S_inner(fp, z, S))


def S_inner(fp: FixedPoint, z: int, S: np.ndarray) -> np.ndarray:
    """-log p(z|s') + log E_a'~π/z exp S(s', a'), for every s'."""
    return -np.log(fp.p_z_s[z]) + np.log(np.sum(fp.mixture * np.exp(S), 1))


def S_growth_without_gamma(mdp: MDP, fp: FixedPoint, z: int, iterations: int = 100) -> float:
    """Eq. 9 as appendix A.2's last line writes it, without γ: S <- E_s'[-log p(z|s') + log E exp S].
    -log p(z|s') > 0 is added at every iteration, undiscounted: there is no fixed point. Returns the
    growth of max S per iteration over the last half of `iterations`."""
    S, history = np.zeros_like(mdp.r), []
    for _ in range(iterations):
        S = mdp.P @ S_inner(fp, z, S)
        history.append(S.max())
    return (history[-1] - history[iterations // 2 - 1]) / (iterations - iterations // 2)


def M_growth_without_gamma(mdp: MDP, fp: FixedPoint, z: int, iterations: int = 100) -> float:
    """Eq. 11 as appendix A.3's last line writes it, without γ: M <- E_s'[-log p(z|s') + E_a'~π/z M].
    As for Eq. 9: no fixed point. Returns the growth of max M per iteration over the last half."""
    M, history = np.zeros_like(mdp.r), []
    for _ in range(iterations):
        M = mdp.P @ (-np.log(fp.p_z_s[z]) + np.sum(fp.mixture * M, 1))
        history.append(M.max())
    return (history[-1] - history[iterations // 2 - 1]) / (iterations - iterations // 2)


def M_of(mdp: MDP, fp: FixedPoint, z: int) -> np.ndarray:
    """M*_z, the fixed point of Eq. 11: M(s, a) = γ E_s'[-log p(z|s') + E_a'~π/z M(s', a')]."""
    return fixed_point_of(mdp, lambda M: mdp.gamma * mdp.P @ (-np.log(fp.p_z_s[z]) + np.sum(fp.mixture * M, 1)))


def theorem2_error(mdp: MDP, fp: FixedPoint, Q_soft: np.ndarray) -> float:
    """max |Q*_soft - (Q*_z + S*_z)| over z, s, a."""
    return float(max(np.max(np.abs(Q_soft - fp.Q[z] - S_of(mdp, fp, z))) for z in range(len(fp.pis))))


def theorem3_error(mdp: MDP, fp: FixedPoint) -> float:
    """max |Q_/z - (Q*_z + M*_z)| over z, s, a, with Q_/z the soft Q of the mixture π/z."""
    Q_mixture = soft_policy_evaluation(mdp, fp.mixture)
    return float(max(np.max(np.abs(Q_mixture - fp.Q[z] - M_of(mdp, fp, z))) for z in range(len(fp.pis))))


# ---------------------------------------------------------------------------- the report
def random_policies(rng: np.random.Generator, num_z: int, states: int, actions: int) -> np.ndarray:
    return rng.dirichlet(np.ones(actions), size=(num_z, states))


def same_up_to_permutation(a: np.ndarray, b: np.ndarray, atol: float = 1e-6) -> bool:
    return any(np.allclose(a[list(order)], b, atol=atol) for order in itertools.permutations(range(len(a))))


def visitation_preserving_split(mdp: MDP, pi: np.ndarray, rng: np.random.Generator, per_state: bool = True) -> np.ndarray:
    """Two policies π ± εδ whose mixture is π and whose state visitations equal π's, ε as large as
    keeps both policies above half of π. `per_state`: at every state δ(s, ·) is a random direction
    with Σ_a δ(s, a) P(s'|s, a) = 0 for every s', a null vector of the |S| x |A| matrix P(·|s, ·)ᵀ; for
    transitions in general position its rank is min(|S|, |A|), so this needs |A| > |S|. Otherwise δ
    only keeps the visitation d of π: Σ_a δ(s, a) = 0 at every s and Σ_s d(s) Σ_a δ(s, a) P(s'|s, a) = 0
    for every s', 2|S| - 1 independent equations on |S||A| unknowns, solvable for any |A| >= 2."""
    S, A = mdp.r.shape
    delta = np.zeros_like(pi)
    if per_state:
        for s in range(S):
            null_space = np.linalg.svd(mdp.P[s].T)[2][np.linalg.matrix_rank(mdp.P[s].T):]  # [A - rank, A]
            delta[s] = rng.normal(size=len(null_space)) @ null_space
    else:
        d = state_visitation(mdp, pi)
        equations = np.concatenate([np.kron(np.eye(S), np.ones((1, A))), (d[:, None, None] * mdp.P).reshape(S * A, S).T])
        null_space = np.linalg.svd(equations)[2][np.linalg.matrix_rank(equations):]  # [S A - rank, S A]
        delta = (rng.normal(size=len(null_space)) @ null_space).reshape(S, A)
    if not np.any(delta):
        raise ValueError(f"no visitation-preserving direction: {S} states, {A} actions, per_state={per_state}")
    epsilon = 0.5 * np.min(pi / np.maximum(np.abs(delta), 1e-300))
    return np.stack([pi + epsilon * delta, pi - epsilon * delta])


def check_mdp(mdp: MDP, rng: np.random.Generator, num_z: int, starts: int) -> dict:
    """Every measurement of one MDP: the theorems at the interior fixed points (every π_z = π*_soft,
    and, with |Z| = 2, a split of π*_soft that keeps the state visitation) and at the fixed points
    the iteration reaches from `starts` random starts."""
    S, A = mdp.r.shape
    Q_soft, V_soft, pi_soft = soft_value_iteration(mdp, np.zeros_like(mdp.r))  # no prior: the proofs' Q*_soft
    Q_soft_uniform, _, _ = soft_value_iteration(mdp, np.full_like(mdp.r, -np.log(A)))  # π0 uniform: the text's
    row = {"q_scale": float(np.max(np.abs(Q_soft)))}
    # Theorem 1 holds for ANY policies with their Bayes posterior (under any state weights p(z|s))...
    random_pis = random_policies(rng, num_z, S, A)
    row["thm1_any_policies"] = theorem1_error(random_pis, posteriors(mdp, random_pis)[2])
    # ... and not with a discriminator that is not the Bayes posterior of the policies
    noisy = posteriors(mdp, random_pis)[2] + 0.1 * rng.normal(size=random_pis.shape)
    row["thm1_learned_q"] = theorem1_error(random_pis, noisy - logsumexp(noisy, 0)[None])
    row["objective_identity"] = objective_identity_error(mdp, random_pis)

    interior = {"symmetric": at_policies(mdp, np.stack([pi_soft] * num_z))}
    if num_z == 2 and A > S:
        interior["split"] = at_policies(mdp, visitation_preserving_split(mdp, pi_soft, rng))
    for name, fp in interior.items():
        row[f"{name}_residual"] = fp.residual
        row[f"{name}_kl"] = float(np.mean(symmetric_kl(fp.pis[0], fp.pis[1])))
        row[f"thm1_{name}"] = theorem1_error(fp.pis, fp.log_p_z_sa)
        row[f"thm2_{name}"] = theorem2_error(mdp, fp, Q_soft)
        row[f"thm3_{name}"] = theorem3_error(mdp, fp)
    fp = interior["symmetric"]
    row["thm2_uniform_prior"] = theorem2_error(mdp, fp, Q_soft_uniform)
    row["uniform_prior_constant"] = mdp.gamma * np.log(A) / (1 - mdp.gamma)
    row["no_gamma_growth"] = min(S_growth_without_gamma(mdp, fp, z) for z in range(num_z))
    row["no_gamma_growth_M"] = min(M_growth_without_gamma(mdp, fp, z) for z in range(num_z))
    early = mede_fixed_point(mdp, random_policies(rng, num_z, S, A), max_iterations=3)
    row["thm2_not_converged"], row["not_converged_residual"] = theorem2_error(mdp, early, Q_soft), early.residual

    points = [mede_fixed_point(mdp, random_policies(rng, num_z, S, A)) for _ in range(starts)]
    converged = [p for p in points if p.converged]
    row.update(converged=len(converged), starts=starts, iterations=[p.iterations for p in points])
    if not converged:
        return row
    row["thm1_reached"] = max(theorem1_error(p.pis, p.log_p_z_sa) for p in converged)
    row["thm2_reached"] = max(theorem2_error(mdp, p, Q_soft) for p in converged)
    row["thm3_reached"] = max(theorem3_error(mdp, p) for p in converged)
    row["S_bound_gap"] = min(S_lower_bound_gap(mdp, p, z) for p in converged for z in range(num_z))
    row["smallest_probability"] = float(min(np.min(p.pis) for p in converged))
    # what the fixed points reached look like
    kl = [np.mean(symmetric_kl(p.pis[i], p.pis[j])) for p in converged
          for i, j in itertools.combinations(range(num_z), 2)]
    row["min_pairwise_kl"] = float(np.min(kl))  # the least diverse pair, averaged over states
    row["max_p_z_s"] = float(np.mean([np.mean(np.max(p.p_z_s, 0)) for p in converged]))  # how well s alone tells z
    row["distinct_fixed_points"] = sum(not any(same_up_to_permutation(p.pis, q.pis) for q in converged[:i])
                                       for i, p in enumerate(converged))
    row["mixture_vs_soft_kl"] = float(max(np.max(expectation(p.mixture, np.log(p.mixture) - np.log(pi_soft)))
                                          for p in converged))
    row["soft_minus_mixture_q"] = float(max(np.max(Q_soft - soft_policy_evaluation(mdp, p.mixture)) for p in converged))
    return row


# ------------------------------------------------- S_z as the posterior of one z goes to 1
def two_rooms(leak: float, shared_after: bool, gamma: float) -> MDP:
    """The MDPs of the check of §3.3's "S*_z -> 0 as p(z|s) -> 1". State 0, the start, is a fork:
    action 0 leads to the left room (state 1), action 1 to the right room (state 2), each with
    probability 1 - `leak` and to the other room with probability `leak`. Both actions in a room pay
    1 and 0. `shared_after=False`: the rooms are closed up to the leak (every action stays w.p.
    1 - leak and moves to the other room w.p. leak). `shared_after=True`: every action in a room
    leads to state 3, a shared room (rewards 1 and 0) that nobody leaves. At the fixed point below
    z = 0 takes the left room, z = 1 the right one, and p(z = 0 | left room) -> 1 as leak -> 0."""
    S = 4 if shared_after else 3
    P = np.zeros((S, 2, S))
    P[0, 0, 1], P[0, 0, 2], P[0, 1, 2], P[0, 1, 1] = 1 - leak, leak, 1 - leak, leak
    for room, other in ((1, 2), (2, 1)):
        if shared_after:
            P[room, :, 3] = 1.0
        else:
            P[room, :, room], P[room, :, other] = 1 - leak, leak
    if shared_after:
        P[3, :, 3] = 1.0
    r = np.zeros((S, 2))
    r[1:] = (1.0, 0.0)
    return MDP(P=P, r=r, gamma=gamma, rho0=np.eye(S)[0])


def S_at(mdp: MDP, fp: FixedPoint, z: int, Q_soft: np.ndarray, states) -> dict:
    """At `states`, for z: the smallest p(z|s), the largest S*_z (the fixed point of Eq. 9), the
    largest Q*_soft - Q*_z (what Theorem 2 says S*_z is) and the largest |difference| of the two."""
    S = S_of(mdp, fp, z)[states]
    difference = (Q_soft - fp.Q[z])[states]
    return {"p_z_s": float(np.min(fp.p_z_s[z, states])), "S": float(np.max(S)),
            "Q_soft_minus_Q_z": float(np.max(difference)), "thm2": float(np.max(np.abs(S - difference))),
            "residual": fp.residual}


def S_as_posterior_goes_to_one(gamma: float, seed: int = 0, epsilons=(0.5, 1e-1, 1e-2, 1e-4, 1e-8),
                               leaks=(1e-1, 1e-2, 1e-3, 1e-4, 1e-6)) -> dict:
    """§3.3: "As a special case, S*_z -> 0 as p(z|s) -> 1 because π/z becomes dominated by π*_z."
    p(z|s) of z = 0 is driven towards 1 in three ways, each at an exact MEDE fixed point:

    - "everywhere": a random MDP (4 states, 6 actions), every π_z = π*_soft, and the prior
      p(z) = (1 - ε, ε). Then p(z = 0|s) = 1 - ε at every state: the only way to get p(z|s) -> 1
      at every state, because Σ_s d̄(s) p(z|s) = p(z).
    - "closed room": `two_rooms(leak, shared_after=False)`, uniform p(z), at the left room, whose
      actions lead back into it (up to the leak).
    - "room, then shared": `two_rooms(leak, shared_after=True)`, uniform p(z), at the left room,
      whose actions all lead to a state both z visit equally.

    Returns, per way, one row per value of its knob (ε or leak): `S_at` at the states named, and the
    closed form where there is one."""
    rng = np.random.default_rng(seed)
    mdp = random_mdp(rng, 4, 6, gamma)
    Q_soft, _, pi_soft = soft_value_iteration(mdp, np.zeros_like(mdp.r))
    rows = {"everywhere": [], "closed room": [], "room, then shared": []}
    for epsilon in epsilons:
        p_z = np.array([1 - epsilon, epsilon])
        fp = at_policies(mdp, np.stack([pi_soft] * 2), p_z=p_z)
        row = S_at(mdp, fp, 0, Q_soft, slice(None))
        row.update(knob=epsilon, closed_form=-gamma * np.log(1 - epsilon) / (1 - gamma),
                   S_other_z=float(np.max(S_of(mdp, fp, 1))), closed_form_other_z=-gamma * np.log(epsilon) / (1 - gamma))
        rows["everywhere"].append(row)
    start = np.array([[0.9, 0.1], [0.1, 0.9]])  # at the fork z = 0 leans left, z = 1 right; elsewhere uniform
    for shared_after, name in ((False, "closed room"), (True, "room, then shared")):
        for leak in leaks:
            mdp = two_rooms(leak, shared_after, gamma)
            pis = np.full((2, len(mdp.r), 2), 0.5)
            pis[:, 0] = start
            fp = mede_fixed_point(mdp, pis)
            Q_soft_rooms, _, _ = soft_value_iteration(mdp, np.zeros_like(mdp.r))
            row = S_at(mdp, fp, 0, Q_soft_rooms, [1])
            row.update(knob=leak, converged=fp.converged, iterations=fp.iterations,
                       p_z_s_right=float(fp.p_z_s[0, 2]), pi_z_right_at_fork=float(fp.pis[0, 0, 1]))
            if shared_after:
                row.update(p_z_s_shared=float(fp.p_z_s[0, 3]), closed_form=gamma * np.log(2) / (1 - gamma))
            rows[name].append(row)
    return rows


def S_lower_bound_gap(mdp: MDP, fp: FixedPoint, z: int) -> float:
    """min over (s, a) of S*_z(s, a) - γ E_s'[-log p(z|s')], where both are finite: >= 0, because the
    log-mean-exp term of Eq. 9 is >= 0 (S*_z >= 0). So S*_z(s, a) is set by p(z|·) at the states
    after (s, a), not by p(z|s)."""
    bound = mdp.gamma * mdp.P @ -np.log(fp.p_z_s[z])
    S = S_of(mdp, fp, z)
    finite = np.isfinite(bound) & np.isfinite(S)
    return float(np.min((S - bound)[finite]))


def split_with_few_actions(gamma: float, seed: int, mdps: int = 20, states: int = 4, actions: int = 2) -> dict:
    """With |A| <= |S| the per-state split does not exist. On `mdps` random MDPs: the split that keeps
    only the visitation (`visitation_preserving_split(per_state=False)`) at its fixed-point residual,
    Theorems 2 and 3 there, how diverse it is, and the rank of the |S|(|A| - 1) differences
    P(·|s, a) - P(·|s, 0): |S| - 1 is what forces V_z - V_z' to a constant at an interior fixed point."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(mdps):
        mdp = random_mdp(rng, states, actions, gamma)
        Q_soft, _, pi_soft = soft_value_iteration(mdp, np.zeros_like(mdp.r))
        fp = at_policies(mdp, visitation_preserving_split(mdp, pi_soft, rng, per_state=False))
        differences = (mdp.P[:, 1:] - mdp.P[:, :1]).reshape(-1, states)
        rows.append({"residual": fp.residual, "thm2": theorem2_error(mdp, fp, Q_soft), "thm3": theorem3_error(mdp, fp),
                     "kl": float(np.mean(symmetric_kl(fp.pis[0], fp.pis[1]))),
                     "p_z_s_off": float(np.max(np.abs(fp.p_z_s - 0.5))),
                     "rank": int(np.linalg.matrix_rank(differences))})
    return {key: [row[key] for row in rows] for key in rows[0]}


def check_bandit(rewards, num_z: int, gamma: float) -> dict:
    """The one-state MDP against its closed form. There V*_soft = logsumexp(r) / (1 - γ) and
    π*_soft = softmax(r). Every split of softmax(r) into |Z| policies of full support with
    equal weights, π_z(a) = |Z| λ_z(a) softmax(r)(a) (Σ_z λ_z(a) = 1, each π_z summing to 1), is a
    MEDE fixed point, with V*_z = (logsumexp(r) - log|Z|) / (1 - γ) and S*_z = γ log|Z| / (1 - γ)."""
    mdp = bandit(rewards, gamma)
    r = mdp.r[0]
    soft = np.exp(r - logsumexp(r, 0))
    Q_soft, V_soft, pi_soft = soft_value_iteration(mdp, np.zeros_like(mdp.r))
    # a diverse split: λ_z(a) ∝ a bump of z, then the two constraints by iterative scaling
    lam = np.array([[1.0 + 3.0 * (a % num_z == z) for a in range(len(r))] for z in range(num_z)])
    for _ in range(2000):  # alternate: columns sum to 1, each π_z sums to 1
        lam /= lam.sum(0, keepdims=True)
        lam /= (num_z * lam * soft).sum(1, keepdims=True)
    pis = (num_z * lam * soft)[:, None, :]
    fp = at_policies(mdp, pis)
    closed_V_z = (logsumexp(r, 0) - np.log(num_z)) / (1 - gamma)
    return {
        "V_soft": float(np.max(np.abs(V_soft - logsumexp(r, 0) / (1 - gamma)))),
        "pi_soft": float(np.max(np.abs(pi_soft[0] - soft))),
        "split_is_fixed_point": fp.residual,
        "Q_z": float(np.max(np.abs(fp.Q[:, 0] - (r[None] + gamma * closed_V_z)))),
        "S_z": float(max(np.max(np.abs(S_of(mdp, fp, z) - gamma * np.log(num_z) / (1 - gamma))) for z in range(num_z))),
        "thm2": theorem2_error(mdp, fp, Q_soft),
        "split_kl": float(symmetric_kl(pis[0, 0], pis[1, 0])),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mdps", type=int, default=20, help="random MDPs (default: %(default)s)")
    parser.add_argument("--states", type=int, default=4, help="states of each (default: %(default)s)")
    parser.add_argument("--actions", type=int, default=6, help="actions of each; more than states, so that the "
                        "visitation-preserving split exists (default: %(default)s)")
    parser.add_argument("--num-z", type=int, default=2, help="|Z|, the number of policies (default: %(default)s)")
    parser.add_argument("--gamma", type=float, default=0.9, help="discount (default: %(default)s)")
    parser.add_argument("--starts", type=int, default=4, help="random starts of the fixed-point iteration per MDP "
                        "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the MDPs and the starts (default: %(default)s)")
    args = parser.parse_args(argv)
    if min(args.mdps, args.states, args.actions, args.starts) < 1 or args.num_z < 2 or not 0 < args.gamma < 1:
        parser.error("--mdps, --states, --actions, --starts must be positive, --num-z at least 2, --gamma in (0, 1)")

    rng = np.random.default_rng(args.seed)
    with np.errstate(divide="ignore", invalid="ignore"):  # log 0 (and inf - inf) where a policy gives an action no probability
        rows = [check_mdp(random_mdp(rng, args.states, args.actions, args.gamma), rng, args.num_z, args.starts)
                for _ in range(args.mdps)]
    worst = lambda key: max(row[key] for row in rows if key in row)  # noqa: E731
    spread = lambda key: f"{min(r[key] for r in rows if key in r):.3g}-{max(r[key] for r in rows if key in r):.3g}"  # noqa: E731
    reached = sum(r["converged"] for r in rows)
    print(f"{args.mdps} random MDPs: {args.states} states, {args.actions} actions, γ = {args.gamma}, |Z| = {args.num_z}, "
          f"p(z) uniform, seed {args.seed}; largest |Q*_soft| {spread('q_scale')}")
    print(f"Interior fixed points (every π_z(a|s) > 0): all π_z = π*_soft, and (|Z| = 2, more actions than states) "
          f"a split π*_soft ± εδ that keeps the state visitation (mean symmetric KL {spread('split_kl') if 'split_kl' in rows[0] else '-'}).")
    print(f"Reached from {args.starts} random starts per MDP: {reached} of {args.mdps * args.starts} converged "
          f"(policies and Q_z move < 1e-10) in {min(min(r['iterations']) for r in rows)}-"
          f"{max(max(r['iterations']) for r in rows)} iterations; smallest π_z(a|s) there {worst('smallest_probability'):.1e}"
          f" or less: on the boundary\n")
    verdict = lambda error: "holds" if error < 1e-8 else "fails"  # noqa: E731
    lines = [("Theorem 1", "any policies, their exact (Bayes) posterior p(z|s,a)", worst("thm1_any_policies")),
             ("Theorem 1", "fixed points reached from random starts", worst("thm1_reached")),
             ("Theorem 1", "a discriminator that is not the posterior (log p + noise 0.1)", worst("thm1_learned_q"))]
    for number in (2, 3):
        lines += [(f"Theorem {number}", "interior fixed point: every π_z = π*_soft", worst(f"thm{number}_symmetric"))]
        if "split_kl" in rows[0]:
            lines += [(f"Theorem {number}", "interior diverse fixed point: the visitation-preserving split",
                       worst(f"thm{number}_split"))]
        lines += [(f"Theorem {number}", "fixed points reached from random starts (on the boundary)",
                   worst(f"thm{number}_reached"))]
        if number == 3:
            growth = min(r["no_gamma_growth_M"] for r in rows)
            lines += [("Theorem 3", "Eq. 11 without its γ (appendix A.3, last line), interior", None,
                       f"no fixed point: M grows by at least {growth:.3f} per iteration")]
        if number == 2:
            off = max(abs(r["thm2_uniform_prior"] - r["uniform_prior_constant"]) for r in rows)
            growth = min(r["no_gamma_growth"] for r in rows)
            lines += [("Theorem 2", "Eq. 9 without its γ (appendix A.2, last line), interior", None,
                       f"no fixed point: S grows by at least {growth:.3f} per iteration"),
                      ("Theorem 2", "3 iterations from a random start (not a fixed point)", worst("thm2_not_converged")),
                      ("Theorem 2", "Q*_soft with a uniform prior π0 (the text's definition), interior",
                       worst("thm2_uniform_prior"), f"off by the constant γ log|A|/(1-γ) = "
                       f"{rows[0]['uniform_prior_constant']:.4f} (to {off:.0e})")]
    print("| theorem | where, or under which condition | largest absolute error | verdict |\n|---|---|---|---|")
    for theorem, condition, error, *said in lines:
        print(f"| {theorem} | {condition} | {'–' if error is None else f'{error:.1e}'} | "
              f"{said[0] if said else verdict(error)} |")
    print(f"\nThe MEDE objective summed over z (Eq. 5, exact posterior) equals the mixture's max-ent return minus "
          f"H(Z|s): Σ_z p(z) J(π_z) = Σ_s d̄(s)[E_π/z r + H(π/z(·|s)) - H(Z|s)]/(1-γ), largest error "
          f"{worst('objective_identity'):.1e} (random policies): summed over z, telling z apart by the action at a state earns nothing.")
    reached = [r for r in rows if "min_pairwise_kl" in r]
    diverse = sum(r["min_pairwise_kl"] > 1e-3 for r in reached)
    separate = sum(r["max_p_z_s"] > 1 / args.num_z + 0.05 for r in reached)
    several = sum(r["distinct_fixed_points"] > 1 for r in reached)
    print(f"\nThe fixed points reached (in {len(reached)} MDPs): diverse in {diverse} (the least diverse pair's "
          f"symmetric KL, averaged over states, {spread('min_pairwise_kl')}); the state tells z apart in {separate} "
          f"(mean max_z p(z|s) {spread('max_p_z_s')}, against 1/|Z| = {1 / args.num_z:.2g}); more than one "
          f"fixed point (up to a permutation of z) from {args.starts} starts in {several} "
          f"({spread('distinct_fixed_points')} per MDP). Their mixture against π*_soft: max_s KL(π/z || π*_soft) "
          f"{spread('mixture_vs_soft_kl')}; Q*_soft - Q_/z (>= 0: Q*_soft is the best soft Q of any policy) up to "
          f"{spread('soft_minus_mixture_q')}.")
    b = check_bandit([0.0, 1.0, -0.5, 0.3], num_z=2, gamma=args.gamma)
    print(f"\nHand-solvable bandit (one state, r = 0, 1, -0.5, 0.3, |Z| = 2): |V*_soft - closed form| {b['V_soft']:.1e}, "
          f"|π*_soft - softmax(r)| {b['pi_soft']:.1e}; a diverse split of softmax(r) (symmetric KL {b['split_kl']:.2f}) "
          f"is a fixed point (residual {b['split_is_fixed_point']:.1e}), |Q*_z - closed form| {b['Q_z']:.1e}, "
          f"|S*_z - γ log|Z|/(1-γ)| {b['S_z']:.1e}, Theorem 2 error {b['thm2']:.1e}: one of a continuum of fixed points.")
    few = split_with_few_actions(args.gamma, args.seed)
    print(f"\nFewer actions than states (20 random MDPs, 4 states, 2 actions), where no per-state split exists: the "
          f"split that keeps only the visitation is a fixed point (residual {max(few['residual']):.1e}) with p(z|s) = 1/2 "
          f"(to {max(few['p_z_s_off']):.0e}), diverse (mean symmetric KL {min(few['kl']):.3g}-{max(few['kl']):.3g}), "
          f"where Theorem 2 holds to {max(few['thm2']):.1e} and Theorem 3 to {max(few['thm3']):.1e}. The differences "
          f"P(·|s,a) - P(·|s,a0) have rank |S| - 1 = 3 in {sum(rank == 3 for rank in few['rank'])} of 20.")
    with np.errstate(divide="ignore", invalid="ignore"):  # the fixed points in the rooms are on the boundary
        z_rows = S_as_posterior_goes_to_one(args.gamma, args.seed)
    print(f"\n§3.3: \"S*_z -> 0 as p(z|s) -> 1\". p(z|s) of z = 0 driven towards 1 in three ways, at exact fixed points, "
          f"γ = {args.gamma}. S*_z from Eq. 9 and Q*_soft - Q*_z (what Theorem 2 says S*_z is), the largest over the "
          f"states named and their actions; p(z|s) the smallest there:")
    print("| where p(z\\|s) goes to 1 | knob | p(z\\|s) | S*_z (Eq. 9) | Q*_soft - Q*_z | closed form | Theorem 2 error "
          "| residual |\n|---|---|---|---|---|---|---|---|")
    ways = (("everywhere", "every state: prior p(z) = (1 - ε, ε), every π_z = π*_soft", "ε", "-γ log(1-ε)/(1-γ)"),
            ("closed room", "a room that z = 0 has to itself and that its actions do not leave (up to a leak η)", "η", None),
            ("room, then shared", "a room that z = 0 has to itself (up to a leak η) whose actions lead to a state "
             "both z visit", "η", "γ log 2/(1-γ)"))
    for key, name, knob, closed in ways:
        for row in z_rows[key]:
            form = "–" if closed is None else f"{closed} = {row['closed_form']:.4g}"
            print(f"| {name} | {knob} = {row['knob']:g} | {row['p_z_s']:.8f} | {row['S']:.4g} | "
                  f"{row['Q_soft_minus_Q_z']:.4g} | {form} | {row['thm2']:.0e} | {row['residual']:.0e} |")
    other, shared = z_rows["everywhere"], z_rows["room, then shared"]
    print("Every state: for the other z (p(z = 1|s) = ε) S*_z = " + ", ".join(f"{row['S_other_z']:.4g}" for row in other)
          + " (closed form -γ log ε/(1-γ): " + ", ".join(f"{row['closed_form_other_z']:.4g}" for row in other) + "). "
          f"Room, then shared: p(z = 0|shared state) = {min(r['p_z_s_shared'] for r in shared):.6f}-"
          f"{max(r['p_z_s_shared'] for r in shared):.6f} for every η.")
    gap = min(r["S_bound_gap"] for r in rows if "S_bound_gap" in r)
    print(f"At the fixed points reached from random starts, S*_z(s,a) >= γ E_s'[-log p(z|s')] at every (s, a) and z "
          f"(smallest margin {gap:.2g}): S*_z is at least the discounted surprise of z at the next state, whatever "
          f"p(z|s) is.")
    holds = max(worst("thm1_any_policies"), worst("thm2_symmetric"), worst("thm3_symmetric")) < 1e-8
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
