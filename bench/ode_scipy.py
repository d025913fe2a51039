#!/usr/bin/python3
"""The reference implementation's flow-ODE sampler, for bench/bench_ode.c (run by it; prints
"key value" lines).

  ode_scipy.py solve DIR SDE P1 P2 T0 T1 RTOL ATOL
      Integrate the probability-flow ODE dx/dt = f(t) x - 1/2 g(t)^2 s(x, t) from T0 to T1
      for the starting points DIR/x0.npy (n, D) with scipy.integrate.solve_ivp(method="RK45",
      rtol=RTOL, atol=ATOL) on ONE flattened state of n*D components (the convention of
      score_sde's ode sampler: one step size for the whole batch, the error norm the RMS over
      all n*D components). s is the exact score of p_t for the Gaussian mixture of
      DIR/weights.npy (K), DIR/means.npy (K, D) and DIR/covs.npy (K, D*D) perturbed by the SDE
      "ve" (P1 = sigma_min, P2 = sigma_max) or "vp" / "subvp" (P1 = beta_min, P2 = beta_max),
      T = 1. Writes the endpoints to DIR/x1.npy and prints nfev (right-hand-side calls, each
      evaluating the whole batch: the per-sample NFE), status, wall_s and scipy_version.

The SDE coefficients are the closed forms of include/diffsde/sde.h:
  VE:     f = 0,     g^2 = 2 log(smax/smin) sigma^2, alpha = 1, sigma = smin (smax/smin)^t
  VP:     f = -b/2,  g^2 = b,                alpha = exp(-B/2), sigma^2 = 1 - exp(-B)
  sub-VP: f = -b/2,  g^2 = b (1 - exp(-2B)), alpha = exp(-B/2), sigma   = 1 - exp(-B)
with b(t) = bmin + t (bmax - bmin), B(t) = bmin t + (bmax - bmin) t^2 / 2.
"""
import sys
import time

try:
    import numpy as np
    import scipy
    from scipy.integrate import solve_ivp
except ImportError:  # bench_ode prints "scipy: unavailable"
    print("scipy unavailable")
    sys.exit(3)


class Sde:
    def __init__(self, kind, p1, p2):
        self.kind, self.p1, self.p2 = kind, p1, p2

    def coefs(self, t):
        """f, g^2, alpha, sigma^2 at t."""
        if self.kind == "ve":
            smin, smax = self.p1, self.p2
            sigma = smin * (smax / smin) ** t
            return 0.0, 2.0 * np.log(smax / smin) * sigma * sigma, 1.0, sigma * sigma
        bmin, bmax = self.p1, self.p2
        beta = bmin + t * (bmax - bmin)
        big_b = bmin * t + 0.5 * (bmax - bmin) * t * t
        alpha = np.exp(-0.5 * big_b)
        one_minus = -np.expm1(-big_b)
        if self.kind == "vp":
            return -0.5 * beta, beta, alpha, one_minus
        if self.kind == "subvp":
            return -0.5 * beta, beta * -np.expm1(-2.0 * big_b), alpha, one_minus * one_minus
        raise ValueError("unknown SDE " + self.kind)


class MixtureScore:
    """Exact score of p_t = sum_k w_k N(alpha mu_k, alpha^2 Sigma_k + sigma^2 I): the
    responsibilities by log-sum-exp, each C_k by its Cholesky factor (no explicit inverse)."""

    def __init__(self, w, mu, cov):
        self.logw, self.mu, self.cov = np.log(w), mu, cov

    def __call__(self, x, alpha, sigma2):
        k, d = self.mu.shape
        c = alpha * alpha * self.cov + sigma2 * np.eye(d)  # (K, D, D)
        lower = np.linalg.cholesky(c)
        r = x[None, :, :] - alpha * self.mu[:, None, :]  # (K, n, D)
        # z_k = L_k^-1 r_k, then C_k^-1 r_k = L_k^-T z_k
        z = np.linalg.solve(lower, r.transpose(0, 2, 1))  # (K, D, n)
        logdet = 2.0 * np.log(np.diagonal(lower, axis1=1, axis2=2)).sum(axis=1)
        a = (self.logw - 0.5 * logdet)[:, None] - 0.5 * np.einsum("kdn,kdn->kn", z, z)
        a -= a.max(axis=0)
        g = np.exp(a)
        g /= g.sum(axis=0)  # (K, n)
        cinv_r = np.linalg.solve(lower.transpose(0, 2, 1), z)  # (K, D, n)
        return -np.einsum("kn,kdn->nd", g, cinv_r)


def solve(dirname, kind, p1, p2, t0, t1, rtol, atol):
    w = np.load(dirname + "/weights.npy")
    mu = np.load(dirname + "/means.npy")
    k, d = mu.shape
    cov = np.load(dirname + "/covs.npy").reshape(k, d, d)
    x0 = np.load(dirname + "/x0.npy")
    n = x0.shape[0]
    sde = Sde(kind, p1, p2)
    score = MixtureScore(w, mu, cov)

    def rhs(t, y):
        f, g2, alpha, sigma2 = sde.coefs(t)
        x = y.reshape(n, d)
        return (f * x - 0.5 * g2 * score(x, alpha, sigma2)).reshape(-1)

    start = time.perf_counter()
    sol = solve_ivp(rhs, (t0, t1), x0.reshape(-1), method="RK45", rtol=rtol, atol=atol)
    wall = time.perf_counter() - start
    np.save(dirname + "/x1.npy", np.ascontiguousarray(sol.y[:, -1].reshape(n, d)))
    print("nfev", sol.nfev)
    print("status", sol.status)
    print("wall_s", wall)
    print("scipy_version", scipy.__version__)
    return 0 if sol.status == 0 else 1


def main(argv):
    if len(argv) == 10 and argv[1] == "solve":
        return solve(argv[2], argv[3], float(argv[4]), float(argv[5]), float(argv[6]),
                     float(argv[7]), float(argv[8]), float(argv[9]))
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
