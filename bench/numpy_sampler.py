#!/usr/bin/python3
"""Vectorised NumPy reference for bench/bench_sampler.c (run by it; prints "key value" lines).

  numpy_sampler.py sample DIR N STEPS EPS SNR SEED [OUT.npy]
      The sampler of `diffsde sample --sde vp --sampler pc --predictor reverse-diffusion
      --corrector langevin` (one corrector step per level, final denoising step) on the
      Gaussian mixture whose weights.npy (K), means.npy (K, D) and covs.npy (K, D, D) are in
      DIR, with the exact mixture score of p_t under VP (beta_min 0.1, beta_max 20, T = 1).
      Same grid, discrete table, step sizes and per-sample Langevin norms as src/sampler/
      (sampler.c, predictor_reverse_diffusion.c, corrector_langevin.c); NumPy's own normals.
      Prints wall_s, samples_per_s, nfe_per_sample and the sample mean.
  numpy_sampler.py normals
      Nanoseconds per standard normal of numpy.random.default_rng().standard_normal into a
      preallocated array of 10^6 (the ziggurat of NumPy's Generator), best of 7.

The score is what a careful NumPy user writes: per level (both score calls of a level share
t) one batched Cholesky of C_k = alpha^2 Sigma_k + sigma^2 I and its triangular inverse,
then per call two BLAS products over all components at once, Y = [L_1^-1; ...; L_K^-1] x^T - b
(KD x n, block k = L_k^-1 (x - alpha mu_k)) and s = -[L_1^-T ... L_K^-T] [g_1 Y_1; ...; g_K Y_K],
with the responsibilities g_k by log-sum-exp of log w_k - log|L_k| - |Y_k|^2 / 2 (points as
columns, so that the reductions over components run along rows of length n).
"""
import sys
import time

try:
    import numpy as np
except ImportError:  # the bench prints "numpy: unavailable"
    print("numpy unavailable")
    sys.exit(3)

BETA_MIN, BETA_MAX, T = 0.1, 20.0, 1.0


def vp_alpha_sigma2(t):
    b = BETA_MIN * t + 0.5 * (BETA_MAX - BETA_MIN) * t * t
    return np.exp(-0.5 * b), -np.expm1(-b)


class MixtureScore:
    """Exact score of p_t = sum_k w_k N(alpha mu_k, alpha^2 Sigma_k + sigma^2 I)."""

    def __init__(self, w, mu, cov):
        self.logw, self.mu, self.cov = np.log(w), mu, cov
        self.t = None

    def _factor(self, t):
        alpha, s2 = vp_alpha_sigma2(t)
        k, d = self.mu.shape
        c = alpha * alpha * self.cov + s2 * np.eye(d)
        lower = np.linalg.cholesky(c)  # (K, D, D)
        linv = np.linalg.inv(lower)  # triangular inverses L_k^-1
        # Points as columns (reductions over components then run along rows of length n):
        # Y = [L_1^-1; ...; L_K^-1] x^T - b, block k = L_k^-1 (x - alpha mu_k)
        self.w_fwd = np.ascontiguousarray(linv.reshape(k * d, d))
        self.b_fwd = (linv @ (alpha * self.mu)[:, :, None]).reshape(k * d, 1)
        # sum_k g_k C_k^-1 (x - alpha mu_k) = [L_1^-T ... L_K^-T] [g_1 Y_1; ...; g_K Y_K]
        self.w_back = np.ascontiguousarray(linv.transpose(2, 0, 1).reshape(d, k * d))
        logdet = 2.0 * np.log(np.diagonal(lower, axis1=1, axis2=2)).sum(axis=1)
        self.logc = (self.logw - 0.5 * logdet)[:, None]  # (K, 1)
        self.t = t

    def __call__(self, x, t):
        if t != self.t:
            self._factor(t)
        n, d = x.shape
        k = self.logc.size
        y = self.w_fwd @ x.T - self.b_fwd  # (K*D, n)
        y3 = y.reshape(k, d, n)
        a = self.logc - 0.5 * np.einsum("kdn,kdn->kn", y3, y3)
        a -= a.max(axis=0)
        g = np.exp(a)
        g /= g.sum(axis=0)
        y3 *= g[:, None, :]
        return -(self.w_back @ y).T


def sample(w, mu, cov, n, steps, eps, snr, seed):
    rng = np.random.default_rng(seed)
    score = MixtureScore(w, mu, cov)
    d = mu.shape[1]
    betas = np.linspace(BETA_MIN / steps, BETA_MAX / steps, steps)
    x = rng.standard_normal((n, d))  # the VP prior N(0, I)
    for i in range(steps):
        t = T - i * ((T - eps) / steps)
        j = min(max(int(np.floor(t * (steps - 1) / T)), 0), steps - 1)
        b = betas[j]
        # Langevin corrector, per-sample norms
        s = score(x, t)
        z = rng.standard_normal((n, d))
        gn = np.sqrt(np.einsum("nd,nd->n", s, s))
        zn = np.sqrt(np.einsum("nd,nd->n", z, z))
        r = np.where(gn > 0, snr * zn / np.where(gn > 0, gn, 1.0), 0.0)
        e = (r * r * 2.0 * (1.0 - b))[:, None]
        x = x + e * s + np.sqrt(2.0 * e) * z
        # reverse-diffusion predictor
        s = score(x, t)
        z = rng.standard_normal((n, d))
        x = x - (np.sqrt(1.0 - b) - 1.0) * x + b * s + np.sqrt(b) * z
    alpha, s2 = vp_alpha_sigma2(eps)
    x = (x + s2 * score(x, eps)) / alpha  # Tweedie denoising
    return x


def main(argv):
    if len(argv) >= 2 and argv[1] == "normals":
        rng = np.random.default_rng(1)
        out = np.empty(10**6)
        best = float("inf")
        for _ in range(7):
            t0 = time.perf_counter()
            rng.standard_normal(out=out)
            best = min(best, time.perf_counter() - t0)
        print("numpy_version", np.__version__)
        print("ns_per_normal %.4f" % (best / out.size * 1e9))
        return 0
    if len(argv) >= 8 and argv[1] == "sample":
        d = argv[2]
        w = np.load(d + "/weights.npy")
        mu = np.load(d + "/means.npy")
        cov = np.load(d + "/covs.npy").reshape(mu.shape[0], mu.shape[1], mu.shape[1])
        n, steps = int(argv[3]), int(argv[4])
        eps, snr, seed = float(argv[5]), float(argv[6]), int(argv[7])
        score_warm = MixtureScore(w, mu, cov)
        score_warm(np.zeros((2, mu.shape[1])), 0.5)  # load BLAS/LAPACK before timing
        t0 = time.perf_counter()
        x = sample(w, mu, cov, n, steps, eps, snr, seed)
        wall = time.perf_counter() - t0
        if len(argv) >= 9:
            np.save(argv[8], x)
        print("numpy_version", np.__version__)
        print("wall_s %.6f" % wall)
        print("samples_per_s %.6g" % (n / wall))
        print("nfe_per_sample %d" % (2 * steps + 1))
        print("mean " + " ".join("%.6g" % v for v in x.mean(axis=0)[:4]))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
