"""The compiled log_ndtr agrees with Optuna's, and TPE proposes the same trials with it."""

from __future__ import annotations

import numpy as np
import optuna

from stratopt.optimize import fast_tpe, optuna_private


def reference(a: np.ndarray) -> np.ndarray:
    single = optuna_private.log_ndtr_single
    return np.array([single(float(x)) for x in a.ravel()]).reshape(a.shape)


def test_matches_optunas_formula_across_all_three_regimes() -> None:
    xs = np.concatenate([np.linspace(-60, 40, 20_001), [-20.0, -19.999, 6.0, 6.001, -1e3, 1e3]])
    got = fast_tpe.log_ndtr(xs)
    want = reference(xs)
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12)
    square = xs[:20_000].reshape(100, 200)
    assert np.array_equal(fast_tpe.log_ndtr(square), got[:20_000].reshape(100, 200))


def test_install_routes_tpe_through_it_and_keeps_results() -> None:
    def trials() -> list[dict[str, int]]:
        study = optuna.create_study(
            sampler=optuna.samplers.TPESampler(seed=3), direction="maximize"
        )
        for _ in range(30):
            t = study.ask()
            x, y = t.suggest_int("x", 2, 200, log=True), t.suggest_int("y", 5, 400, log=True)
            study.tell(t, float(np.sin(x / 7) + np.cos(y / 31)))
        return [t.params for t in study.trials]

    fast_tpe.install()
    assert optuna_private.log_ndtr_hook() is fast_tpe.log_ndtr
    patched = trials()
    optuna_private.set_log_ndtr(reference)
    try:
        assert trials() == patched
    finally:
        optuna_private.set_log_ndtr(fast_tpe.log_ndtr)
